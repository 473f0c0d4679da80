"""The few distributed primitives the library needs, all no-ops in a single process.

Under `torchrun` the environment carries RANK / WORLD_SIZE / LOCAL_RANK; we use gloo on CPU and
nccl on CUDA, so the same code path is tested on a laptop.
"""

from __future__ import annotations

import os
from datetime import timedelta

import torch
import torch.distributed as dist
import torch.nn as nn

from vitssl.errors import ConfigError


def is_dist() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_dist() else 0


def world_size() -> int:
    return dist.get_world_size() if is_dist() else 1


def is_main() -> bool:
    return rank() == 0


def launch_rank() -> int:
    """This process's rank as torchrun set it (0 when not launched by torchrun), before or after the group."""
    return int(os.environ.get("RANK", "0"))


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def resolve_device(name: str, key: str = "config key 'device'") -> str:
    """'auto' | 'cpu' | 'cuda' -> 'cpu' or 'cuda'; asking for CUDA where there is none is a clear error
    naming `key` (where the choice came from) and the fix."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        why = "this torch is a CPU-only build" if torch.version.cuda is None else "no CUDA GPU is visible"
        raise ConfigError(f"{key} is 'cuda' but {why}; use cpu (or auto: CUDA where there is one)")
    return name


def init(device_type: str) -> torch.device:
    """Join the process group when launched by torchrun; return this process's device."""
    if launched_by_torchrun() and not is_dist():
        backend = "nccl" if device_type == "cuda" else "gloo"
        dist.init_process_group(backend, timeout=timedelta(minutes=30))
    if device_type == "cuda":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return torch.device("cuda", local)
    return torch.device(device_type)


def shutdown() -> None:
    if is_dist():
        dist.barrier()
        dist.destroy_process_group()


def barrier() -> None:
    if is_dist():
        dist.barrier()


@torch.no_grad()
def all_gather_cat(x: torch.Tensor) -> torch.Tensor:
    """Concatenate `x` from every process along dim 0, rank order (no gradient)."""
    if not is_dist():
        return x
    parts = [torch.empty_like(x) for _ in range(world_size())]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts, 0)


@torch.no_grad()
def all_reduce_mean(x: torch.Tensor) -> torch.Tensor:
    if not is_dist():
        return x
    x = x.clone()
    dist.all_reduce(x)
    return x / world_size()


def any_process(flag: bool, device: torch.device) -> bool:
    """True on every process if `flag` is true on any of them."""
    if not is_dist():
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def broadcast_object(obj):
    """Rank 0's Python object on every process."""
    if not is_dist():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


class SyncBatchNorm1d(nn.BatchNorm1d):
    """BatchNorm over (B, C) whose statistics span the global batch of all processes.

    PyTorch's SyncBatchNorm refuses CPU tensors; this one reduces (sum, sum of squares, count)
    with a differentiable all-reduce, so it works on gloo and nccl alike. Single process: plain BN.
    State-dict keys are those of nn.BatchNorm1d.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and is_dist() and world_size() > 1):
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce

        xf = x.float()
        local = torch.cat([xf.sum(0), (xf * xf).sum(0), xf.new_tensor([x.shape[0]])])
        total = all_reduce(local)  # (2C + 1,) summed over processes, gradient flows back to every rank
        c = x.shape[1]
        n = total[-1]
        mean = total[:c] / n
        var = (total[c:2 * c] / n - mean * mean).clamp_min(0)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked += 1
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.lerp_(mean.detach().to(self.running_mean), m)
                self.running_var.lerp_((var.detach() * n / (n - 1).clamp_min(1)).to(self.running_var), m)
        y = (xf - mean) * torch.rsqrt(var + self.eps)
        if self.affine:
            y = y * self.weight + self.bias
        return y.to(x.dtype)
