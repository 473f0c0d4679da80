"""Images <-> per-patch pixel vectors (channel-last inside a patch, as in MAE), and token gathers."""

from __future__ import annotations

import torch


def patchify(images: torch.Tensor, patch: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, N, P*P*C), patches row-major."""
    b, c, h, w = images.shape
    x = images.reshape(b, c, h // patch, patch, w // patch, patch)
    return x.permute(0, 2, 4, 3, 5, 1).reshape(b, (h // patch) * (w // patch), patch * patch * c)


def unpatchify(tokens: torch.Tensor, patch: int, grid: tuple[int, int], channels: int = 3) -> torch.Tensor:
    """(B, N, P*P*C) -> (B, C, H, W); the inverse of `patchify`."""
    b = tokens.shape[0]
    gh, gw = grid
    x = tokens.reshape(b, gh, gw, patch, patch, channels)
    return x.permute(0, 5, 1, 3, 2, 4).reshape(b, channels, gh * patch, gw * patch)


def patch_targets(images: torch.Tensor, patch: int, norm: bool = True) -> torch.Tensor:
    """(B, C, H, W) -> (B, N, P*P*C) float32 regression targets; with `norm`, each patch standardised by
    its own mean and variance (MAE's norm_pix_loss)."""
    t = patchify(images.float(), patch)
    if norm:
        t = (t - t.mean(-1, keepdim=True)) / (t.var(-1, keepdim=True) + 1e-6).sqrt()
    return t


def gather_tokens(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """x (B, N, C), index (B, M) -> (B, M, C): x[b, index[b, i]]."""
    return torch.gather(x, 1, index[..., None].expand(-1, -1, x.shape[-1]))
