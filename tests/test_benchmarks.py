"""The benchmarks' own machinery: FLOPs counted from shapes, and the reference SiT step of
`benchmarks/reference/` computing what vitssl's fast step computes (only the speed may differ)."""

import sys
from pathlib import Path

import torch

import vitssl.models.vit as vit_module
from tests.conftest import TINY_MODEL
from vitssl.config import load_config
from vitssl.methods import registry
from vitssl.models.vit import VisionTransformer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from common import count_flops  # noqa: E402
from reference.sit_step import explicit_attention  # noqa: E402


def test_flops_of_a_vit_forward_equal_the_closed_form():
    vit = VisionTransformer(img_size=32, patch_size=4, embed_dim=96, depth=3, num_heads=3)
    b, n, d = 2, 65, 96
    per_block = 12 * n * d * d + 2 * n * n * d  # qkv, proj, MLP (4x) + q k^T and attn v, multiply-adds
    closed = 2 * b * (3 * per_block + 64 * 48 * d)  # + the patch embedding; 2 FLOPs per multiply-add
    assert count_flops(lambda: vit.forward_features(torch.randn(b, 3, 32, 32))) == closed


def test_reference_step_computes_what_the_fast_step_computes():
    """Explicit attention (the reference) and SDPA give the same losses and gradients; the teacher's
    per-parameter EMA loop equals the one `foreach` update."""
    cfg = load_config(None, TINY_MODEL + ["method.proj_hidden=32", "method.proj_dim=16", "data.image_size=16",
                                          "model.drop_path=0.0"])
    sit = registry.get("sit").build(cfg)
    images = torch.randint(0, 256, (6, 3, 16, 16), dtype=torch.uint8)
    clean = [sit.augment(images, v) for v in (0, 1)]
    cor = [sit.corrupt(v) for v in clean]
    views = (clean, [c.images for c in cor], [c.mask for c in cor])

    def loss_and_grads():
        sit.zero_grad(set_to_none=True)
        out = sit.losses(*views)
        out["loss"].backward()
        return out["loss"].detach(), [p.grad.clone() for p in sit.parameters() if p.requires_grad]

    fast_loss, fast_grads = loss_and_grads()
    with explicit_attention():
        assert vit_module.attend.__name__ == "_explicit_attend"  # the model really runs the written-out form
        ref_loss, ref_grads = loss_and_grads()
    assert torch.allclose(fast_loss, ref_loss, atol=1e-5)
    for a, b in zip(fast_grads, ref_grads):
        assert torch.allclose(a, b, atol=1e-5, rtol=1e-4)

    with torch.no_grad():
        for p in sit.encoder.parameters():
            p.add_(torch.randn_like(p))
    teacher = [p.clone() for p in sit.teacher_parameters()]
    student = list(sit.encoder.parameters()) + list(sit.proj_head.parameters())
    m = 0.99
    loop = [t.mul(m).add_(s, alpha=1 - m) for t, s in zip(teacher, student)]  # the reference's loop
    sit.momentum = m
    sit.cfg.momentum = sit.cfg.momentum_end = m  # a constant schedule: after_step applies exactly m
    sit.after_step(0, 10)
    for a, b in zip(sit.teacher_parameters(), loop):
        assert torch.allclose(a, b, atol=1e-6)
