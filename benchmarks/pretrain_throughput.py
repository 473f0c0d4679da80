"""Pre-training throughput (images/s) of a full training step: augmentation, corruption, forward,
backward, optimiser and teacher update, on a fixed uint8 batch already on the device.

python benchmarks/pretrain_throughput.py [--device cpu] [--methods sit gmml] [--repeat 3]
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

SETTINGS = [  # name, config, overrides, batch
    ("ViT-T/4 @ 32", "sit_cifar10", [], 128),
    ("ViT-S/16 @ 224", "sit_224", [], 32),
]


def step_fn(method, opt, images, precision):
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast(images.device.type, dtype=dtype, enabled=dtype is not None):
            loss = method(images)["loss"]
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in method.parameters() if p.requires_grad], 3.0)
        opt.step()
        method.after_step(1, 1000)

    return step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--methods", nargs="+", default=["sit", "gmml"])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    args = ap.parse_args()
    dev = torch.device(args.device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else None
    rows = []
    for name, config, extra, batch in SETTINGS:
        for method_name in args.methods:
            cfg = load_config(config, [f"method.name={method_name}", *extra])
            torch.manual_seed(0)
            method = registry.get(method_name).build(cfg).to(dev).train()
            opt = build_optimizer(method, cfg.optim, dev)
            size = cfg.data.resolved_store_size
            images = torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8, device=dev)
            sec = timeit(step_fn(method, opt, images, args.precision), warmup=1, repeat=args.repeat, sync=sync)
            rows.append({"setting": name, "method": method_name, "batch": batch, "precision": args.precision,
                         "device": args.device, "s_per_step": round(sec, 3), "images_per_s": round(batch / sec, 1)})
            print(rows[-1], flush=True)
    write(f"pretrain_throughput_{args.device}", rows,
          ["setting", "method", "batch", "precision", "s_per_step", "images_per_s"],
          "python benchmarks/pretrain_throughput.py " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
