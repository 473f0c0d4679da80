"""Heads that methods put on top of the encoder."""

from __future__ import annotations

import torch
import torch.nn as nn

from vitssl.distributed import SyncBatchNorm1d
from vitssl.models.patches import unpatchify


class ProjectionHead(nn.Module):
    """MLP `in -> hidden -> ... -> out` with BatchNorm (global across processes) and GELU.

    The last BatchNorm has no affine parameters, as in MoCo v3 / SiT.
    """

    def __init__(self, *, in_dim: int, hidden_dim: int = 4096, out_dim: int = 256, num_layers: int = 3):
        super().__init__()
        layers: list[nn.Module] = []
        dims = [in_dim] + [hidden_dim] * (num_layers - 1) + [out_dim]
        for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
            last = i == num_layers - 1
            layers += [nn.Linear(a, b, bias=False), SyncBatchNorm1d(b, affine=not last)]
            if not last:
                layers.append(nn.GELU())
        self.mlp = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(x)  # (B, in_dim) -> (B, out_dim)


class PixelHead(nn.Module):
    """Light reconstruction decoder: `depth` x (Linear + GELU), then a per-token map to P*P*C pixels.

    Equivalent to a transposed convolution with kernel = stride = P after the MLP.
    """

    def __init__(self, *, dim: int, patch_size: int, depth: int = 3, channels: int = 3):
        super().__init__()
        self.patch_size, self.channels = patch_size, channels
        self.mlp = nn.Sequential(*[m for _ in range(depth) for m in (nn.Linear(dim, dim), nn.GELU())])
        self.to_pixels = nn.Linear(dim, patch_size * patch_size * channels)

    def forward(self, tokens: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        pixels = self.to_pixels(self.mlp(tokens))  # (B, N, D) -> (B, N, P*P*C)
        return unpatchify(pixels, self.patch_size, grid, self.channels)  # (B, C, H, W)
