"""Reference training step side by side (issue 5): the public SiT code's full step vs vitssl's.

Same model (vitssl's SiT, `--config`), same JPEG folder, same batch size; each row times whole
steps including the wait for data, in a fresh process (so one row's heap cannot help the next):
1. reference: batches from PIL DataLoader workers + NumPy GMML in the collate, explicit attention,
   a full teacher pass, timm's DropPath, per-parameter AdamW, clipping and teacher EMA
   (`benchmarks/reference/`, never used by vitssl);
2. the reference's batches, vitssl's step (fused attention, the teacher's last block for its CLS
   token alone, the samples that stochastic depth drops skipped, fused AdamW, one `foreach` EMA) -
   how much of the gain is the step itself;
3. vitssl: images decoded once into a uint8 tensor, augmentation + GMML batched inside the step;
   on CPU once with glibc's default malloc and once with freed memory kept for reuse, as vitssl's
   trainer runs (`vitssl.hostmem`);
4. (with --compile) the same with the transformer blocks compiled, as `train.compile=true`;
5. (on CPU) the reference with freed memory kept too: how much of the gain is the allocator alone.

python benchmarks/reference_step.py [--config sit_cifar10] [--batch 128] [--steps 5] [--warmup 1] [--workers 2] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import device, run_rows, write, write_jpegs  # noqa: E402
from reference.sit_data import ReferenceImages, make_collate  # noqa: E402
from reference.sit_step import reference_optimizer, reference_step, research_code_model  # noqa: E402

from vitssl.config import load_config  # noqa: E402
from vitssl.data.dataset import load_dataset  # noqa: E402
from vitssl.engine.optim import build_optimizer, clip_gradients  # noqa: E402
from vitssl.hostmem import keep_freed_memory  # noqa: E402
from vitssl.methods import registry  # noqa: E402


def timed(step, batches, steps: int, warmup: int, sync) -> float:
    """Seconds per step over `steps` steps after `warmup` untimed ones, data wait included."""
    it = iter(batches)
    for i in range(warmup):
        step(next(it), i)
    sync()
    t = time.perf_counter()
    for i in range(warmup, warmup + steps):
        step(next(it), i)
    sync()
    return (time.perf_counter() - t) / steps


def run_row(a, kind: str, tmp: Path) -> dict:
    """Seconds per step of one row, in this process: reference, mixed, ours or compiled."""
    dev = torch.device(a.device)
    keep_freed_memory(dev)  # as vitssl's trainer on CPU, unless VITSSL_HOST_ALLOCATOR=default
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    autocast = torch.autocast(dev.type, dtype=torch.bfloat16, enabled=a.precision == "bf16")
    os.environ["VITSSL_CACHE"] = str(tmp / "cache")
    cfg = load_config(a.config, [f"data.root={tmp}/data", "data.num_workers=2"])
    size, total = cfg.data.image_size, 1000
    paths = sorted(str(p) for p in (tmp / "data").rglob("*.jpg"))
    torch.manual_seed(0)
    np.random.seed(0)
    method = registry.get(cfg.method.name).build(cfg).to(dev).train()

    def reference_batches():
        loader = DataLoader(ReferenceImages(paths, size), batch_size=a.batch, shuffle=True,
                            num_workers=a.workers, collate_fn=make_collate(cfg.method.max_frac), drop_last=True,
                            pin_memory=dev.type == "cuda")
        return ([t.to(dev, non_blocking=True) for t in batch] for batch in loader)

    if kind == "reference":
        opt = reference_optimizer(method, cfg.optim)
        with research_code_model():
            return {"sec": timed(lambda b, i: reference_step(method, opt, b, cfg.optim.clip_grad, i, total),
                                 reference_batches(), a.steps, a.warmup, sync)}
    opt = build_optimizer(method, cfg.optim, dev, exempt=method.no_weight_decay())

    def our_update(loss, i):
        loss.backward()
        clip_gradients([p for p in method.parameters() if p.requires_grad], cfg.optim.clip_grad, cfg.optim.clip_mode)
        opt.step()
        method.after_step(i, total)

    if kind == "mixed":
        def mixed(batch, i):
            opt.zero_grad(set_to_none=True)
            v1, v2, c1, c2, m1, m2 = batch
            with autocast:
                loss = method.losses([v1, v2], [c1, c2], [m1, m2])["loss"]
            our_update(loss, i)

        return {"sec": timed(mixed, reference_batches(), a.steps, a.warmup, sync)}
    t = time.perf_counter()
    ds = load_dataset(cfg.data, "train", progress=False)
    decode = time.perf_counter() - t
    resident = ds.images.to(dev)  # as the loader: uint8, on the GPU where there is one
    perm = torch.randperm(len(ds), device=dev).view(-1, a.batch)
    if kind == "compiled":
        for m in method.modules():  # as train.compile=true: block by block
            if getattr(m, "compile_unit", False):
                m.compile()

    def ours(idx, i):
        opt.zero_grad(set_to_none=True)
        with autocast:
            loss = method(resident.index_select(0, idx))["loss"]
        our_update(loss, i)

    return {"sec": timed(ours, perm, a.steps, a.warmup, sync), "decode": decode, "images": len(ds)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="sit_cifar10")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1,
                    help="untimed steps first (a process's first steps on CPU pay page faults while its heap grows)")
    ap.add_argument("--compile", action="store_true", help="add a row with the blocks compiled (train.compile)")
    ap.add_argument("--device", default="cpu", type=device, choices=["cpu", "cuda"])
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16"], help="vitssl's rows (the reference: fp32)")
    ap.add_argument("--workers", type=int, default=2, help="reference DataLoader workers (2 = the cores here)")
    ap.add_argument("--rounds", type=int, default=1, help="run every row this many times, interleaved; report medians")
    ap.add_argument("--row", help=argparse.SUPPRESS)  # internal: run one row in this process
    ap.add_argument("--data", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.row:
        print(json.dumps(run_row(a, a.row, Path(a.data))))
        return
    cpu = a.device == "cpu"
    plan = [("reference", "default",
             "reference: PIL workers + NumPy GMML, explicit attention, full teacher, timm DropPath, per-parameter AdamW and EMA"),
            ("mixed", "default", "reference batches, vitssl step (SDPA, CLS-only teacher tail, dropped samples skipped, fused AdamW, foreach EMA)")]
    ours = "vitssl: uint8 in memory, batched augment + GMML in the step, vitssl step"
    if cpu:
        plan.append(("ours", "default", ours + ", default malloc"))
    plan.append(("ours", "", ours + (", freed memory kept (as the trainer)" if cpu else "")))
    if a.compile:
        plan.append(("compiled", "", "vitssl as above, train.compile=true"))
    if cpu:
        plan.append(("reference", "", "reference as row 1, with freed memory kept (vitssl.hostmem)"))
    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config(a.config, [])
        write_jpegs(Path(tmp) / "data", a.batch * (a.warmup + a.steps + 1), cfg.data.resolved_store_size)
        results = run_rows(__file__, plan, tmp, a.rounds)
    extra = next(r for runs in results.values() for r in runs if "decode" in r)  # the first decode fills the cache
    rows = [(name, kind, [r["sec"] for r in results[name]]) for kind, _, name in plan]
    ref = rows[0][2]  # the reference's seconds per step, round by round
    out = [{"pipeline": name, "config": a.config, "device": a.device,
            "precision": "fp32" if kind == "reference" else a.precision, "batch": a.batch,
            "s_per_step": round(statistics.median(sec), 3), "images_per_s": round(a.batch / statistics.median(sec), 1),
            "ratio": round(statistics.median(ref) / statistics.median(sec), 2),
            "round_ratios": [round(r / s, 2) for r, s in zip(ref, sec)]} for name, kind, sec in rows]
    for r in out:
        print(r)
    print(f"vitssl's one-time decode of {extra['images']} images into the cache: {extra['decode']:.1f} s "
          "(once per dataset)")
    write(f"reference_step_{torch.device(a.device).type}", out,
          ["pipeline", "precision", "batch", "s_per_step", "images_per_s", "ratio", "round_ratios"],
          "python benchmarks/reference_step.py " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
