"""AdamW with no weight decay on biases and other one-dimensional parameters (and any the task
declares or `optim.no_decay` names), and gradient clipping per parameter tensor or by one global norm."""

from __future__ import annotations

from typing import Iterable

import torch
import torch.nn as nn


def param_groups(model: nn.Module, no_decay_names: Iterable[str] = (), exempt: Iterable[str] = ()) -> list[dict]:
    """The official SiT / DINO rule: every parameter of more than one dimension that is not a bias
    decays; `exempt` (full names: what the task declares, e.g. a method's `no_weight_decay()`) and
    `no_decay_names` (last name parts, e.g. 'pos_embed': the `optim.no_decay` option) do not."""
    last_parts, full = set(no_decay_names), set(exempt)
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if p.ndim <= 1 or name.endswith(".bias") or name in full or name.split(".")[-1] in last_parts:
            no_decay.append(p)
        else:
            decay.append(p)
    return [{"params": decay, "decay": True}, {"params": no_decay, "decay": False, "weight_decay": 0.0}]


def fused_ok(device: torch.device) -> bool:
    """PyTorch's fused AdamW (one kernel for all parameters) exists for CUDA and, since 2.4, CPU."""
    return device.type in ("cuda", "cpu")


def build_optimizer(model: nn.Module, cfg, device: torch.device, exempt: Iterable[str] = ()) -> torch.optim.AdamW:
    """`cfg` is an OptimConfig; lr and weight decay are set every step by the loop."""
    groups = param_groups(model, cfg.no_decay, exempt)
    return torch.optim.AdamW(groups, lr=cfg.base_lr, betas=tuple(cfg.betas), eps=cfg.eps,
                             weight_decay=cfg.weight_decay, fused=fused_ok(device))


def set_hyperparams(optimizer: torch.optim.Optimizer, lr: float, weight_decay: float) -> None:
    """Set every group's lr (times its 'lr_scale', e.g. layer-wise decay) and weight decay (0 where the
    group's 'decay' flag is off)."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)
        group["weight_decay"] = weight_decay if group.get("decay", True) else 0.0


@torch.no_grad()
def clip_gradients(params: Iterable[torch.Tensor], max_norm: float, mode: str = "per_param") -> torch.Tensor:
    """Clip gradients in place; returns the global norm before clipping (a tensor: no host sync).

    per_param: each tensor's gradient g becomes g * min(1, max_norm / (|g| + 1e-6)) on its own, as the
    official SiT and DINO code do (one batched norm and one batched multiply, not a loop); global:
    torch.nn.utils.clip_grad_norm_.
    """
    params = [p for p in params if p.grad is not None]
    if not params:
        return torch.zeros(())
    if mode == "global":
        return torch.nn.utils.clip_grad_norm_(params, max_norm)
    grads = [p.grad for p in params]
    if mode != "per_param":
        raise ValueError(f"clip mode must be 'per_param' or 'global', got {mode!r}")
    norms = torch._foreach_norm(grads)
    coefs = torch._foreach_add(norms, 1e-6)
    torch._foreach_reciprocal_(coefs)
    torch._foreach_mul_(coefs, max_norm)
    torch._foreach_clamp_max_(coefs, 1.0)  # max_norm / (|g| + 1e-6), at most 1
    torch._foreach_mul_(grads, coefs)
    return torch.linalg.vector_norm(torch.stack(norms))
