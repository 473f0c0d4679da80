"""AdamW with no weight decay on biases, norms, position embeddings, learned tokens and layer-mixing weights."""

from __future__ import annotations

import torch
import torch.nn as nn

NO_DECAY_NAMES = ("pos_embed", "cls_token", "mask_token", "query_token", "skip_weights")


def param_groups(model: nn.Module) -> list[dict]:
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if p.ndim <= 1 or name.split(".")[-1] in NO_DECAY_NAMES:
            no_decay.append(p)
        else:
            decay.append(p)
    return [{"params": decay, "decay": True}, {"params": no_decay, "decay": False, "weight_decay": 0.0}]


def fused_ok(device: torch.device) -> bool:
    """PyTorch's fused AdamW (one kernel for all parameters) exists for CUDA and, since 2.4, CPU."""
    return device.type in ("cuda", "cpu")


def build_optimizer(model: nn.Module, cfg, device: torch.device) -> torch.optim.AdamW:
    """`cfg` is an OptimConfig; lr and weight decay are set every step by the trainer."""
    return torch.optim.AdamW(param_groups(model), lr=cfg.base_lr, betas=tuple(cfg.betas), eps=cfg.eps,
                             weight_decay=cfg.weight_decay, fused=fused_ok(device))


def set_hyperparams(optimizer: torch.optim.Optimizer, lr: float, weight_decay: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
        group["weight_decay"] = weight_decay if group.get("decay", True) else 0.0
