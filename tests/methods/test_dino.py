"""DINO: multi-crop views, the head's weight-normalised last layer and its freeze, the teacher's
temperature, centre and momentum, the same centre across processes, a short run that learns."""

import math
import os

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from tests.conftest import TINY_MODEL
from vitssl.config import load_config
from vitssl.methods import registry
from vitssl.methods.dino.method import teacher_temperature

SMALL = [*TINY_MODEL, "data.image_size=32", "method.out_dim=128", "method.hidden_dim=64", "method.bottleneck_dim=32",
         "method.local_crops=2"]


def build(*extra):
    torch.manual_seed(0)
    cfg = load_config(None, ["method.name=dino", *SMALL, *extra])
    return registry.get("dino").build(cfg), cfg


def test_multi_crop_views_and_recipe():
    m, cfg = build()
    assert cfg.optim.weight_decay == 0.04 and cfg.optim.weight_decay_end == 0.4 and cfg.optim.clip_grad == 3.0
    assert m.pool == "cls" and cfg.method.resolved_local_size(32, 4) == 16
    assert cfg.method.resolved_local_size(224, 16) == 96
    globals_, locals_ = m.views(torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8))
    assert [g.shape for g in globals_] == [(3, 3, 32, 32)] * 2 and [v.shape for v in locals_] == [(3, 3, 16, 16)] * 2
    assert not any(p.requires_grad for p in m.teacher_parameters())


def test_teacher_temperature_and_momentum_follow_their_closed_forms():
    _, cfg = build()
    c = cfg.method
    assert teacher_temperature(0.0, c) == 0.04 and teacher_temperature(0.3, c) == 0.07
    assert math.isclose(teacher_temperature(0.15, c), 0.055) and teacher_temperature(0.9, c) == 0.07
    m, _ = build()
    for step, total in ((0, 10), (4, 10), (10, 10)):
        expected = 1.0 - (1.0 - 0.996) * (math.cos(math.pi * step / total) + 1) / 2
        assert math.isclose(m.after_step(step, total)["momentum"], expected, rel_tol=1e-12)
        assert math.isclose(float(m.progress), step / total, rel_tol=1e-6)


def test_loss_pairs_every_view_with_the_other_global_views_teacher():
    m, _ = build()
    images = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    torch.manual_seed(5)
    out = m(images)
    # cross-entropy of distributions over K = 128 outputs: at most about log K plus the sharpening
    assert out["loss"].ndim == 0 and 0 < out["loss"].item() < 3 * math.log(128)
    assert math.isclose(out["teacher_temp"].item(), 0.04, rel_tol=1e-6)  # a float32 tensor
    out["loss"].backward()
    assert all(p.grad is None for p in m.teacher_parameters())
    assert m.encoder.blocks[0].attn.qkv.weight.grad is not None
    # the first 1 % of the steps the last layer is frozen: zero gradients, not none (DDP needs none missing)
    assert m.head.weight_v.grad is not None and not m.head.weight_v.grad.any()
    m.zero_grad()
    m.after_step(50, 100)
    m(images)["loss"].backward()
    assert m.head.weight_v.grad.abs().sum() > 0
    assert not m.head.weight_g.requires_grad  # norm_last_layer: the gain stays 1


def test_centre_is_an_ema_of_the_teacher_outputs():
    m, _ = build()
    t = torch.randn(6, 128)
    m.center.fill_(1.0)
    m.update_center(t)
    assert torch.allclose(m.center, 0.9 * torch.ones(1, 128) + 0.1 * t.mean(0, keepdim=True), atol=1e-6)


def _worker(rank, world, init_file, out_dir):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    m, _ = build()
    t = torch.randn(8, 128, generator=torch.Generator().manual_seed(2))
    m.update_center(t[rank * 4:rank * 4 + 4])
    torch.save({"center": m.center}, os.path.join(out_dir, f"{rank}.pt"))
    dist.barrier()  # no rank tears the group down while another still talks to it (gloo aborts)
    dist.destroy_process_group()


def test_centre_across_two_processes_matches_one_process(tmp_path):
    mp.spawn(_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    parts = [torch.load(tmp_path / f"{r}.pt", weights_only=True)["center"] for r in range(2)]
    m, _ = build()
    m.update_center(torch.randn(8, 128, generator=torch.Generator().manual_seed(2)))
    assert torch.allclose(parts[0], m.center, atol=1e-6) and torch.allclose(parts[1], m.center, atol=1e-6)


def test_a_short_cifar10_run_lowers_the_loss_without_collapse(cifar_root, tmp_path):
    """DINO's cross-entropy is the teacher's entropy plus KL(teacher || student). Early on the centre
    (starting at zero) raises the teacher's entropy, so the loss itself rises for a while; what the
    student learns is the KL term, which must fall (with a student that cannot learn, lr 1e-9, it rose
    from 1.7 to 2.2 on this run), while the teacher stays off the uniform output (entropy below
    log out_dim: no uniform collapse) and the features spread (no one-point collapse)."""
    import json

    from vitssl.training.pretrain import pretrain

    cfg = load_config("cpu/dino_cifar10", [*SMALL, f"data.root={cifar_root}", "data.limit=512", "data.num_workers=0",
                                           "train.epochs=8", "train.batch_size=64", "train.max_minutes=null",
                                           "optim.warmup_epochs=0.5", "log.every_steps=1", "log.knn_every=8",
                                           "log.knn_train=256", "log.knn_test=128", "log.images_every=0",
                                           "log.progress=false", "log.tensorboard=false",
                                           f"output_dir={tmp_path / 'run'}"])
    pretrain(cfg)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "loss" in r]
    kl = [r["loss"] - r["teacher_entropy"] for r in steps]
    assert len(kl) == 64 and sum(kl[-8:]) / 8 < 0.8 * sum(kl[:4]) / 4, kl
    assert max(r["teacher_entropy"] for r in steps) < math.log(128) - 0.5, [r["teacher_entropy"] for r in steps]
    knn = [r for r in rows if "embed_std" in r][-1]
    assert knn["embed_std"] > 0.2, knn
