"""Random (or raster) serialisation of segments, as one batched sort per batch.

The serial order is: partitions in a random order; inside each partition, its segments in a random
order; inside each segment, its tokens row-major. It is returned as a permutation of token indices,
so putting the tokens in order is one gather and putting predictions back is its inverse.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from vitssl.methods.randsac.segments import Segmentation


@dataclass
class Serial:
    perm: torch.Tensor  # (B, N) token index at every serial position
    rank: torch.Tensor  # (B, N) serial segment rank (0 = first segment) at every serial position, non-decreasing
    num_segments: torch.Tensor  # (B,) non-empty segments per image
    equal_size: Optional[int] = None  # tokens per segment, when the same everywhere: then `rank` is the same per image

    def inverse(self) -> torch.Tensor:
        """(B, N) serial position of every token."""
        pos = torch.arange(self.perm.shape[1], device=self.perm.device).expand_as(self.perm)
        return torch.empty_like(self.perm).scatter_(1, self.perm, pos)


def _random_keys(shape, device, generator) -> torch.Tensor:
    """A uniformly random permutation of 0..S-1 per row: random, tie-free integer sort keys."""
    return torch.rand(shape, device=device, generator=generator).argsort(dim=-1)


def serialise(seg: Segmentation, order: str = "random", generator=None) -> Serial:
    segment = seg.segment  # (B, N)
    b, n = segment.shape
    s, device = seg.num_slots, segment.device
    tokens = torch.arange(n, device=device).expand(b, n)
    # first (row-major) token of every segment slot; n where the slot is empty
    first = torch.full((b, s), n, device=device).scatter_reduce(1, segment, tokens, "amin")
    nonempty = first < n
    if order == "random":
        part_key = _random_keys((b, s), device, generator)  # partition ids are < S
        seg_key = _random_keys((b, s), device, generator)
        key = part_key.gather(1, seg.partition) * s + seg_key
    elif order == "raster":  # partitions by their first token, then segments by theirs
        part_first = torch.full((b, s), n, device=device).scatter_reduce(1, seg.partition, first, "amin")
        key = part_first.gather(1, seg.partition) * (n + 1) + first
    else:
        raise ValueError(f"order must be 'random' or 'raster', got {order!r}")
    key = torch.where(nonempty, key, torch.iinfo(key.dtype).max)  # empty slots sort last and get no tokens
    slot_rank = torch.empty_like(key).scatter_(1, key.argsort(1), torch.arange(s, device=device).expand(b, s))
    token_rank = slot_rank.gather(1, segment)  # (B, N) segment rank of every token
    perm = (token_rank * n + tokens).argsort(1)  # by segment rank, then row-major inside the segment
    return Serial(perm, token_rank.gather(1, perm), nonempty.sum(1), seg.equal_size)

