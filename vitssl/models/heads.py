"""Heads that methods put on top of the encoder."""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn

from vitssl.distributed import SyncBatchNorm1d
from vitssl.models.patches import unpatchify

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU}


def init_linear(module: nn.Module, std: float = 0.02) -> None:
    """Truncated-normal weights (std 0.02), zero biases: how the official SiT, MAE and DINO heads start."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=std, a=-2 * std, b=2 * std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class ProjectionHead(nn.Module):
    """MLP `in -> hidden -> ... -> out` with BatchNorm (global across processes) after every linear map.

    `activations` name the non-linearity after each hidden layer (the last name repeats if the head
    is deeper): SiT's official head uses ReLU after the first and GELU after the second. The last
    BatchNorm has no affine parameters, as in MoCo v3 / SiT; `last_bn=False` leaves it out (MoCo v3's
    predictor).
    """

    def __init__(self, *, in_dim: int, hidden_dim: int = 4096, out_dim: int = 256, num_layers: int = 3,
                 activations: Sequence[str] = ("relu", "gelu"), last_bn: bool = True):
        super().__init__()
        if not activations or any(a not in ACTIVATIONS for a in activations):
            raise ValueError(f"activations must name some of {', '.join(ACTIVATIONS)}, got {list(activations)}")
        layers: list[nn.Module] = []
        dims = [in_dim] + [hidden_dim] * (num_layers - 1) + [out_dim]
        for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
            last = i == num_layers - 1
            layers.append(nn.Linear(a, b, bias=False))
            if last_bn or not last:
                layers.append(SyncBatchNorm1d(b, affine=not last))
            if not last:
                layers.append(ACTIVATIONS[activations[min(i, len(activations) - 1)]]())
        self.mlp = nn.Sequential(*layers)
        init_linear(self)

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
        init_linear(self)

    def forward(self, tokens: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        pixels = self.to_pixels(self.mlp(tokens))  # (B, N, D) -> (B, N, P*P*C)
        return unpatchify(pixels, self.patch_size, grid, self.channels)  # (B, C, H, W)
