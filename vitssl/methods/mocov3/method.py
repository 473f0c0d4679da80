"""MoCo v3: a student encoder with projection and prediction heads learns to pick, among the keys of the
whole global batch, its momentum encoder's key of the other view of the same image (docs/METHODS.md §3).

Two views per image; q = predictor(projector(CLS(view))), k = momentum projector(momentum CLS(other
view)); symmetric InfoNCE, tau 0.2, keys gathered from every process, each direction scaled by 2 tau.
"""

from __future__ import annotations

import torch

from vitssl.data.augment import Augment
from vitssl.methods.base import Method
from vitssl.methods.common.momentum import MomentumTeacher, info_nce
from vitssl.methods.mocov3.config import MoCoV3Config
from vitssl.models.heads import ProjectionHead
from vitssl.models.vit import VisionTransformer


class MoCoV3(MomentumTeacher, Method):
    name = "mocov3"
    summary = "MoCo v3 baseline: momentum-contrastive learning with a predictor (ViT recipe)"
    Config = MoCoV3Config
    pool = "cls"  # the contrastive loss trains the CLS token
    # the paper's ViT recipe: fixed sin-cos positions, BYOL augmentation (crops down to 8 %), AdamW
    # lr 1.5e-4 x batch / 256, weight decay 0.1, no gradient clipping
    recipe = {"model": {"pos_embed": "sincos"}, "augment": {"crop_scale": [0.08, 1.0]},
              "optim": {"base_lr": 1.5e-4, "weight_decay": 0.1, "weight_decay_end": 0.1, "clip_grad": 0.0}}

    def __init__(self, *, encoder: VisionTransformer, cfg, augment: Augment):
        super().__init__(encoder=encoder, cfg=cfg, augment=augment)
        relu = ("relu",)
        self.proj_head = ProjectionHead(in_dim=encoder.embed_dim, hidden_dim=cfg.proj_hidden, out_dim=cfg.proj_dim,
                                        num_layers=cfg.proj_layers, activations=relu)
        self.predictor = ProjectionHead(in_dim=cfg.proj_dim, hidden_dim=cfg.pred_hidden, out_dim=cfg.proj_dim,
                                        num_layers=cfg.pred_layers, activations=relu, last_bn=False)
        if cfg.freeze_patch_embed:
            encoder.patch_embed.requires_grad_(False)
        self.add_teacher("proj_head")

    def query(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, S, S) normalised view -> (B, proj_dim) student query."""
        cls = self.encoder.forward_features(x, cls_only=True)[:, 0]  # (B, D)
        return self.predictor(self.proj_head(cls))

    @torch.no_grad()
    def key(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, S, S) normalised view -> (B, proj_dim) momentum key."""
        return self.teacher_head(self.teacher_encoder.forward_features(x, cls_only=True)[:, 0])

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        with torch.autocast(images.device.type, enabled=False):  # augmentation in fp32
            unit = self.augment.unit(images)
            x1, x2 = (self.augment(unit, v) for v in range(2))
        q1, q2 = self.query(x1), self.query(x2)  # each view its own BatchNorm statistics, as the paper
        k1, k2 = self.key(x1), self.key(x2)
        tau = self.cfg.temperature
        return {"loss": info_nce(q1, k2, tau) + info_nce(q2, k1, tau)}

    @torch.no_grad()
    def pictures(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """The two augmented views the student compares."""
        unit = self.augment.unit(images)
        return {f"view {v + 1}": self.augment.denormalize(self.augment(unit, v).float()).clamp(0, 1) for v in range(2)}
