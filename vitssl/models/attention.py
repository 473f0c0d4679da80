"""One attention kernel call for every mask kind the methods use.

A boolean mask (True = may attend) goes to `scaled_dot_product_attention`; a FlexAttention
`BlockMask` goes to `flex_attention`, compiled on CUDA (where it skips fully masked tiles) and run
eagerly elsewhere, so the same model code serves both and tests can compare them on a CPU.
"""

from __future__ import annotations

import warnings
from functools import lru_cache

import torch
import torch.nn.functional as F

try:  # torch >= 2.5
    from torch.nn.attention.flex_attention import (
        BlockMask,
        create_block_mask,
        flex_attention,
    )
except ImportError:  # pragma: no cover - older torch: only the SDPA path exists
    BlockMask = create_block_mask = flex_attention = None


def flex_available(device: torch.device | str) -> bool:
    """FlexAttention is worth using: present, and on a CUDA device (elsewhere it runs unfused)."""
    return flex_attention is not None and torch.device(device).type == "cuda"


@lru_cache(maxsize=None)
def _compiled_flex():
    return torch.compile(flex_attention, dynamic=False)


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask=None) -> torch.Tensor:
    """(B, h, Nq, d), (B, h, Nk, d), (B, h, Nk, d) -> (B, h, Nq, d)."""
    if BlockMask is not None and isinstance(mask, BlockMask):
        if q.device.type == "cuda":
            return _compiled_flex()(q, k, v, block_mask=mask)
        with warnings.catch_warnings():  # eager flex on CPU is for tests and checks, and says so loudly
            warnings.simplefilter("ignore")
            return flex_attention(q, k, v, block_mask=mask)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
