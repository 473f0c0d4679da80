"""Config of MoCo v3 (Chen, Xie, He 2021), the ViT recipe (docs/METHODS.md §3)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from vitssl.config.schema import require


@dataclass
class MoCoV3Config:
    name: Literal["mocov3"] = "mocov3"
    proj_hidden: int = 4096  # projection MLP: encoder CLS -> hidden -> hidden -> proj_dim, BatchNorm throughout
    proj_dim: int = 256
    proj_layers: int = 3
    pred_hidden: int = 4096  # predictor MLP on the student only: proj_dim -> hidden -> proj_dim
    pred_layers: int = 2
    temperature: float = 0.2
    momentum: float = 0.99  # momentum encoder's EMA, cosine to momentum_end
    momentum_end: float = 1.0
    freeze_patch_embed: bool = False  # the paper's stability trick: keep the random patch projection fixed

    def check(self, p: str) -> None:
        require(min(self.proj_hidden, self.proj_dim, self.pred_hidden) >= 1, f"{p}.proj_hidden",
                f"{p}.proj_dim and {p}.pred_hidden must be at least 1")
        require(self.proj_layers >= 2 and self.pred_layers >= 2, f"{p}.proj_layers",
                f"and {p}.pred_layers must be at least 2")
        require(self.temperature > 0, f"{p}.temperature", "must be positive")
        require(0 <= self.momentum <= self.momentum_end <= 1, f"{p}.momentum",
                f"must satisfy 0 <= momentum <= {p}.momentum_end <= 1")
