import math

import pytest
import torch
import torch.nn as nn

from tests.conftest import TINY_MODEL
from vitssl.config import load_config
from vitssl.errors import ConfigError
from vitssl.methods import registry
from vitssl.methods.common.momentum import info_nce, teacher_momentum


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


def official_nce(q, k, tau):
    """The official contrastive loss, written out: -mean_i log softmax_j(q_i.k_j / tau)[i] * 2 tau."""
    q = q / q.norm(dim=1, keepdim=True)
    k = k / k.norm(dim=1, keepdim=True)
    logits = q @ k.T / tau
    log_prob = logits.diagonal() - logits.logsumexp(1)
    return -log_prob.mean() * 2 * tau


def test_info_nce_is_the_official_formula():
    torch.manual_seed(3)
    q, k = torch.randn(16, 8), torch.randn(16, 8)
    assert torch.allclose(info_nce(q, k, 0.2), official_nce(q, k, 0.2), atol=1e-6)
    assert torch.allclose(info_nce(q, k, 0.1), official_nce(q, k, 0.1), atol=1e-6)
    assert info_nce(q, q, 0.2) < info_nce(q, k, 0.2)  # matching pairs score better


def _views(b=8, size=16):
    torch.manual_seed(5)
    clean = [torch.randn(b, 3, size, size) for _ in range(2)]
    masks = [torch.rand(b, 1, size, size) < 0.5 for _ in range(2)]
    corrupted = [torch.where(m, torch.zeros_like(c), c) for c, m in zip(clean, masks)]
    return clean, corrupted, masks


@pytest.mark.parametrize("reduce,bn", [(None, None), ("mean", "per_view")])
def test_contrastive_term_sums_both_directions_over_a_joint_batchnorm(reduce, bn):
    """Official SiT: L_contr = NCE(s1, t2) + NCE(s2, t1), the projection heads' BatchNorm over both views
    (2B images); `contrastive_reduce=mean` / `proj_bn=per_view` keep the earlier behaviour as options."""
    extra = ["model.drop_path=0"] + ([f"method.contrastive_reduce={reduce}", f"method.proj_bn={bn}"] if reduce else [])
    sit, cfg = build(*extra)
    clean, corrupted, masks = _views()
    out = sit.losses(clean, corrupted, masks)
    b, tau = 8, cfg.method.temperature
    with torch.no_grad():
        cls = sit.encoder.forward_features(torch.cat(corrupted))[:, 0]
        t_cls = sit.teacher_encoder.forward_features(torch.cat(clean))[:, 0]
        if reduce is None:
            s1, s2 = sit.proj_head(cls).split(b)
            t1, t2 = sit.teacher_head(t_cls).split(b)
            want = official_nce(s1, t2, tau) + official_nce(s2, t1, tau)
        else:
            s1, s2 = sit.proj_head(cls[:b]), sit.proj_head(cls[b:])
            t1, t2 = sit.teacher_head(t_cls[:b]), sit.teacher_head(t_cls[b:])
            want = (official_nce(s1, t2, tau) + official_nce(s2, t1, tau)) / 2
    assert torch.allclose(out["loss_contr"], want, atol=1e-5), (out["loss_contr"], want)


def test_projection_head_is_relu_then_gelu_and_heads_start_truncated_normal():
    sit, _ = build()
    kinds = [type(m).__name__ for m in sit.proj_head.mlp]
    assert kinds == ["Linear", "SyncBatchNorm1d", "ReLU", "Linear", "SyncBatchNorm1d", "GELU", "Linear",
                     "SyncBatchNorm1d"]
    for head in (sit.proj_head, sit.recon_head):
        for m in head.modules():
            if isinstance(m, nn.Linear):
                assert m.weight.abs().max() <= 0.04 + 1e-7  # truncated at 2 std
                assert abs(m.weight.std().item() - 0.02) < 0.006
                assert m.bias is None or not m.bias.any()
    gelu_only, _ = build("method.proj_act=[gelu]")
    assert [type(m).__name__ for m in gelu_only.proj_head.mlp].count("GELU") == 2


def test_fill_defaults_sit_zeros_gmml_noise():
    sit = load_config(None, []).method
    gmml = load_config(None, ["method.name=gmml"]).method
    assert (sit.fill.noise, sit.fill.zeros, sit.fill.image) == (0.0, 1.0, 0.0)
    assert (gmml.fill.noise, gmml.fill.zeros, gmml.fill.image) == (1.0, 0.0, 0.0)
    partial = load_config(None, ["method.name=gmml", "method.fill.image=0.5"]).method.fill
    assert (partial.noise, partial.zeros, partial.image) == (1.0, 0.0, 0.5)  # a partial override keeps the rest


def test_gmml_recipe_and_no_contrastive_gmml():
    assert load_config(None, ["method.name=gmml"]).optim.weight_decay_end == 0.4
    assert load_config("gmml_cifar10", []).optim.weight_decay_end == 0.4
    assert load_config(None, []).optim.weight_decay_end == 0.1  # SiT's
    with pytest.raises(ConfigError, match="method.contrastive.*method.name=sit"):
        load_config(None, ["method.name=gmml", "method.contrastive=true"])


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


@pytest.mark.parametrize("norm", ["average", "each"])
def test_average_of_blocks_feeds_the_head(norm):
    """Official GMML normalises the average of the blocks; `recon_norm=each` averages normed blocks."""
    sit, cfg = build("method.recon_blocks=[1, 2]", "method.contrastive=false", f"method.recon_norm={norm}")
    assert sit.recon_blocks == [0, 1]
    x = torch.randn(2, 3, 16, 16)
    sit.eval()
    with torch.no_grad():
        sit.encoder.norm.weight.uniform_(0.5, 2.0)  # a norm that is not the identity tells the two apart
        sit.encoder.norm.bias.normal_()
        sit.encoder.blocks[1].mlp.fc2.weight.mul_(50)  # block 2's output far from block 1's
    recon, _ = sit.student(x)
    enc = sit.encoder
    _, feats = enc.forward_blocks(enc.embed(x), collect=[0, 1])
    if norm == "average":
        tokens = enc.norm((feats[0] + feats[1]) / 2)
    else:
        tokens = (enc.norm(feats[0]) + enc.norm(feats[1])) / 2
    scale = recon.abs().max()
    assert (recon - sit.recon_head(tokens[:, 1:], (4, 4))).abs().max() < 1e-4 * scale
    other = enc.norm((feats[0] + feats[1]) / 2) if norm == "each" else (enc.norm(feats[0]) + enc.norm(feats[1])) / 2
    assert (recon - sit.recon_head(other[:, 1:], (4, 4))).abs().max() > 1e-2 * scale  # the two rules differ


def test_pictures_rows():
    sit, _ = build()
    rows = sit.pictures(torch.randint(0, 256, (3, 3, 16, 16), dtype=torch.uint8))
    assert list(rows) == ["clean", "corrupted", "reconstructed", "pasted"]
    assert all(r.shape == (3, 3, 16, 16) and r.min() >= 0 and r.max() <= 1 for r in rows.values())
