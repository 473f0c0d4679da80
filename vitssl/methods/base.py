"""What the trainer needs from a method, and nothing more.

A method is an nn.Module that wraps the encoder it pre-trains. The trainer hands it uint8 batches
and gets back a dict of scalar tensors ('loss' is optimised, the rest are logged); after each
optimiser step it calls `after_step` (momentum teachers live there). Augmentation, corruption and
targets are the method's business, so the trainer never learns what SiT or RandSAC is.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from vitssl.data.augment import Augment
from vitssl.models.vit import VisionTransformer, encoder_from_config


class Method(nn.Module):
    encoder: VisionTransformer

    @classmethod
    def from_config(cls, cfg) -> "Method":
        """The method around a fresh encoder and batched augmentation, from a full Config."""
        encoder = encoder_from_config(cfg.model, cfg.data.image_size)
        augment = Augment(cfg.augment, image_size=cfg.data.image_size, mean=cfg.data.mean, std=cfg.data.std)
        return cls(encoder=encoder, cfg=cfg.method, augment=augment)

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """uint8 images (B, 3, S, S) on the device -> {'loss': scalar, other logged scalars...}."""
        raise NotImplementedError

    @torch.no_grad()
    def after_step(self, step: int, total_steps: int) -> dict[str, float]:
        """Called after every optimiser step; returns values to log."""
        return {}

    @torch.no_grad()
    def pictures(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Rows of a picture grid, name -> (B, 3, h, w) in [0, 1], showing what the method sees and predicts."""
        return {}


# The MAE recipe for the shared config sections, used by the pixel-prediction methods (MAE, RandSAC):
# minimal augmentation (crop + flip), fixed sin-cos positions, AdamW betas (0.9, 0.95), no clipping,
# learned tokens and layer-mixing weights kept out of weight decay.
MAE_RECIPE = {
    "model": {"pos_embed": "sincos", "drop_path": 0.0},
    "augment": {"jitter_p": 0.0, "grayscale_p": 0.0, "blur_p": [0.0, 0.0], "solarize_p": [0.0, 0.0]},
    "optim": {"base_lr": 1.5e-4, "betas": [0.9, 0.95], "weight_decay": 0.05, "weight_decay_end": 0.05,
              "clip_grad": 0.0, "no_decay": ["pos_embed", "cls_token", "mask_token", "query_token", "skip_weights"]},
}
