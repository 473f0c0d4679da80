"""Exact shortcuts in the encoder (issue 5): work whose result nobody reads, not done.

1. Stochastic depth. timm computes every residual branch for every sample and multiplies the dropped
   ones by 0; vitssl applies the scaled keep mask in one fused `addcmul` (GPU, compiled) or, on a CPU,
   runs the branch for the kept samples only. Forward + backward of the encoder in training mode.
2. The CLS token alone. A reader of the CLS token (SiT's teacher, CLS-pooled fine-tuning and features)
   needs the last block only for that token: `cls_only=True`. Forward of the encoder without grad.

Both give the same numbers as the plain way (same random draws; `tests/models/test_vit.py`). Rows
are interleaved over `--rounds` rounds; the table has medians and the FLOPs counted from the shapes.

python benchmarks/encoder_shortcuts.py [--device cpu] [--rounds 7] [--settings tiny32 small224] [--drop-path 0.1]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from unittest import mock

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import count_flops, device, write  # noqa: E402
from reference.sit_step import research_block  # noqa: E402

from vitssl.models.vit import Block, build_vit  # noqa: E402

SETTINGS = {  # name: (arch, image size, patch, batch)
    "tiny32": ("vit_tiny", 32, 4, 256),
    "small224": ("vit_small", 224, 16, 32),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", type=device, choices=["cpu", "cuda"])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--drop-path", type=float, default=0.1, help="stochastic depth rate (linear over depth)")
    ap.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    ap.add_argument("--batch", type=int, help="instead of each setting's own batch size")
    a = ap.parse_args()
    dev = torch.device(a.device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    default_skip = "skip dropped samples" if dev.type == "cpu" else "fused multiply (addcmul)"
    rows = []
    for name in a.settings:
        arch, size, patch, batch = SETTINGS[name]
        batch = a.batch or batch
        torch.manual_seed(0)
        m = build_vit(arch=arch, img_size=size, patch_size=patch, drop_path_rate=a.drop_path).to(dev)
        x = torch.randn(batch, 3, size, size, device=dev)

        def train_step(skip, research=False):
            def run():
                for b in m.blocks:
                    b.skip_dropped = skip
                torch.manual_seed(1)  # the same keep masks for every variant
                m.train().zero_grad(set_to_none=True)
                with mock.patch.object(Block, "forward", research_block) if research else nullcontext():
                    m.forward_features(x).square().mean().backward()
            return run

        def teacher(cls_only):
            def run():
                with torch.no_grad():
                    m.eval().forward_features(x, cls_only=cls_only)
            return run

        variants = [
            ("stochastic depth", "timm: branch for every sample, times the keep mask", train_step(False, True)),
            ("stochastic depth", "fused multiply (addcmul)", train_step(False)),
            ("stochastic depth", "skip dropped samples", train_step(True)),
            ("CLS token alone", "every token through the last block", teacher(False)),
            ("CLS token alone", "last block for the CLS token (cls_only)", teacher(True)),
        ]
        times = {v: [] for _, v, _ in variants}
        for _, v, fn in variants:  # warm-up, and the FLOPs of each variant
            fn()
        flops = {v: count_flops(fn) for _, v, fn in variants}
        for _ in range(a.rounds):
            for _, v, fn in variants:
                sync()
                t = time.perf_counter()
                fn()
                sync()
                times[v].append(time.perf_counter() - t)
        base = {}
        for shortcut, v, _ in variants:
            sec = statistics.median(times[v])
            base.setdefault(shortcut, sec)
            rows.append({"setting": f"{arch} /{patch} @ {size}, batch {batch}", "shortcut": shortcut, "variant": v,
                         "default": "yes" if v in (default_skip, "last block for the CLS token (cls_only)") else "",
                         "gflop": round(flops[v] / 1e9, 1), "s_median": round(sec, 4),
                         "speedup": round(base[shortcut] / sec, 3)})
            print(rows[-1], flush=True)
    cmd = "python benchmarks/encoder_shortcuts.py " + " ".join(sys.argv[1:])
    write(f"encoder_shortcuts_{dev.type}", rows, ["setting", "shortcut", "variant", "default", "gflop", "s_median",
                                                    "speedup"], cmd.strip())


if __name__ == "__main__":
    main()
