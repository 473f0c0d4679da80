"""Per-step schedules: linear warm-up then cosine, as used for lr, weight decay and momentum."""

from __future__ import annotations

import math


def cosine(step: int, total: int, start: float, end: float) -> float:
    """`start` at step 0 to `end` at step `total`, along half a cosine."""
    t = min(max(step, 0), total) / max(total, 1)
    return end + (start - end) * (1 + math.cos(math.pi * t)) / 2


def warmup_cosine(step: int, total: int, warmup: int, peak: float, final: float) -> float:
    """Linear from 0 to `peak` over `warmup` steps, then cosine to `final` at `total`."""
    if step < warmup:
        return peak * (step + 1) / warmup
    return cosine(step - warmup, total - warmup, peak, final)
