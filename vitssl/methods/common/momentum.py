"""Momentum (EMA) teachers and InfoNCE with keys from every process: SiT, MoCo v3 and DINO."""

from __future__ import annotations

import copy

import torch
import torch.nn as nn
import torch.nn.functional as F

from vitssl import distributed as dist
from vitssl.engine.schedules import cosine
from vitssl.models.vit import DropPath


def frozen_copy(module: nn.Module) -> nn.Module:
    """A momentum teacher's start: a copy of `module` without gradients and without stochastic depth."""
    teacher = copy.deepcopy(module)
    for m in teacher.modules():
        if isinstance(m, DropPath):
            m.p = 0.0
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


def teacher_momentum(step: int, total: int, start: float, end: float) -> float:
    """Cosine from `start` at step 0 to `end` at the last step (0.996 -> 1 in SiT and DINO)."""
    return cosine(step, total, start, end)


@torch.no_grad()
def ema_update(teacher: list[torch.Tensor], student: list[torch.Tensor], momentum: float) -> None:
    """teacher <- momentum * teacher + (1 - momentum) * student, all tensors in one batched call."""
    torch._foreach_lerp_(teacher, [p.detach() for p in student], 1.0 - momentum)


@torch.no_grad()
def momentum_step(teachers: list[nn.Module], students: list[nn.Module], step: int, total: int, start: float,
                  end: float) -> float:
    """After an optimiser step: move each teacher module toward its student by EMA at the momentum of
    `step`; returns that momentum (to log)."""
    m = teacher_momentum(step, total, start, end)
    ema_update([p for t in teachers for p in t.parameters()], [p for s in students for p in s.parameters()], m)
    return m


class MomentumTeacher:
    """Mixin for a `Method` with an EMA teacher: `teacher_encoder` and `teacher_head` follow the encoder and
    one student head, moved after every optimiser step at the cosine momentum `cfg.momentum` ->
    `cfg.momentum_end`. The attribute names are the checkpoints' (`teacher_encoder.*`, `teacher_head.*`)."""

    def add_teacher(self, head: str) -> None:
        """Frozen copies of `self.encoder` and of the student head named `head` (an attribute name: the head
        is looked up, not stored again, so it is not registered twice)."""
        self._student_head = head
        self.teacher_encoder, self.teacher_head = frozen_copy(self.encoder), frozen_copy(getattr(self, head))
        self.momentum = self.cfg.momentum  # the momentum of the last step, for a reader of the module

    def teacher_parameters(self) -> list[torch.Tensor]:
        return list(self.teacher_encoder.parameters()) + list(self.teacher_head.parameters())

    @torch.no_grad()
    def after_step(self, step: int, total_steps: int) -> dict[str, float]:
        students = [self.encoder, getattr(self, self._student_head)]
        teachers = [self.teacher_encoder, self.teacher_head]
        self.momentum = m = momentum_step(teachers, students, step, total_steps, self.cfg.momentum,
                                          self.cfg.momentum_end)
        return {"momentum": m}


def info_nce(query: torch.Tensor, keys: torch.Tensor, temperature: float) -> torch.Tensor:
    """InfoNCE of local queries (B, E) against keys gathered from every process (W*B, E); scaled by 2*tau."""
    q = F.normalize(query.float(), dim=1)
    k = F.normalize(dist.all_gather_cat(keys.float().contiguous()), dim=1)
    logits = q @ k.T / temperature  # (B, W*B): the positive of row i is key i of this process
    target = torch.arange(q.shape[0], device=q.device) + dist.rank() * q.shape[0]
    return F.cross_entropy(logits, target) * 2 * temperature
