"""A toy method in a folder of its own, registered from outside vitssl: the proof that adding a method
changes no file outside its folder. It denoises: the encoder sees the image with Gaussian noise
added, a linear head on its patch tokens predicts the clean patches."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn as nn

from vitssl.config.schema import require
from vitssl.methods import registry
from vitssl.methods.base import Method
from vitssl.models.patches import patch_targets


@dataclass
class ToyConfig:
    name: Literal["toy"] = "toy"
    noise: float = 0.5  # std of the Gaussian noise added to the normalised image

    def check(self, p: str) -> None:
        require(self.noise >= 0, f"{p}.noise", "must be >= 0")


@registry.register
class Toy(Method):
    name = "toy"
    summary = "toy: denoise patches from a noisy image"
    Config = ToyConfig
    recipe = {"optim": {"base_lr": 2e-3}, "augment": {"jitter_p": 0.0}}
    pool = "avg"

    def __init__(self, *, encoder, cfg, augment):
        super().__init__(encoder=encoder, cfg=cfg, augment=augment)
        self.head = nn.Linear(encoder.embed_dim, encoder.patch_size ** 2 * 3)
        self.register_buffer("seen", torch.zeros((), dtype=torch.long))  # extra state, kept by checkpoints

    def forward(self, images, labels=None):
        with torch.autocast(images.device.type, enabled=False):
            clean = self.augment(images, 0)  # (B, C, S, S) normalised
        noisy = clean + self.cfg.noise * torch.randn_like(clean)
        tokens = self.encoder.forward_features(noisy)[:, 1:]  # (B, N, D)
        loss = (self.head(tokens).float() - patch_targets(clean, self.encoder.patch_size, False)).pow(2).mean()
        self.seen += images.shape[0]
        return {"loss": loss}

    def no_weight_decay(self):
        return {f"encoder.{n}" for n in self.encoder.no_weight_decay()}
