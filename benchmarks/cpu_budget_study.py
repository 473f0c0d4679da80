"""CPU-budget study: at equal wall-clock budget on this machine, does each method beat random init,
and which wins? (issue 4)

For every entry: pre-train on CIFAR-10 (ViT-T/4 @ 32 px) for --minutes of wall clock (the schedules
span exactly the steps that fit: `train.max_minutes`), then k-NN and a linear probe (every block,
chosen on held-out training images) on the test split, then fine-tune for --finetune-minutes. The
random-init entry skips pre-training; fine-tuning it is the supervised-from-scratch baseline.
Every stage is skipped when its results exist, so an interrupted study continues where it stopped.

python benchmarks/cpu_budget_study.py --minutes 20 --finetune-minutes 8 --out runs/study
python benchmarks/cpu_budget_study.py --minutes 5 --out runs/tune --entries mae:lr4x --no-finetune
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, machine, markdown_table  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CIFAR = ROOT.parent / "shared" / "data" / "cifar10"
MODEL = ["model.arch=vit_tiny", "model.patch_size=4", "data.image_size=32"]

# name: (config, overrides). The study's entries use the CPU-budget configs (configs/cpu/, set from the
# 5-minute trials); "<method>:<tag>" entries are those trials, on the full-length configs.
ENTRIES = {
    "random": (None, ["model.pos_embed=learned"]),  # read with mean pooling (as MAE and RandSAC are)
    "random:cls": (None, ["model.pos_embed=learned", "features.pool=cls"]),  # read as SiT and GMML are
    "mae": ("cpu/mae_cifar10", []),
    "mocov3": ("cpu/mocov3_cifar10", []),
    "dino": ("cpu/dino_cifar10", []),
    "gmml": ("cpu/gmml_cifar10", []),
    "sit": ("cpu/sit_cifar10", []),
    "randsac": ("cpu/randsac_cifar10", []),
    "mae:shipped": ("mae_cifar10", []),
    "gmml:shipped": ("gmml_cifar10", []),
    "sit:shipped": ("sit_cifar10", []),
    "randsac:shipped": ("randsac_cifar10", []),
    "mae:lr4x": ("mae_cifar10", ["optim.base_lr=6e-4"]),
    "gmml:lr2x": ("gmml_cifar10", ["optim.base_lr=1e-3"]),
    "sit:lr2x": ("sit_cifar10", ["optim.base_lr=1e-3"]),
    "randsac:lr4x": ("randsac_cifar10", ["optim.base_lr=6e-4"]),
    "mae:lr4x_dec128x2": ("mae_cifar10", ["optim.base_lr=6e-4", "method.decoder_dim=128", "method.decoder_depth=2",
                                          "method.decoder_heads=4"]),
    "randsac:lr4x_dec128x2": ("randsac_cifar10", ["optim.base_lr=6e-4", "method.decoder_dim=128",
                                                  "method.decoder_depth=2", "method.decoder_heads=4"]),
    "sit:lr2x_proj1024": ("sit_cifar10", ["optim.base_lr=1e-3", "method.proj_hidden=1024"]),
}


def vitssl(*args: str, log: Path) -> None:
    """Run the CLI in its own process (its memory is returned after each stage); output to a log file."""
    log.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "vitssl", *args]
    with open(log, "a") as f:
        f.write("$ " + " ".join(cmd) + "\n")
        f.flush()
        res = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT)
    if res.returncode:
        raise SystemExit(f"failed ({res.returncode}): {' '.join(cmd)}; see {log}")


def run_entry(name: str, a, out: Path) -> dict:
    config, extra = ENTRIES[name]
    d = out / name.replace(":", "-")
    data = [f"data.root={a.data}", "data.num_workers=2"]
    row: dict = {"entry": name, "method": name.split(":")[0], "overrides": " ".join(extra)}
    if config is not None:
        pre = d / "pretrain"
        if not (pre / "summary.json").is_file():
            if pre.exists():  # an interrupted stage restarts from scratch: budgets are not resumable mid-way
                import shutil

                shutil.rmtree(pre)
            t = time.time()
            vitssl("pretrain", "--config", config, *MODEL, *data, f"train.max_minutes={a.minutes}",
                   "train.epochs=100", f"train.batch_size={a.batch}", "optim.warmup_epochs=1", "log.knn_every=0",
                   "log.images_every=0", "log.checkpoint_every=0", "log.progress=false", f"output_dir={pre}",
                   *extra, log=d / "log.txt")
            print(f"{name}: pre-trained in {time.time() - t:.0f} s", flush=True)
        s = json.loads((pre / "summary.json").read_text())
        rows = [json.loads(r) for r in (pre / "metrics.jsonl").read_text().splitlines()]
        losses = [r["loss"] for r in rows if "loss" in r]
        row.update(steps=s["step"], images_seen=s["step"] * a.batch, epochs=round(s["epoch"], 3),
                   pretrain_minutes=round(s["seconds"] / 60, 2), first_loss=round(losses[0], 4),
                   final_loss=round(sum(losses[-5:]) / len(losses[-5:]), 4))
        source = [str(pre)]
    else:
        source = ["random", *MODEL, *extra]
    ev = [*data, f"data.limit={a.probe_train}", f"test_limit={a.test_limit}" if a.test_limit else "test_limit=null",
          "features.sweep=true"]
    for protocol, args in (("knn", []), ("linear", ["linear.lrs=[0.03,0.1,0.3,1.0]"])):
        dst = d / protocol
        if not (dst / "results.json").is_file():
            vitssl("eval", protocol, "--checkpoint", *source[:1], *source[1:], *ev, *args, f"output_dir={dst}",
                   log=d / "log.txt")
        r = json.loads((dst / "results.json").read_text())
        row[f"{protocol}"] = round(r["accuracy"], 2)
        row[f"{protocol}_block"] = r["features"]
        row[f"{protocol}_last_block"] = round(r["per_block"][-1]["accuracy"], 2)
        row["test_images"] = r["test_images"]
    if a.finetune_minutes:
        dst = d / "finetune"
        if not (dst / "results.json").is_file():
            vitssl("eval", "finetune", "--checkpoint", *source[:1], *source[1:], *data,
                   f"finetune.max_minutes={a.finetune_minutes}", "finetune.epochs=100", "finetune.batch_size=128",
                   "finetune.eval_every=1000", f"output_dir={dst}", log=d / "log.txt")
        r = json.loads((dst / "results.json").read_text())
        row.update(finetune=round(r["accuracy"], 2), finetune_steps=r["steps"], finetune_epochs=r["epochs_run"])
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=20.0, help="pre-training wall-clock budget per method")
    ap.add_argument("--finetune-minutes", type=float, default=8.0, help="fine-tuning budget per entry (0: skip)")
    ap.add_argument("--no-finetune", dest="finetune_minutes", action="store_const", const=0.0)
    ap.add_argument("--batch", type=int, default=64, help="pre-training batch (small batches: more steps per minute)")
    ap.add_argument("--probe-train", type=int, default=10000, help="class-balanced training images for k-NN/probe")
    ap.add_argument("--test-limit", type=int, default=None, help="test images (default: the whole test split)")
    ap.add_argument("--entries", nargs="+", default=["random", "mae", "gmml", "sit", "randsac"], choices=list(ENTRIES))
    ap.add_argument("--out", default="runs/study")
    ap.add_argument("--data", default=str(CIFAR))
    ap.add_argument("--name", default="cpu_budget_study", help="results file name in benchmarks/results/")
    a = ap.parse_args()
    out = Path(a.out)
    rows = []
    for name in a.entries:
        rows.append(run_entry(name, a, out))
        print(rows[-1], flush=True)
        write(a, rows)


def write(a, rows: list[dict]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {"benchmark": a.name, "command": "python benchmarks/cpu_budget_study.py " + " ".join(sys.argv[1:]),
               "machine": machine(), "data": str(a.data), "model": "ViT-T/4 @ 32 px (192 wide, 12 blocks, 3 heads)",
               "pretrain_minutes": a.minutes, "pretrain_batch": a.batch, "finetune_minutes": a.finetune_minutes,
               "probe_train_images": a.probe_train, "rows": rows}
    (RESULTS / f"{a.name}.json").write_text(json.dumps(payload, indent=2) + "\n")
    cols = ["entry", "steps", "epochs", "final_loss", "knn", "knn_block", "linear", "linear_block", "linear_last_block"]
    if a.finetune_minutes:
        cols += ["finetune", "finetune_epochs"]
    md = (f"# {a.name}\n\n`{payload['command']}`\n\n{payload['model']}, CIFAR-10; pre-training {a.minutes} min "
          f"(batch {a.batch}), probes trained on {a.probe_train} training images, tested on "
          f"{rows[-1].get('test_images')} test images; fine-tuning {a.finetune_minutes} min. Machine: "
          f"{payload['machine']['cpu']}, {payload['machine']['cores']} cores, torch {payload['machine']['torch']}, "
          f"{payload['machine']['date']}. Accuracies in %.\n\n" + markdown_table(rows, cols) + "\n")
    (RESULTS / f"{a.name}.md").write_text(md)


if __name__ == "__main__":
    main()
