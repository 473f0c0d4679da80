"""Attention with RandSAC's block-causal masks (issue 5): full attention without a mask, SDPA with a
dense boolean mask (static, one for the batch; and per image), and FlexAttention with a block mask.

Forward + backward of one attention call, (B, heads, N, 64) at N = 64, 144, 196, 576 tokens, with
square segments (16 per image where the grid allows it). On CUDA FlexAttention is compiled (it skips
fully masked tiles); elsewhere it runs unfused and forward-only (PyTorch has no CPU backward for it),
so the CPU rows show it for completeness, not as a candidate.

python benchmarks/attention_masks.py [--device cpu] [--batch 32] [--heads 6]
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import device, timeit, write  # noqa: E402

from vitssl.methods.randsac.masks import rank_mask  # noqa: E402
from vitssl.methods.randsac.segments import SquareSegmenter  # noqa: E402
from vitssl.methods.randsac.serialise import serialise  # noqa: E402
from vitssl.models.attention import attend, flex_attention  # noqa: E402


def segment_side(grid: int) -> int:
    """Square side giving 16 segments when the grid allows it, else 2x2 squares (else 1)."""
    for m in (grid // 4, 2, 1):
        if m >= 1 and grid % m == 0 and (grid // m) ** 2 >= 4:
            return m
    return 1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", type=device, choices=["cpu", "cuda"])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--heads", type=int, default=6)
    ap.add_argument("--tokens", type=int, nargs="+", default=[64, 144, 196, 576])
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    dev = torch.device(a.device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else None
    dtype = torch.bfloat16 if dev.type == "cuda" else torch.float32
    rows = []
    for n in a.tokens:
        grid = math.isqrt(n)
        m = segment_side(grid)
        serial = serialise(SquareSegmenter(m)(a.batch, (grid, grid), dev), "random")
        rank = serial.rank[0]
        dense = rank_mask(rank, rank, strict=False, flex=False)  # (N, N) block-causal, one for the batch
        per_image = rank_mask(serial.rank, serial.rank, strict=False, flex=False)  # (B, 1, N, N)
        q, k, v = (torch.randn(a.batch, a.heads, n, 64, device=dev, dtype=dtype, requires_grad=True) for _ in range(3))
        variants = {"full (no mask)": None, "SDPA + static bool mask": dense, "SDPA + per-image bool mask": per_image}
        if flex_attention is not None:
            variants["FlexAttention block mask"] = rank_mask(rank, rank, strict=False, flex=True)
        base = None
        for name, mask in variants.items():
            flex_cpu = name.startswith("Flex") and dev.type != "cuda"

            def step():
                if flex_cpu:  # no CPU backward: time the forward on inputs that need no gradient
                    with torch.no_grad():
                        attend(q.detach(), k.detach(), v.detach(), mask)
                    return
                out = attend(q, k, v, mask) if name.startswith("Flex") else F.scaled_dot_product_attention(
                    q, k, v, attn_mask=mask)
                out.sum().backward()

            sec = timeit(step, warmup=2, repeat=a.repeat, sync=sync)
            base = base or sec
            rows.append({"tokens": n, "segment": f"{m}x{m}", "variant": name + (" (forward only)" if flex_cpu else ""),
                         "device": a.device, "ms": round(sec * 1000, 2), "vs_full": round(sec / base, 2)})
            print(rows[-1], flush=True)
    write(f"attention_masks_{a.device}", rows, ["tokens", "segment", "variant", "ms", "vs_full"],
          "python benchmarks/attention_masks.py " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
