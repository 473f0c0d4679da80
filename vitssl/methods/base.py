"""The method contract: everything that depends on which method it is, declared in one place.

A method is an `nn.Module` that wraps the encoder it pre-trains (composition: `self.encoder`, a
`VisionTransformer`, is what is kept, exported and evaluated). It lives in its own folder,
`vitssl/methods/<name>/`, subclasses `Method`, and is registered with
`vitssl.methods.registry.register(cls)`, which checks this contract. Training, evaluation and config
then ask the class; none of them names a method.

What a method declares (class attributes):
  name     the value of `method.name` that selects it
  summary  one line for `vitssl methods`
  Config   the dataclass of its `method:` section; `check(p)` validates its own values and an optional
           `check_with(cfg)` the rules that involve other sections (image size, depth...)
  recipe   its defaults for the shared sections, e.g. {"optim": {"base_lr": 1.5e-4}}; a config file
           and the command line override them
  pool     how its encoder is read for frozen features: "cls" (a method that trains the CLS token)
           or "avg" (mean of the patch tokens); evaluation reads a random-init baseline the same way

What a method implements (hooks, called by the training loop):
  __init__(*, encoder, cfg, augment)  keyword-only: the fresh encoder, its Config, batched augmentation
  forward(images, labels)   uint8 (B, 3, S, S) on the device -> {"loss": scalar, other logged scalars}
  after_step(step, total)   after every optimiser step (momentum teachers); returns values to log
  pictures(images)          rows of a picture grid: what the method sees and predicts
  no_weight_decay()         full names of parameters its recipe keeps out of weight decay (on top of
                            the loop's rule: biases and 1-d parameters; `optim.no_decay` adds more)
Any extra state a method keeps (teachers, queues, centres) is a parameter or buffer, so the loop's
checkpoints hold it and resuming is exact.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn as nn

from vitssl.data.augment import Augment
from vitssl.models.vit import VisionTransformer, encoder_from_config

POOLS = ("cls", "avg")


class Method(nn.Module):
    name: ClassVar[str]
    summary: ClassVar[str]
    Config: ClassVar[type]
    recipe: ClassVar[dict] = {}
    pool: ClassVar[str] = "avg"

    encoder: VisionTransformer

    def __init__(self, *, encoder: VisionTransformer, cfg, augment: Augment):
        super().__init__()
        self.encoder, self.cfg, self.augment = encoder, cfg, augment

    @classmethod
    def build(cls, cfg) -> "Method":
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

    def no_weight_decay(self) -> set[str]:
        """Full parameter names (as in `named_parameters()`) kept out of weight decay by this method's recipe."""
        return set()
