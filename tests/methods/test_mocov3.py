"""MoCo v3: keys from the momentum encoder of the other view, the predictor on the student only, the
momentum schedule, the frozen patch projection, the same keys and loss across processes, learning."""

import json
import math
import os

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from tests.conftest import TINY_MODEL
from vitssl.config import load_config
from vitssl.methods import registry
from vitssl.methods.common.momentum import info_nce

SMALL = [*TINY_MODEL, "data.image_size=32", "method.proj_hidden=64", "method.proj_dim=32", "method.pred_hidden=64"]


def build(*extra):
    torch.manual_seed(0)
    cfg = load_config(None, ["method.name=mocov3", *SMALL, *extra])
    return registry.get("mocov3").build(cfg), cfg


def test_recipe_and_heads():
    m, cfg = build()
    assert cfg.model.pos_embed == "sincos" and cfg.augment.crop_scale == (0.08, 1.0)
    assert cfg.optim.base_lr == 1.5e-4 and cfg.optim.weight_decay == cfg.optim.weight_decay_end == 0.1
    assert cfg.optim.clip_grad == 0 and m.pool == "cls"
    assert isinstance(m.predictor.mlp[-1], torch.nn.Linear)  # MoCo v3's predictor ends without BatchNorm
    assert not isinstance(m.proj_head.mlp[-1], torch.nn.Linear)  # the projector ends with a BatchNorm
    assert not any(p.requires_grad for p in m.teacher_parameters())
    assert not hasattr(m, "teacher_predictor")


def test_loss_is_symmetric_infonce_of_queries_against_the_other_views_keys():
    m, _ = build()
    x1, x2 = torch.randn(2, 6, 3, 32, 32)
    q1, q2, k1, k2 = m.query(x1), m.query(x2), m.key(x1), m.key(x2)
    expected = info_nce(q1, k2, 0.2) + info_nce(q2, k1, 0.2)
    torch.manual_seed(1)
    images = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8)
    out = m(images)
    out["loss"].backward()
    assert out["loss"].ndim == 0 and 0 < out["loss"].item() < 2 * 2 * 0.2 * math.log(6) * 3
    assert all(p.grad is None for p in m.teacher_parameters())
    assert m.predictor.mlp[0].weight.grad is not None
    assert torch.isfinite(expected) and expected.item() > 0


def test_momentum_follows_its_cosine_and_the_teacher_moves_toward_the_student():
    m, _ = build()
    for step, total in ((0, 10), (5, 10), (10, 10)):
        expected = 1.0 - (1.0 - 0.99) * (math.cos(math.pi * step / total) + 1) / 2
        assert math.isclose(m.after_step(step, total)["momentum"], expected, rel_tol=1e-12)
    with torch.no_grad():
        for p in m.encoder.parameters():
            p.add_(1.0)
    before = m.teacher_encoder.blocks[0].attn.qkv.weight.clone()
    m.after_step(0, 10)  # momentum 0.99: 1 % of the way to the student
    moved = m.teacher_encoder.blocks[0].attn.qkv.weight - before
    target = m.encoder.blocks[0].attn.qkv.weight - before
    assert torch.allclose(moved, 0.01 * target, atol=1e-6)


def test_frozen_patch_projection_stays_random():
    m, _ = build("method.freeze_patch_embed=true")
    w = m.encoder.patch_embed.proj.weight
    assert not w.requires_grad
    m(torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8))["loss"].backward()
    assert w.grad is None and m.encoder.blocks[0].attn.qkv.weight.grad is not None


def _worker(rank, world, init_file, out_dir):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    m, _ = build()
    x1, x2 = torch.randn(2, 8, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    part = slice(rank * 4, rank * 4 + 4)
    q1, q2, k1, k2 = m.query(x1[part]), m.query(x2[part]), m.key(x1[part]), m.key(x2[part])
    loss = info_nce(q1, k2, 0.2) + info_nce(q2, k1, 0.2)
    torch.save({"k1": k1, "k2": k2, "loss": loss.detach()}, os.path.join(out_dir, f"{rank}.pt"))
    dist.barrier()  # no rank tears the group down while another still talks to it (gloo aborts)
    dist.destroy_process_group()


def test_keys_and_loss_across_two_processes_match_one_process(tmp_path):
    """Global BatchNorm in the heads and keys gathered from every process: two gloo processes with half a
    batch each compute the keys and the loss of one process with the whole batch."""
    mp.spawn(_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    parts = [torch.load(tmp_path / f"{r}.pt", weights_only=True) for r in range(2)]
    m, _ = build()
    x1, x2 = torch.randn(2, 8, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    q1, q2, k1, k2 = m.query(x1), m.query(x2), m.key(x1), m.key(x2)
    # float32 sums of squares over 4 + 4 images vs 8: equal to about 1e-4; statistics of half a batch
    # (BatchNorm per process) would differ by order 1
    for name, whole in (("k1", k1), ("k2", k2)):
        assert torch.allclose(torch.cat([p[name] for p in parts]), whole, atol=1e-3, rtol=1e-3), name
    local = torch.cat([m.key(x1[:4]), m.key(x1[4:])])
    assert not torch.allclose(local, k1, atol=1e-1)
    loss = info_nce(q1, k2, 0.2) + info_nce(q2, k1, 0.2)
    assert torch.allclose((parts[0]["loss"] + parts[1]["loss"]) / 2, loss.detach(), atol=1e-3)


def test_a_short_cifar10_run_lowers_the_loss_without_collapse(cifar_root, tmp_path):
    from vitssl.training.pretrain import pretrain

    cfg = load_config("mocov3_cifar10", [*SMALL, f"data.root={cifar_root}", "data.limit=512", "data.num_workers=0",
                                         "train.epochs=3", "train.batch_size=64", "optim.base_lr=2e-3",
                                         "optim.warmup_epochs=0.5", "log.every_steps=1", "log.knn_every=3",
                                         "log.knn_train=256", "log.knn_test=128", "log.images_every=0",
                                         "log.progress=false", "log.tensorboard=false", f"output_dir={tmp_path / 'run'}"])
    pretrain(cfg)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in rows if "loss" in r]
    assert len(losses) == 24 and sum(losses[-4:]) / 4 < sum(losses[:4]) / 4 - 0.05, losses
    knn = [r for r in rows if "embed_std" in r][-1]
    assert knn["embed_std"] > 0.2, knn  # spread over many directions, not collapsed to one point
