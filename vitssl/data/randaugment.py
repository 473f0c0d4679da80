"""RandAugment, batched: every image gets `n` ops drawn at random, all images of a batch at once.

Images are floats in [0, 1], (B, 3, H, W), on any device. For each of the n slots an op is drawn per
image; geometric ops (rotate, shear, translate) become one per-image affine matrix and a single
`grid_sample` for the slot; each colour op runs once on the images that drew it. Magnitude m (0-10)
scales every op as in RandAugment; the direction of signed ops is random per image.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from vitssl.data.augment import GRAY

GEOMETRIC = ("rotate", "shear_x", "shear_y", "translate_x", "translate_y")
COLOUR = ("identity", "autocontrast", "brightness", "contrast", "color", "sharpness", "solarize", "posterize")
OPS = GEOMETRIC + COLOUR


def _gray(x: torch.Tensor) -> torch.Tensor:
    w = torch.tensor(GRAY, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True)


def _blend(a: torch.Tensor, b: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """b + factor * (a - b), clamped: factor 0 gives b, 1 gives a (PIL ImageEnhance)."""
    return (b + factor.view(-1, 1, 1, 1) * (a - b)).clamp(0, 1)


def colour_op(name: str, x: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
    """One colour op on x (b, 3, H, W); level (b,) in [-1, 1] (signed magnitude)."""
    if name == "identity":
        return x
    if name == "autocontrast":
        lo = x.amin((2, 3), keepdim=True)
        hi = x.amax((2, 3), keepdim=True)
        return torch.where(hi > lo, (x - lo) / (hi - lo).clamp_min(1e-6), x)
    factor = 1 + 0.9 * level
    if name == "brightness":
        return _blend(x, torch.zeros_like(x), factor)
    if name == "contrast":
        return _blend(x, _gray(x).mean((2, 3), keepdim=True).expand_as(x), factor)
    if name == "color":
        return _blend(x, _gray(x).expand_as(x), factor)
    if name == "sharpness":
        k = torch.tensor([[1, 1, 1], [1, 5, 1], [1, 1, 1]], device=x.device, dtype=x.dtype) / 13
        smooth = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), k.expand(3, 1, 3, 3), groups=3)
        return _blend(x, smooth, factor)
    if name == "solarize":
        threshold = (1 - level.abs()).view(-1, 1, 1, 1)
        return torch.where(x >= threshold, 1 - x, x)
    if name == "posterize":
        bits = (8 - (4 * level.abs()).round()).view(-1, 1, 1, 1)
        step = 2 ** (8 - bits)
        return torch.floor(x * 255 / step) * step / 255
    raise ValueError(f"unknown RandAugment op {name!r}")


def affine_for(names: list[str], op: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
    """Per-image 2x3 sampling matrices (B, 2, 3) for the geometric ops drawn (identity elsewhere)."""
    b = op.shape[0]
    theta = torch.zeros(b, 2, 3, device=level.device)
    theta[:, 0, 0] = theta[:, 1, 1] = 1
    for k, name in enumerate(names):
        sel = op == k
        if name == "rotate":
            a = level * math.radians(30)
            rot = torch.stack([torch.stack([a.cos(), -a.sin()], -1), torch.stack([a.sin(), a.cos()], -1)], 1)
            theta[:, :, :2] = torch.where(sel.view(-1, 1, 1), rot, theta[:, :, :2])
        elif name == "shear_x":
            theta[:, 0, 1] = torch.where(sel, level * 0.3, theta[:, 0, 1])
        elif name == "shear_y":
            theta[:, 1, 0] = torch.where(sel, level * 0.3, theta[:, 1, 0])
        elif name == "translate_x":
            theta[:, 0, 2] = torch.where(sel, level * 0.45 * 2, theta[:, 0, 2])  # 45 % of the side (grid is [-1, 1])
        elif name == "translate_y":
            theta[:, 1, 2] = torch.where(sel, level * 0.45 * 2, theta[:, 1, 2])
    return theta


def rand_augment(x: torch.Tensor, n: int = 2, magnitude: float = 9.0, ops: tuple[str, ...] = OPS,
                 fill: float = 0.5) -> torch.Tensor:
    """x (B, 3, H, W) in [0, 1] -> augmented, same shape. `fill` is the value shown where geometry
    moves pixels out of the frame."""
    x = x.contiguous()
    b, dev = x.shape[0], x.device
    names = list(ops)
    geo = [i for i, o in enumerate(names) if o in GEOMETRIC]
    for _ in range(n):
        op = torch.randint(len(names), (b,), device=dev)
        sign = torch.where(torch.rand(b, device=dev) < 0.5, -1.0, 1.0)
        level = sign * magnitude / 10
        if geo:
            moved = torch.isin(op, torch.tensor(geo, device=dev))
            if moved.any():
                idx = moved.nonzero()[:, 0]
                theta = affine_for(names, op[idx], level[idx]).to(x.dtype)
                part = x.index_select(0, idx)
                grid = F.affine_grid(theta, list(part.shape), align_corners=False)
                ones = torch.ones_like(part[:, :1])
                warped = F.grid_sample(torch.cat([part, ones], 1), grid, mode="bilinear", padding_mode="zeros",
                                       align_corners=False)
                inside = warped[:, 3:]
                x = x.index_copy(0, idx, warped[:, :3] + (1 - inside) * fill)
        for k, name in enumerate(names):
            if name in GEOMETRIC or name == "identity":
                continue
            idx = (op == k).nonzero()[:, 0]
            if idx.numel():
                x = x.index_copy(0, idx, colour_op(name, x.index_select(0, idx), level[idx]))
    return x
