"""`vitssl report RUN...`: the results of several runs as one table, plots and attention pictures.

Reads what pre-training and `vitssl eval` left in each run folder (metrics.jsonl, summary.json,
eval/*/results.json) and writes, in one folder: results.json (one row per run x protocol x dataset),
results.md (method x protocol/dataset), loss.png, knn.png (monitor k-NN over epochs), fewshot.png,
and attention_<run>.png (CLS attention of the last block, per head, over a few images).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import yaml

from vitssl.engine.plots import read_metrics
from vitssl.errors import ConfigError


def collect(run: Path) -> dict | None:
    """A run's summary, metrics and evaluations; None (with a note) for a folder whose run never started."""
    if not (run / "config.yaml").is_file():
        raise ConfigError(f"'{run}' is not a run folder of `vitssl pretrain` (no config.yaml)")
    summary = json.loads((run / "summary.json").read_text()) if (run / "summary.json").is_file() else {}
    if not summary and not (run / "checkpoints" / "last.pt").is_file():
        print(f"note: skipping '{run}': no checkpoint and no summary (a run that never trained a step)",
              file=sys.stderr)
        return None
    method = summary.get("method") or ((yaml.safe_load((run / "config.yaml").read_text()) or {}).get("method") or
                                       {}).get("name")
    evals = [json.loads(p.read_text()) for p in sorted((run / "eval").glob("*/results.json"))]
    return {"run": run.name, "path": str(run), "method": method, "summary": summary,
            "metrics": read_metrics(run / "metrics.jsonl"), "evals": evals}


LIKE_FOR_LIKE = ("pool", "blocks", "image_size", "test_images", "test_split")


def table(runs: list[dict]) -> tuple[list[dict], str]:
    """One row per run x evaluation, an accuracy table (run x protocol/dataset), what each number used
    (pooling, blocks, image size, images on both sides), and a warning where numbers of one column
    were not measured alike."""
    rows, columns = [], []
    for r in runs:
        for e in r["evals"]:
            col = f"{e['protocol']} {e['dataset']}"
            if col not in columns:
                columns.append(col)
            rows.append({"run": r["run"], "method": r["method"], "protocol": e["protocol"], "dataset": e["dataset"],
                         "accuracy": e["accuracy"], "std": e.get("std"), "features": e.get("features"),
                         "pool": e.get("pool"), "blocks": e.get("blocks"), "image_size": e.get("image_size"),
                         "pretrain_step": e.get("pretrain_step"), "train_images": e.get("train_images"),
                         "test_images": e.get("test_images"), "test_split": e.get("test_split"),
                         "test_set": (e.get("test_set") or {}).get("formed")})
    lines = ["| run | method | " + " | ".join(columns) + " |", "|---|---|" + "---|" * len(columns)]
    for r in runs:
        cells = []
        for col in columns:
            hit = [e for e in r["evals"] if f"{e['protocol']} {e['dataset']}" == col]
            cells.append(f"{hit[0]['accuracy']:.2f}" + (f" ± {hit[0]['std']:.2f}" if hit and hit[0].get("std") else "")
                         if hit else "")
        lines.append(f"| {r['run']} | {r['method']} | " + " | ".join(cells) + " |")
    lines += ["", "What each number used:", "",
              "| run | protocol | dataset | accuracy | features | pooling | px | train images | test images (split) |",
              "|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['run']} | {row['protocol']} | {row['dataset']} | {row['accuracy']:.2f} | "
                     f"{row['features'] or ''} | {row['pool']} | {row['image_size']} | {row['train_images']} | "
                     f"{row['test_images']} ({row['test_split']}) |")
    warnings = []
    for col in columns:
        same = [row for row in rows if f"{row['protocol']} {row['dataset']}" == col]
        for k in LIKE_FOR_LIKE:
            values = sorted({str(row[k]) for row in same})
            if len(values) > 1:
                who = "; ".join(f"{row['run']}: {row[k]}" for row in same)
                warnings.append(f"- **not like for like**: `{col}` compares different {k} ({who})")
    if warnings:
        lines += ["", *warnings]
    return rows, "\n".join(lines) + "\n"


