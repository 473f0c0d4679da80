"""Pre-training throughput (images/s) of a full training step: augmentation, corruption, forward,
backward, optimiser and teacher update, on a fixed uint8 batch already on the device.

Each setting is one encoder; every method runs on it with its own shipped config (RandSAC: square
16 -> 4 where the grid allows it, hierarchical blobs 11 -> 5 at 224 px, whose 14x14 grid does not).

python benchmarks/pretrain_throughput.py [--device cpu] [--methods sit gmml randsac] [--repeat 3]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import timeit, write  # noqa: E402

from vitssl.config import load_config  # noqa: E402
from vitssl.methods import registry  # noqa: E402
from vitssl.training.optim import build_optimizer  # noqa: E402

SETTINGS = [  # name, batch, {method: (config, overrides)}
    ("ViT-T/4 @ 32", 128, {"sit": ("sit_cifar10", []), "gmml": ("gmml_cifar10", []),
                           "randsac": ("randsac_cifar10", [])}),
    ("ViT-S/16 @ 192", 32, {"sit": ("sit_224", ["data.image_size=192"]),
                            "gmml": ("sit_224", ["method.name=gmml", "data.image_size=192"]),
                            "randsac": ("randsac/square_192", [])}),
    ("ViT-S/16 @ 224", 32, {"sit": ("sit_224", []), "gmml": ("sit_224", ["method.name=gmml"]),
                            "randsac": ("randsac_224", [])}),
]


def variant(cfg) -> str:
    m = cfg.method
    if m.name != "randsac":
        return m.name
    if m.segments == "square":
        n = (cfg.data.image_size // cfg.model.patch_size // m.square_size) ** 2
        parts = f" -> {(cfg.data.image_size // cfg.model.patch_size // m.partition_size) ** 2}" if m.partition_size else ""
        return f"randsac square {n}{parts}"
    return f"randsac blob {m.blobs}" + (f" -> {m.blob_partitions}" if m.blob_partitions else "")


def step_fn(method, opt, images, precision, clip):
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast(images.device.type, dtype=dtype, enabled=dtype is not None):
            loss = method(images)["loss"]
        loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_([p for p in method.parameters() if p.requires_grad], clip)
        opt.step()
        method.after_step(1, 1000)

    return step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--methods", nargs="+", default=["sit", "gmml", "randsac"])
    ap.add_argument("--settings", nargs="+", default=[s[0] for s in SETTINGS], help="names as in SETTINGS")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    args = ap.parse_args()
    dev = torch.device(args.device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else None
    rows = []
    for name, batch, configs in SETTINGS:
        if name not in args.settings:
            continue
        for method_name in args.methods:
            config, extra = configs[method_name]
            cfg = load_config(config, extra)
            torch.manual_seed(0)
            method = registry.get(method_name).build(cfg).to(dev).train()
            opt = build_optimizer(method, cfg.optim, dev)
            size = cfg.data.resolved_store_size
            images = torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8, device=dev)
            step = step_fn(method, opt, images, args.precision, cfg.optim.clip_grad)
            sec = timeit(step, warmup=1, repeat=args.repeat, sync=sync)
            rows.append({"setting": name, "method": variant(cfg), "batch": batch, "precision": args.precision,
                         "device": args.device, "s_per_step": round(sec, 3), "images_per_s": round(batch / sec, 1)})
            print(rows[-1], flush=True)
    write(f"pretrain_throughput_{args.device}", rows,
          ["setting", "method", "batch", "precision", "s_per_step", "images_per_s"],
          "python benchmarks/pretrain_throughput.py " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
