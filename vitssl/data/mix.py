"""Mixup and CutMix on a batch, with label smoothing, as soft targets (B, C)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def smooth_one_hot(labels: torch.Tensor, num_classes: int, smoothing: float = 0.0) -> torch.Tensor:
    return F.one_hot(labels, num_classes).float() * (1 - smoothing) + smoothing / num_classes


def mix_batch(x: torch.Tensor, labels: torch.Tensor, num_classes: int, *, mixup: float = 0.8, cutmix: float = 1.0,
              prob: float = 1.0, smoothing: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
    """Each image is mixed with the image at the mirrored position of the batch: by Mixup (alpha `mixup`) or
    CutMix (alpha `cutmix`), chosen half the time when both are on, with probability `prob` per batch."""
    target = smooth_one_hot(labels, num_classes, smoothing)
    use = [a for a in (mixup, cutmix) if a > 0]
    if not use or torch.rand(()) >= prob:
        return x, target
    do_cutmix = cutmix > 0 and (mixup <= 0 or bool(torch.rand(()) < 0.5))
    alpha = cutmix if do_cutmix else mixup
    lam = float(torch.distributions.Beta(alpha, alpha).sample())
    other = x.flip(0)
    if do_cutmix:
        h, w = x.shape[-2:]
        rh, rw = int(h * (1 - lam) ** 0.5), int(w * (1 - lam) ** 0.5)
        cy, cx = int(torch.randint(h, ())), int(torch.randint(w, ()))
        y0, y1 = max(cy - rh // 2, 0), min(cy + rh // 2, h)
        x0, x1 = max(cx - rw // 2, 0), min(cx + rw // 2, w)
        x = x.clone()
        x[..., y0:y1, x0:x1] = other[..., y0:y1, x0:x1]
        lam = 1 - (y1 - y0) * (x1 - x0) / (h * w)  # the area actually pasted
    else:
        x = x * lam + other * (1 - lam)
    return x, target * lam + target.flip(0) * (1 - lam)