def _plot(path: Path, series: list[tuple[str, list, list, list | None]], xlabel: str, ylabel: str) -> bool:
    series = [s for s in series if s[1]]
    if not series:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4))
    for label, xs, ys, err in series:
        if err is not None:
            ax.errorbar(xs, ys, yerr=err, label=label, marker="o", capsize=3)
        else:
            ax.plot(xs, ys, label=label, marker="o" if len(xs) < 30 else None)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def attention_picture(run: Path, out: Path, n_images: int = 6) -> bool:
    """CLS attention of the last block, one row per head, for a few images of the run's data."""
    import dataclasses

    from vitssl.config import load_config
    from vitssl.data.augment import Augment
    from vitssl.data.dataset import load_dataset
    from vitssl.data.loader import single_batch
    from vitssl.engine.pictures import colormap, save_grid
    from vitssl.errors import DataError
    from vitssl.evaluation.encoders import load_encoder

    if not (run / "checkpoints" / "last.pt").is_file():
        return False
    cfg = load_config(run / "config.yaml", [f"output_dir={run}"])
    encoder, _ = load_encoder(str(run))
    data = dataclasses.replace(cfg.data, limit=None, cache="stream")  # image files: only the few shown are decoded
    try:
        ds = load_dataset(data, "test", seed=cfg.seed, progress=False)
    except DataError:
        ds = load_dataset(data, cfg.data.split, seed=cfg.seed, progress=False)
    images = single_batch(ds, n_images, torch.device("cpu"), seed=cfg.seed)
    aug = Augment(None, image_size=cfg.data.image_size, mean=cfg.data.mean, std=cfg.data.std)
    x = aug.plain(images)
    attn = encoder.eval().cls_attention(x)  # (B, h, N)
    gh, gw = encoder.grid_for(*x.shape[-2:])
    attn = attn / attn.amax(-1, keepdim=True)  # each map to its own maximum
    p = encoder.patch_size
    rows = {"image": aug.denormalize(x).clamp(0, 1)}
    for h in range(attn.shape[1]):
        m = colormap(attn[:, h].reshape(-1, gh, gw)).permute(0, 3, 1, 2)  # (B, 3, gh, gw)
        rows[f"head {h + 1}"] = m.repeat_interleave(p, 2).repeat_interleave(p, 3)
    save_grid(rows, out)
    return True


def report(runs: list[str], out: str | Path, n_images: int = 6) -> dict:
    out = Path(out)
    data = [d for d in (collect(Path(r)) for r in runs) if d is not None]
    if not data:
        raise ConfigError("none of the folders given holds a run that trained; nothing to report")
    out.mkdir(parents=True, exist_ok=True)  # only once there is something to write
    rows, md = table(data)
    loss = [(f"{d['run']} ({d['method']})", [m["epoch"] for m in d["metrics"] if "loss" in m],
             [m["loss"] for m in d["metrics"] if "loss" in m], None) for d in data]
    knn = [(f"{d['run']} ({d['method']})", [m["epoch"] for m in d["metrics"] if "knn_acc" in m],
            [m["knn_acc"] for m in d["metrics"] if "knn_acc" in m], None) for d in data]
    few = []
    for d in data:
        for e in d["evals"]:
            if e["protocol"] == "fewshot":
                ps = e["per_shots"]
                few.append((f"{d['run']} ({e['dataset']})", [p["shots"] for p in ps], [p["accuracy"] for p in ps],
                            [p["std"] for p in ps]))
    plots = {"loss.png": _plot(out / "loss.png", loss, "epoch", "pre-training loss"),
             "knn.png": _plot(out / "knn.png", knn, "epoch", "k-NN accuracy (%)"),
             "fewshot.png": _plot(out / "fewshot.png", few, "labelled images per class", "accuracy (%)")}
    for d in data:
        name = f"attention_{d['run']}.png"
        plots[name] = attention_picture(Path(d["path"]), out / name, n_images)
    made = [k for k, v in plots.items() if v]
    result = {"runs": [{k: d[k] for k in ("run", "path", "method", "summary")} for d in data], "rows": rows,
              "plots": made}
    (out / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    pictures = "\n".join(f"![{k}]({k})" for k in made)
    (out / "results.md").write_text(f"# vitssl report\n\nAccuracy in % (few-shot: mean ± std over draws, at the "
                                    f"largest shot count).\n\n{md}\n{pictures}\n")
    return result
