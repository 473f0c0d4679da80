"""BENCHMARK BASELINE ONLY - never imported by vitssl.

The public SiT code's training step, for a side-by-side timing against vitssl's. The model and the
losses are vitssl's own SiT (so the maths is identical); what differs is how the work is done, as
the research code does it:
- attention written out, softmax(q k^T / sqrt(d)) v with the attention matrix materialised,
  instead of one fused kernel;
- the teacher's last block computed for every token, of which the loss reads the CLS token alone;
- stochastic depth as timm applies it: the branch computed for every sample, then multiplied by 0
  for the dropped ones;
- AdamW and gradient clipping one parameter at a time (`foreach=False`), the teacher's EMA as a
  Python loop over parameters;
- the batches from `sit_data.py`: PIL augmentation in DataLoader workers, NumPy GMML in the collate.
"""

from __future__ import annotations

from contextlib import contextmanager
from unittest import mock

import torch

from vitssl.methods.common.momentum import teacher_momentum
from vitssl.models.vit import Block


def _explicit_attend(q, k, v, mask=None):
    attn = (q @ k.transpose(-2, -1)) * q.shape[-1] ** -0.5  # (B, h, Nq, Nk)
    if mask is not None:
        attn = attn.masked_fill(~mask, float("-inf"))
    return attn.softmax(-1) @ v


def research_block(self, x, attn_mask=None, queries=None):
    """timm's `Block`: every token computed, stochastic depth as a multiply by the scaled keep mask."""
    x = x + self.drop_path(self.attn(self.norm1(x), attn_mask))
    x = x + self.drop_path(self.mlp(self.norm2(x)))
    return x[:, :queries]  # the first `queries` tokens kept, as the caller asked


@contextmanager
def research_code_model():
    """vitssl's ViT run as the research code runs it: timm's pre-SDPA `Attention`, every block
    computing every token even where only the CLS token is read, and every sample through every
    branch even where stochastic depth drops it."""
    with mock.patch("vitssl.models.vit.attend", _explicit_attend), \
            mock.patch.object(Block, "forward", research_block):
        yield


def reference_optimizer(method: torch.nn.Module, cfg) -> torch.optim.AdamW:
    params = [p for p in method.parameters() if p.requires_grad]
    return torch.optim.AdamW(params, lr=cfg.base_lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay,
                             foreach=False)


def reference_step(method, opt, batch, clip: float, step: int, total: int) -> float:
    """One step on a collated batch (view 1, view 2, corrupted 1, corrupted 2, mask 1, mask 2)."""
    v1, v2, c1, c2, m1, m2 = batch
    opt.zero_grad(set_to_none=True)
    loss = method.losses([v1, v2], [c1, c2], [m1, m2])["loss"]
    loss.backward()
    if clip:
        for p in method.parameters():  # the official per-tensor clipping, one tensor (and one sync) at a time
            if p.grad is not None:
                norm = p.grad.norm(2)
                coef = clip / (norm.item() + 1e-6)
                if coef < 1:
                    p.grad.mul_(coef)
    opt.step()
    m = teacher_momentum(step, total, method.cfg.momentum, method.cfg.momentum_end)
    student = list(method.encoder.parameters()) + list(method.proj_head.parameters())
    with torch.no_grad():
        for t, s in zip(method.teacher_parameters(), student):  # one parameter at a time
            t.mul_(m).add_(s, alpha=1 - m)
    return float(loss.detach())
