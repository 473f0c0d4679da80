"""Scaling of a full training step (issue 5): step time against batch size, image size and depth.

One method (`--method`, its shipped CIFAR config, ViT-T/4), a fixed uint8 batch on the device; one
knob turned at a time from the base (batch 64, 32 px, 12 blocks). The plot puts each sweep beside
the line of proportional growth from its first point (per image for batch, per token for image
size, per block for depth), so time that grows faster (attention's N^2) or slower (fixed costs
amortised) shows at a glance.

python benchmarks/scaling.py [--method gmml] [--device cpu] [--repeat 2]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, device, timeit, write  # noqa: E402
from pretrain_throughput import step_fn  # noqa: E402

from vitssl.config import load_config  # noqa: E402
from vitssl.engine.optim import build_optimizer  # noqa: E402
from vitssl.hostmem import keep_freed_memory  # noqa: E402
from vitssl.methods import registry  # noqa: E402

CONFIGS = {"sit": "sit_cifar10", "gmml": "gmml_cifar10", "mae": "mae_cifar10", "randsac": "randsac_cifar10"}
BASE = {"batch": 64, "image_size": 32, "depth": 12}
SWEEPS = {"batch": [16, 32, 64, 128, 256], "image_size": [32, 48, 64, 96], "depth": [3, 6, 12, 24]}


def measure(method_name: str, dev: torch.device, repeat: int, batch: int, image_size: int, depth: int) -> float:
    extra = ["method.recon_blocks=null"] if method_name in ("sit", "gmml") else []  # the default: valid at any depth
    cfg = load_config(CONFIGS[method_name], [f"data.image_size={image_size}", f"model.depth={depth}", *extra])
    keep_freed_memory(dev)  # as the trainer does on CPU
    torch.manual_seed(0)
    method = registry.get(method_name).build(cfg).to(dev).train()
    opt = build_optimizer(method, cfg.optim, dev, exempt=method.no_weight_decay())
    size = cfg.data.resolved_store_size
    images = torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8, device=dev)
    sync = torch.cuda.synchronize if dev.type == "cuda" else None
    return timeit(step_fn(method, opt, images, "fp32", cfg.optim.clip_grad, cfg.optim.clip_mode), warmup=1, repeat=repeat, sync=sync)


def work(knob: str, value: int, patch: int = 4) -> float:
    """What the step should grow with: images, tokens per image (+ CLS), blocks."""
    return (value // patch) ** 2 + 1 if knob == "image_size" else value


def plot(rows: list[dict], path: Path, title: str) -> None:
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for ax, knob in zip(axes, SWEEPS):
        pts = [r for r in rows if r["knob"] == knob]
        x = [r["value"] for r in pts]
        y = [r["s_per_step"] for r in pts]
        ideal = [y[0] * work(knob, v) / work(knob, x[0]) for v in x]
        ax.plot(x, y, "o-", label="measured")
        ax.plot(x, ideal, "--", color="gray", label="proportional to " + {"batch": "images", "image_size": "tokens",
                                                                          "depth": "blocks"}[knob])
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(x, [str(v) for v in x])
        ax.set_xlabel(knob.replace("_", " "))
        ax.set_ylabel("seconds per step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--method", default="gmml", choices=sorted(CONFIGS))
    ap.add_argument("--device", default="cpu", type=device, choices=["cpu", "cuda"])
    ap.add_argument("--repeat", type=int, default=2)
    a = ap.parse_args()
    dev = torch.device(a.device)
    rows = []
    for knob, values in SWEEPS.items():
        for v in values:
            setting = {**BASE, knob: v}
            sec = measure(a.method, dev, a.repeat, **setting)
            rows.append({"method": a.method, "knob": knob, "value": v, **setting, "s_per_step": round(sec, 3),
                         "images_per_s": round(setting["batch"] / sec, 1)})
            print(rows[-1], flush=True)
    name = f"scaling_{a.method}_{dev.type}"
    write(name, rows, ["knob", "value", "batch", "image_size", "depth", "s_per_step", "images_per_s"],
          "python benchmarks/scaling.py " + " ".join(sys.argv[1:]))
    plot(rows, RESULTS / f"{name}.png", f"{a.method}, ViT-T/4 training step on {dev.type} (base: batch 64, 32 px, "
                                        "12 blocks)")
    print(f"plot: {RESULTS / f'{name}.png'}")


if __name__ == "__main__":
    main()
