"""DINO's projection head: an MLP to a bottleneck, L2-normalised, then a weight-normalised linear map."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from vitssl.models.heads import init_linear


class DINOHead(nn.Module):
    def __init__(self, *, in_dim: int, out_dim: int, hidden_dim: int = 2048, bottleneck_dim: int = 256,
                 num_layers: int = 3, norm_last_layer: bool = True):
        super().__init__()
        dims = [in_dim] + [hidden_dim] * (num_layers - 1) + [bottleneck_dim]
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
            layers.append(nn.Linear(a, b))
            if i < num_layers - 1:
                layers.append(nn.GELU())
        self.mlp = nn.Sequential(*layers)
        init_linear(self.mlp)
        # weight normalisation written out: weight = g * v / |v| per output unit (rows)
        self.weight_v = nn.Parameter(torch.empty(out_dim, bottleneck_dim))
        nn.init.trunc_normal_(self.weight_v, std=0.02)
        self.weight_g = nn.Parameter(torch.ones(out_dim, 1), requires_grad=not norm_last_layer)

    def forward(self, x: torch.Tensor, frozen: torch.Tensor | None = None) -> torch.Tensor:
        """(B, in_dim) -> (B, out_dim). `frozen` (a bool tensor): the last layer gets zero gradients."""
        z = F.normalize(self.mlp(x), dim=-1, eps=1e-6 if x.dtype == torch.float16 else 1e-12)  # (B, bottleneck)
        v, g = self.weight_v, self.weight_g
        if frozen is not None:  # zero (not missing) gradients: DDP needs no search for unused parameters
            v, g = torch.where(frozen, v.detach(), v), torch.where(frozen, g.detach(), g)
        return F.linear(z, g * F.normalize(v, dim=1))
