"""Config rules shared by every method section with a transformer decoder."""

from __future__ import annotations

from typing import Any

from vitssl.config.schema import require


def check_decoder(cfg: Any, p: str) -> None:
    """decoder_dim/depth/heads/mlp_ratio of a method section `p`."""
    require(cfg.decoder_dim >= 1 and cfg.decoder_depth >= 1, f"{p}.decoder_dim",
            f"and {p}.decoder_depth must be at least 1")
    require(cfg.decoder_heads >= 1 and cfg.decoder_dim % cfg.decoder_heads == 0, f"{p}.decoder_dim",
            f"({cfg.decoder_dim}) must be divisible by {p}.decoder_heads ({cfg.decoder_heads})")
    require(cfg.decoder_dim % 4 == 0, f"{p}.decoder_dim", "must be divisible by 4 (sin-cos positions)")
    require(cfg.decoder_mlp_ratio > 0, f"{p}.decoder_mlp_ratio", "must be positive")
