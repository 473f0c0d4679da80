"""DINO: a student matches, across views, the centred and sharpened outputs of its momentum teacher
(docs/METHODS.md §3).

Multi-crop: two global views (the teacher sees these) and several small local ones (the student
sees all); the loss is the cross-entropy between the teacher's distribution for one global view and
the student's for every other view. The teacher's outputs are centred by an EMA of their batch mean
(all-reduced over processes) and sharpened by a low temperature that warms up.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F

from vitssl import distributed as dist
from vitssl.data.augment import Augment
from vitssl.methods.base import Method
from vitssl.methods.common.momentum import MomentumTeacher
from vitssl.methods.dino.config import DINOConfig
from vitssl.methods.dino.head import DINOHead
from vitssl.models.vit import VisionTransformer


def teacher_temperature(progress: float, cfg: DINOConfig) -> float:
    """Linear from teacher_temp to teacher_temp_end over the first teacher_temp_warmup of the steps, then flat."""
    if progress >= cfg.teacher_temp_warmup:
        return cfg.teacher_temp_end
    return cfg.teacher_temp + (cfg.teacher_temp_end - cfg.teacher_temp) * progress / cfg.teacher_temp_warmup


class DINO(MomentumTeacher, Method):
    name = "dino"
    summary = "DINO baseline: self-distillation with a momentum teacher, multi-crop, centring and sharpening"
    Config = DINOConfig
    pool = "cls"
    # DINO's recipe: weight decay cosine 0.04 -> 0.4, clipping 3.0 per tensor, global crops 0.4-1 (ImageNet),
    # global view 1 always blurred, view 2 rarely and sometimes solarised (the shared augment section)
    recipe = {"augment": {"crop_scale": [0.4, 1.0]},
              "optim": {"base_lr": 5e-4, "weight_decay": 0.04, "weight_decay_end": 0.4, "clip_grad": 3.0}}

    def __init__(self, *, encoder: VisionTransformer, cfg, augment: Augment):
        super().__init__(encoder=encoder, cfg=cfg, augment=augment)
        self.head = DINOHead(in_dim=encoder.embed_dim, out_dim=cfg.out_dim, hidden_dim=cfg.hidden_dim,
                             bottleneck_dim=cfg.bottleneck_dim, num_layers=cfg.head_layers,
                             norm_last_layer=cfg.norm_last_layer)
        self.add_teacher("head")
        size = cfg.resolved_local_size(encoder.grid_size[0] * encoder.patch_size, encoder.patch_size)
        local = dataclasses.replace(augment.cfg, crop_scale=tuple(cfg.local_scale), blur_p=(0.5, 0.5),
                                    solarize_p=(0.0, 0.0))
        self.local_augment = Augment(local, image_size=size, mean=augment.mean.flatten().tolist(),
                                     std=augment.std.flatten().tolist())
        self.register_buffer("center", torch.zeros(1, cfg.out_dim))  # checkpointed: resume is exact
        self.register_buffer("progress", torch.zeros(()))  # step / total steps, set after every step

    def views(self, images: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """uint8 (B, 3, S, S) -> (2 global views (B, 3, S, S), local views (B, 3, s, s)), normalised."""
        unit = self.augment.unit(images)
        return ([self.augment(unit, v) for v in range(2)],
                [self.local_augment(unit, 0) for _ in range(self.cfg.local_crops)])

    def student(self, views: list[torch.Tensor], frozen: torch.Tensor) -> torch.Tensor:
        """Head outputs of a list of same-size views, one batched pass: (len(views) * B, out_dim)."""
        cls = self.encoder.forward_features(torch.cat(views), cls_only=True)[:, 0]
        return self.head(cls, frozen)

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        c = self.cfg
        with torch.autocast(images.device.type, enabled=False):
            globals_, locals_ = self.views(images)
        frozen = self.progress < c.freeze_last_layer
        out = [self.student(globals_, frozen)] + ([self.student(locals_, frozen)] if locals_ else [])
        s = (torch.cat(out).float() / c.student_temp).log_softmax(-1).chunk(2 + len(locals_))  # each (B, K)
        with torch.no_grad():
            t_raw = self.teacher_head(self.teacher_encoder.forward_features(torch.cat(globals_), cls_only=True)[:, 0])
            t_raw = t_raw.float()  # (2B, K)
            temp = teacher_temperature(float(self.progress), c)
            t = ((t_raw - self.center) / temp).softmax(-1).chunk(2)
        terms = [-(t[i] * s[v]).sum(-1).mean() for i in range(2) for v in range(len(s)) if v != i]
        loss = torch.stack(terms).mean()
        with torch.no_grad():
            self.update_center(t_raw)
            entropy = -(t[0] * t[0].clamp_min(1e-12).log()).sum(-1).mean()
        return {"loss": loss, "teacher_temp": torch.tensor(temp, device=loss.device), "teacher_entropy": entropy}

    @torch.no_grad()
    def update_center(self, teacher_out: torch.Tensor) -> None:
        """centre <- m * centre + (1 - m) * mean of the teacher's outputs over the global batch."""
        batch_mean = dist.all_reduce_mean(teacher_out.mean(0, keepdim=True))  # equal batches on every process
        m = self.cfg.center_momentum
        self.center.mul_(m).add_(batch_mean, alpha=1 - m)

    @torch.no_grad()
    def after_step(self, step: int, total_steps: int) -> dict[str, float]:
        logged = super().after_step(step, total_steps)
        self.progress.fill_(step / max(total_steps, 1))
        return logged

    @torch.no_grad()
    def pictures(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """The two global views and the first local one (scaled up to the same size)."""
        globals_, locals_ = self.views(images)
        show = lambda x: self.augment.denormalize(x.float()).clamp(0, 1)  # noqa: E731
        rows = {"global 1": show(globals_[0]), "global 2": show(globals_[1])}
        if locals_:
            rows["local 1"] = F.interpolate(show(locals_[0]), size=globals_[0].shape[-2:], mode="nearest")
        return rows
