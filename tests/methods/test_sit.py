import math

import torch

from tests.conftest import TINY_MODEL
from vitssl.config import load_config
from vitssl.methods import registry
from vitssl.methods.sit.method import info_nce, teacher_momentum


def build(*extra):
    cfg = load_config(None, TINY_MODEL + ["method.proj_hidden=32", "method.proj_dim=16", "data.image_size=16",
                                          *extra])
    return registry.get(cfg.method.name).build(cfg), cfg


def test_sit_losses_and_gradients_reach_only_the_student():
    sit, _ = build()
    out = sit(torch.randint(0, 256, (8, 3, 16, 16), dtype=torch.uint8))
    assert {"loss", "loss_recons", "loss_contr"} <= set(out)
    assert torch.allclose(out["loss"], 5.0 * out["loss_recons"] + out["loss_contr"])
    out["loss"].backward()
    assert all(p.grad is not None for p in sit.encoder.parameters() if p.requires_grad)
    assert all(p.grad is None and not p.requires_grad for p in sit.teacher_parameters())


def test_teacher_follows_student_by_ema():
    sit, cfg = build()
    with torch.no_grad():
        for p in sit.encoder.parameters():
            p.add_(1.0)
    before = [p.clone() for p in sit.teacher_parameters()]
    student = list(sit.encoder.parameters()) + list(sit.proj_head.parameters())
    logs = sit.after_step(10, 100)
    m = teacher_momentum(10, 100, 0.996, 1.0)
    assert logs["momentum"] == m
    for t, b, s in zip(sit.teacher_parameters(), before, student):
        assert torch.allclose(t, m * b + (1 - m) * s, atol=1e-6)


def test_momentum_schedule_is_cosine():
    assert teacher_momentum(0, 100, 0.996, 1.0) == 0.996
    assert teacher_momentum(100, 100, 0.996, 1.0) == 1.0
    assert math.isclose(teacher_momentum(50, 100, 0.996, 1.0), 0.998)


def test_gmml_variant_has_no_teacher():
    gmml, _ = build("method.name=gmml")
    assert not hasattr(gmml, "teacher_encoder") and not hasattr(gmml, "proj_head")
    out = gmml(torch.randint(0, 256, (4, 3, 16, 16), dtype=torch.uint8))
    assert set(out) == {"loss", "loss_recons", "corrupted_frac"}
    assert gmml.recon_blocks == [1]  # of the default blocks -7, -5, -3, -1 only the last exists in 2 blocks


def test_info_nce_prefers_matching_pairs():
    q = torch.randn(16, 8)
    assert info_nce(q, q, 0.2) < info_nce(q, torch.randn(16, 8), 0.2)
    ideal = info_nce(q * 100, q * 100, 0.2)
    assert ideal >= 0


def test_reconstruction_loss_ignores_unmasked_pixels():
    sit, _ = build()
    clean = torch.zeros(2, 3, 4, 4)
    mask = torch.zeros(2, 1, 4, 4, dtype=torch.bool)
    mask[:, :, :2] = True
    recon = torch.zeros_like(clean)
    recon[:, :, 2:] = 7.0  # wrong only where nothing was corrupted
    assert sit.recon_loss(recon, clean, mask) == 0
    recon[:, :, :2] = 1.0
    assert torch.isclose(sit.recon_loss(recon, clean, mask), torch.tensor(1.0))
    sit.cfg.recon_loss = "all"
    assert sit.recon_loss(recon, clean, mask) > 1.0


def test_average_of_blocks_feeds_the_head():
    sit, _ = build("method.recon_blocks=[1, 2]", "method.contrastive=false")
    assert sit.recon_blocks == [0, 1]
    x = torch.randn(2, 3, 16, 16)
    sit.eval()
    recon, _ = sit.student(x)
    enc = sit.encoder
    _, feats = enc.forward_blocks(enc.embed(x), collect=[0, 1])
    avg = (enc.norm(feats[0]) + enc.norm(feats[1])) / 2
    assert torch.allclose(recon, sit.recon_head(avg[:, 1:], (4, 4)), atol=1e-6)


def test_pictures_rows():
    sit, _ = build()
    rows = sit.pictures(torch.randint(0, 256, (3, 3, 16, 16), dtype=torch.uint8))
    assert list(rows) == ["clean", "corrupted", "reconstructed", "pasted"]
    assert all(r.shape == (3, 3, 16, 16) and r.min() >= 0 and r.max() <= 1 for r in rows.values())
