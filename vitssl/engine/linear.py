"""Linear probes on cached features: BatchNorm without affine parameters, then a linear layer.

Many probes train at once as one batched tensor program: G feature groups (blocks of a layer sweep,
or few-shot draws) x L learning rates share every step's mini-batch, so a sweep over 12 blocks and
3 learning rates costs about as much as one probe, and 90 epochs take seconds on a CPU.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from tqdm import tqdm

EPS = 1e-5


@dataclass
class Probes:
    """G x L trained probes: BatchNorm running statistics per group, weights per (group, lr)."""

    mean: torch.Tensor  # (G, 1, F)
    var: torch.Tensor  # (G, 1, F)
    weight: torch.Tensor  # (G, L, F, C)
    bias: torch.Tensor  # (G, L, 1, C)
    batchnorm: bool = True

    def scores(self, x: torch.Tensor, chunk: int = 8192) -> torch.Tensor:
        """x (G, M, F) -> class scores (G, L, M, C)."""
        out = []
        for i in range(0, x.shape[1], chunk):
            xb = x[:, i:i + chunk].float()
            if self.batchnorm:
                xb = (xb - self.mean) / (self.var + EPS).sqrt()
            out.append(torch.einsum("gmf,glfc->glmc", xb, self.weight) + self.bias)
        return torch.cat(out, dim=2)


def train_probes(x: torch.Tensor, y: torch.Tensor, *, num_classes: int, lrs: list[float], epochs: int = 90,
                 batch_size: int = 256, weight_decay: float = 0.0, momentum: float = 0.9, batchnorm: bool = True,
                 seed: int = 0, progress: Optional[str] = None) -> Probes:
    """x (G, N, F) features (or (N, F) for one group), y (N,) or (G, N) labels. SGD with momentum, cosine
    learning rate from lr * batch/256 per step, mini-batches drawn in a seeded order. `progress`: the
    label of a progress bar (none without it)."""
    if x.ndim == 2:
        x = x[None]
    g, n, f = x.shape
    y = y.expand(g, n) if y.ndim == 1 else y
    device = x.device
    lr = torch.tensor(lrs, dtype=torch.float32, device=device).view(1, -1, 1, 1) * min(batch_size, n) / 256
    gen = torch.Generator(device="cpu").manual_seed(seed)
    w = torch.zeros(g, len(lrs), f, num_classes, device=device)
    w.normal_(0, 0.01, generator=torch.Generator(device=device).manual_seed(seed))
    b = torch.zeros(g, len(lrs), 1, num_classes, device=device)
    vw, vb = torch.zeros_like(w), torch.zeros_like(b)
    run_mean, run_var = torch.zeros(g, 1, f, device=device), torch.ones(g, 1, f, device=device)
    steps_per_epoch = max(1, n // batch_size)
    total = epochs * steps_per_epoch
    step = 0
    bar = tqdm(total=total, desc=progress, unit="step", disable=progress is None, file=sys.stderr, dynamic_ncols=True,
               leave=False)
    for _ in range(epochs):
        order = torch.randperm(n, generator=gen).to(device)
        for i in range(steps_per_epoch):
            idx = order[i * batch_size:(i + 1) * batch_size]
            xb = x[:, idx].float()  # (G, B, F)
            yb = y[:, idx]  # (G, B)
            if batchnorm:
                mu, var = xb.mean(1, keepdim=True), xb.var(1, unbiased=False, keepdim=True)
                run_mean.lerp_(mu, 0.1)
                run_var.lerp_(xb.var(1, unbiased=True, keepdim=True) if xb.shape[1] > 1 else var, 0.1)
                xb = (xb - mu) / (var + EPS).sqrt()
            w.requires_grad_(True)
            b.requires_grad_(True)
            logits = torch.einsum("gbf,glfc->glbc", xb, w) + b  # (G, L, B, C)
            target = yb[:, None].expand(-1, len(lrs), -1)
            loss = F.cross_entropy(logits.reshape(-1, num_classes), target.reshape(-1), reduction="sum") / xb.shape[1]
            gw, gb = torch.autograd.grad(loss, (w, b))  # each probe's own mean loss: probes are independent
            with torch.no_grad():
                w.requires_grad_(False)
                b.requires_grad_(False)
                scale = 0.5 * (1 + math.cos(math.pi * step / total))
                vw.mul_(momentum).add_(gw + weight_decay * w)
                vb.mul_(momentum).add_(gb)
                w.sub_(lr * scale * vw)
                b.sub_(lr * scale * vb)
            step += 1
            bar.update(1)
    bar.close()
    return Probes(run_mean, run_var, w.detach(), b.detach(), batchnorm)
