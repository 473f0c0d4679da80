"""Images/s of the batched GMML corruption (masks + fill) at 224 px, batch 256, on CPU by default.

python benchmarks/gmml_corruption.py [--device cpu] [--batch 256] [--size 224]
"""

from __future__ import annotations

import argparse
import sys

import torch

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent))
from common import device, timeit, write  # noqa: E402

from vitssl.hostmem import keep_freed_memory  # noqa: E402
from vitssl.methods.sit.corruption import gmml_corrupt  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--device", default="cpu", type=device, choices=["cpu", "cuda"])
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    dev = torch.device(args.device)
    keep_freed_memory(dev)  # as the trainer does on CPU
    sync = torch.cuda.synchronize if dev.type == "cuda" else None
    torch.manual_seed(0)
    x = torch.randn(args.batch, 3, args.size, args.size, device=dev)
    rows = []
    for name, kw in [("SiT (max_frac 0.5, 50% swap stage)", dict(max_frac=0.5)),
                     ("GMML (max_frac 0.75, 50% swap stage)", dict(max_frac=0.75)),
                     ("GMML, no swap stage (all blocks drawn)", dict(max_frac=0.75, swap_prob=0.0)),
                     ("SiT, patch-aligned (align 16)", dict(max_frac=0.5, align=16))]:
        out = gmml_corrupt(x, **kw)
        sec = timeit(lambda: gmml_corrupt(x, **kw), repeat=args.repeat, sync=sync)
        rows.append({"variant": name, "batch": args.batch, "size": args.size, "device": args.device,
                     "ms_per_batch": round(sec * 1000, 1), "images_per_s": round(args.batch / sec),
                     "mean_corrupted": round(out.mask.float().mean().item(), 3),
                     "mean_blocks": round(out.num_blocks.float().mean().item(), 1)})
    write(f"gmml_corruption_{args.device}", rows,
          ["variant", "batch", "size", "ms_per_batch", "images_per_s", "mean_corrupted", "mean_blocks"],
          "python benchmarks/gmml_corruption.py " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
