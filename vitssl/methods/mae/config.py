"""Config of the MAE baseline (He et al. 2022): the masked-autoencoder both papers compare against."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from vitssl.config.schema import require
from vitssl.methods.common.decoder import check_decoder


@dataclass
class MAEConfig:
    name: Literal["mae"] = "mae"
    mask_ratio: float = 0.75  # fraction of patch tokens removed from the encoder's input
    decoder_dim: int = 256
    decoder_depth: int = 4
    decoder_heads: int = 8
    decoder_mlp_ratio: float = 4.0
    norm_pix: bool = True  # targets: each patch standardised by its own mean and variance

    def check(self, p: str) -> None:
        require(0 < self.mask_ratio < 1, f"{p}.mask_ratio", "must be in (0, 1)")
        check_decoder(self, p)

    def check_with(self, cfg) -> None:
        n = (cfg.data.image_size // cfg.model.patch_size) ** 2
        require(round(n * (1 - self.mask_ratio)) >= 1, "method.mask_ratio",
                f"({self.mask_ratio}) leaves no visible token of {n}; lower it")
