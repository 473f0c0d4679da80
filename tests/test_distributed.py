"""The distributed path on CPU with gloo: the same code as a single process, with global statistics."""

import json
import os
import subprocess
import sys

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from tests.conftest import ROOT, tiny_overrides
from vitssl.distributed import SyncBatchNorm1d, resolve_device
from vitssl.engine import checkpoint as ckpt
from vitssl.errors import ConfigError
from vitssl.methods.common.momentum import info_nce


def test_resolve_device(monkeypatch):
    """auto picks CUDA where there is one; asking for CUDA without one names the key and the fix."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == "cpu" and resolve_device("cpu") == "cpu"
    with pytest.raises(ConfigError, match="config key 'device' is 'cuda' but .*; use cpu"):
        resolve_device("cuda")
    with pytest.raises(ConfigError, match="^--device is 'cuda'"):
        resolve_device("cuda", key="--device")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == "cuda" and resolve_device("cuda") == "cuda"


def _worker(rank, world, init_file, out_dir):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    torch.manual_seed(0)
    x = torch.randn(8, 5)
    q, k = torch.randn(8, 4), torch.randn(8, 4)
    part = slice(rank * 4, rank * 4 + 4)
    bn = SyncBatchNorm1d(5)
    xi = x[part].clone().requires_grad_(True)
    y = bn(xi)
    (y * torch.arange(5.0)).sum().backward()
    loss = info_nce(q[part], k[part], 0.2)
    torch.save({"y": y.detach(), "grad": xi.grad, "mean": bn.running_mean, "var": bn.running_var, "loss": loss},
               os.path.join(out_dir, f"{rank}.pt"))
    dist.barrier()  # no rank tears the group down while another still talks to it (gloo aborts)
    dist.destroy_process_group()


def test_global_batchnorm_and_infonce_match_single_process(tmp_path):
    mp.spawn(_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    parts = [torch.load(tmp_path / f"{r}.pt", weights_only=True) for r in range(2)]
    torch.manual_seed(0)
    x = torch.randn(8, 5)
    q, k = torch.randn(8, 4), torch.randn(8, 4)
    bn = torch.nn.BatchNorm1d(5)
    xr = x.clone().requires_grad_(True)
    y = bn(xr)
    (y * torch.arange(5.0)).sum().backward()
    assert torch.allclose(torch.cat([p["y"] for p in parts]), y, atol=1e-5)
    # each process holds the gradient of the summed loss for its own inputs
    assert torch.allclose(torch.cat([p["grad"] for p in parts]), xr.grad, atol=1e-4)
    assert torch.allclose(parts[0]["mean"], bn.running_mean, atol=1e-6)
    assert torch.allclose(parts[1]["var"], bn.running_var, atol=1e-5)
    # InfoNCE with keys gathered from both processes = the loss over the whole batch
    mean_loss = (parts[0]["loss"] + parts[1]["loss"]) / 2
    assert torch.allclose(mean_loss, info_nce(q, k, 0.2), atol=1e-5)


def test_torchrun_two_processes_pretrain(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "vitssl",
           "pretrain", *tiny_overrides(tmp_path, "device=cpu", "train.epochs=2")]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    state = ckpt.load(tmp_path / "run" / "checkpoints" / "last.pt")
    assert state["world_size"] == 2 and len(state["rng"]) == 2 and state["step"] == 8
    assert not torch.equal(state["rng"][0]["cpu"], state["rng"][1]["cpu"])  # each process its own stream
    rows = [json.loads(r) for r in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == list(range(1, 9))  # logged once, by rank 0
    assert [r["epoch"] for r in rows if "knn_acc" in r] == [1, 2]  # the monitor (quickstart's) on rank 0 only


@pytest.mark.parametrize("world", [2])
def test_batch_must_split_over_processes(tmp_path, world):
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(world), "-m",
           "vitssl", "pretrain", *tiny_overrides(tmp_path, "train.batch_size=15")]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode != 0 and "must be divisible by the number of processes" in res.stderr
