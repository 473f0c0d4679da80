"""2-D position embeddings: fixed sin-cos, and resampling a learned grid to another size."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def sincos_2d(grid_h: int, grid_w: int, dim: int, temperature: float = 10000.0) -> torch.Tensor:
    """Fixed 2-D sin-cos embedding as in MAE: half the channels encode the row, half the column.

    Returns (grid_h * grid_w, dim), row-major over the grid.
    """
    if dim % 4:
        raise ValueError(f"sin-cos position embedding needs embed_dim divisible by 4, got {dim}")
    ys, xs = torch.meshgrid(torch.arange(grid_h, dtype=torch.float64), torch.arange(grid_w, dtype=torch.float64),
                            indexing="ij")
    omega = 1.0 / temperature ** (torch.arange(dim // 4, dtype=torch.float64) / (dim // 4))  # (D/4,)
    out = []
    for coord in (xs, ys):  # MAE order: width coordinate first
        angles = coord.reshape(-1, 1) * omega  # (HW, D/4)
        out += [angles.sin(), angles.cos()]
    return torch.cat(out, dim=1).float()  # (HW, D)


def resample_grid(pos: torch.Tensor, old_hw: tuple[int, int], new_hw: tuple[int, int]) -> torch.Tensor:
    """Bicubic resampling of a (1, old_h*old_w, D) grid of embeddings to (1, new_h*new_w, D)."""
    if tuple(old_hw) == tuple(new_hw):
        return pos
    d = pos.shape[-1]
    grid = pos.reshape(1, old_hw[0], old_hw[1], d).permute(0, 3, 1, 2).float()  # (1, D, h, w)
    grid = F.interpolate(grid, size=new_hw, mode="bicubic", align_corners=False)
    return grid.permute(0, 2, 3, 1).reshape(1, new_hw[0] * new_hw[1], d).to(pos.dtype)
