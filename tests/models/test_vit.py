import pytest
import torch

from vitssl.errors import CheckpointError
from vitssl.models import PRESETS, VisionTransformer, build_vit
from vitssl.models.pos_embed import sincos_2d
from vitssl.models.vit import Block

TIMM_KEYS = {"cls_token", "pos_embed", "patch_embed.proj.weight", "patch_embed.proj.bias", "norm.weight", "norm.bias"}
TIMM_BLOCK_KEYS = {"norm1.weight", "norm1.bias", "attn.qkv.weight", "attn.qkv.bias", "attn.proj.weight",
                   "attn.proj.bias", "norm2.weight", "norm2.bias", "mlp.fc1.weight", "mlp.fc1.bias", "mlp.fc2.weight",
                   "mlp.fc2.bias"}


def small(**kw):
    args = dict(img_size=32, patch_size=4, embed_dim=32, depth=3, num_heads=2)
    args.update(kw)
    return VisionTransformer(**args)


def test_state_dict_keys_match_timm():
    m = small()
    expected = TIMM_KEYS | {f"blocks.{i}.{k}" for i in range(3) for k in TIMM_BLOCK_KEYS}
    assert set(m.state_dict()) == expected
    assert m.state_dict()["pos_embed"].shape == (1, 1 + 64, 32)  # CLS position included, as in timm


def test_presets():
    for name, (dim, depth, heads) in PRESETS.items():
        m = build_vit(arch=name, img_size=32, patch_size=16)
        assert (m.embed_dim, m.depth, m.blocks[0].attn.num_heads) == (dim, depth, heads)
    with pytest.raises(ValueError, match="unknown ViT preset"):
        build_vit(arch="vit_huge")


def test_shapes_and_pooling():
    m = small().eval()
    x = torch.randn(2, 3, 32, 32)
    feats = m.forward_features(x)
    assert feats.shape == (2, 65, 32)
    assert m(x).shape == (2, 32)
    m.reset_classifier(10)
    assert m(x).shape == (2, 10)
    assert torch.allclose(m.pool(feats, "avg"), feats[:, 1:].mean(1))


def test_intermediates_match_blocks():
    m = small().eval()
    x = torch.randn(2, 3, 32, 32)
    outs = m.forward_intermediates(x, [0, -1], norm=False)
    tokens = m.embed(x)
    first = m.blocks[0](tokens)
    assert torch.allclose(outs[0], first, atol=1e-6)
    assert torch.allclose(m.norm(outs[1]), m.forward_features(x), atol=1e-6)
    assert len(m.forward_intermediates(x, 2)) == 2


def test_other_image_size_learned_and_sincos():
    for kind in ("learned", "sincos"):
        m = small(pos_embed=kind).eval()
        out = m.forward_features(torch.randn(1, 3, 48, 40))
        assert out.shape == (1, 1 + 12 * 10, 32)
    m = small(pos_embed="sincos")
    assert torch.allclose(m.patch_pos_embed((12, 10))[0], sincos_2d(12, 10, 32))
    assert not m.pos_embed.requires_grad
    with pytest.raises(ValueError, match="multiple of the patch size"):
        m.forward_features(torch.randn(1, 3, 30, 32))


def test_attention_mask_is_respected():
    m = small(depth=1).eval()
    tokens = m.embed(torch.randn(1, 3, 32, 32))
    n = tokens.shape[1]
    diag = torch.eye(n, dtype=torch.bool)  # every token sees only itself
    out, _ = m.forward_blocks(tokens, attn_mask=diag)
    changed = tokens.clone()
    changed[:, 5:] += 1.0
    out2, _ = m.forward_blocks(changed, attn_mask=diag)
    assert torch.allclose(out[:, :5], out2[:, :5], atol=1e-5)
    full, _ = m.forward_blocks(changed)
    assert not torch.allclose(full[:, :5], out[:, :5], atol=1e-3)


def test_drop_path_only_in_training():
    m = small(drop_path_rate=0.5)
    x = torch.randn(4, 3, 32, 32)
    m.eval()
    assert torch.equal(m.forward_features(x), m.forward_features(x))
    m.train()
    torch.manual_seed(0)
    a = m.forward_features(x)
    torch.manual_seed(1)
    assert not torch.allclose(a, m.forward_features(x))


def test_load_encoder_state_resamples_positions():
    src = small()
    dst = small(img_size=48)
    dst.load_encoder_state(src.state_dict())
    assert torch.equal(dst.blocks[0].attn.qkv.weight, src.blocks[0].attn.qkv.weight)
    assert dst.pos_embed.shape == (1, 1 + 144, 32)
    assert torch.equal(dst.pos_embed[:, 0], src.pos_embed[:, 0])


def test_load_encoder_state_rejects_other_architecture():
    with pytest.raises(CheckpointError, match="check model.arch"):
        small().load_encoder_state(small(depth=4).state_dict())
    with pytest.raises(CheckpointError, match="shape"):
        small().load_encoder_state(small(embed_dim=64).state_dict())


def test_cls_attention_is_the_attention_the_block_applies():
    import torch.nn.functional as F

    from vitssl.models.vit import build_vit

    vit = build_vit(arch="vit_tiny", img_size=32, patch_size=8, depth=2).eval()
    x = torch.randn(2, 3, 32, 32)
    attn = vit.cls_attention(x)  # (B, h, N) over the 16 patches
    assert attn.shape == (2, 3, 16) and (attn.sum(-1) < 1).all()
    tokens = vit.blocks[0](vit.embed(x))
    blk = vit.blocks[1]
    b, n, d = tokens.shape
    q, k, v = blk.attn.qkv(blk.norm1(tokens)).reshape(b, n, 3, 3, d // 3).permute(2, 0, 3, 1, 4).unbind(0)
    full = F.scaled_dot_product_attention(q, k, v)[:, :, 0]  # the CLS query's output, per head
    weights = torch.cat([1 - attn.sum(-1, keepdim=True), attn], -1)  # CLS-to-CLS weight is the rest
    assert torch.allclose((weights[..., None] * v).sum(2), full, atol=1e-5)


def test_cls_only_matches_the_cls_row_of_the_full_pass():
    """The last block computing the CLS token alone gives what the full pass gives for it, with
    a boolean mask too; intermediate outputs are the CLS rows of the full ones."""
    torch.manual_seed(0)
    m = small(depth=3).eval()
    x = torch.randn(4, 3, 32, 32)
    full = m.forward_features(x)
    cls = m.forward_features(x, cls_only=True)
    assert cls.shape == (4, 1, 32)
    torch.testing.assert_close(cls, full[:, :1], rtol=1e-5, atol=1e-5)
    n = full.shape[1]
    causal = torch.ones(n, n, dtype=torch.bool).tril()
    causal[0] = True  # the CLS row sees everything, so the test would notice a mask dropped on it
    causal[0, 3:] = False
    ref = m.forward_features(x, attn_mask=causal)
    torch.testing.assert_close(m.forward_features(x, attn_mask=causal, cls_only=True), ref[:, :1],
                               rtol=1e-5, atol=1e-5)
    assert not torch.allclose(ref[:, 0], full[:, 0], atol=1e-3)
    inter = m.forward_intermediates(x, [0, 1], cls_only=True)
    for a, b in zip(inter, m.forward_intermediates(x, [0, 1])):
        assert a.shape == (4, 1, 32)
        torch.testing.assert_close(a, b[:, :1], rtol=1e-5, atol=1e-5)


def test_intermediates_stop_after_the_deepest_block_asked_for():
    m = small(depth=3).eval()
    calls = []
    for i, blk in enumerate(m.blocks):
        blk.register_forward_hook(lambda mod, inp, out, i=i: calls.append(i))
    m.forward_intermediates(torch.randn(2, 3, 32, 32), [0])
    assert calls == [0]


def test_forward_with_cls_pooling_gives_the_full_pass_outputs_and_gradients():
    torch.manual_seed(0)
    m = small(depth=2, num_classes=5)
    x = torch.randn(3, 3, 32, 32)
    out = m(x)  # global_pool 'token': the last block computes the CLS token alone
    out.square().sum().backward()
    fast = [p.grad.clone() for p in m.parameters()]
    m.zero_grad()
    ref = m.forward_head(m.forward_features(x))
    ref.square().sum().backward()
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    for a, p in zip(fast, m.parameters()):
        torch.testing.assert_close(a, p.grad, rtol=1e-4, atol=1e-6)


def _timm_block(blk, x, mask=None):
    """timm's pre-norm block: the residual branch multiplied by the scaled keep mask."""
    x = x + blk.drop_path(blk.attn(blk.norm1(x), mask))
    return x + blk.drop_path(blk.mlp(blk.norm2(x)))


@pytest.mark.parametrize("mask", ["none", "shared", "per_sample"])
def test_stochastic_depth_paths_give_timms_outputs_and_gradients(mask):
    """Skipping the dropped samples (CPU default) and the fused multiply draw the same keep masks as
    timm's DropPath and compute the same block, forward and backward."""
    torch.manual_seed(0)
    blk = Block(16, 2, 4.0, True, 0.5).train()
    x = torch.randn(8, 5, 16)
    m = {"none": None, "shared": torch.ones(5, 5, dtype=torch.bool).tril(),
         "per_sample": torch.rand(8, 1, 5, 5) < 0.7}[mask]
    if m is not None:
        m[..., 0] = True  # every query sees something

    def run(fn):
        torch.manual_seed(1)
        xi = x.clone().requires_grad_()
        out = fn(xi)
        out.square().sum().backward()
        return out, xi.grad, [p.grad.clone() for p in blk.parameters()]

    results = []
    for skip in (None, False):
        blk.skip_dropped = skip
        blk.zero_grad(set_to_none=True)
        results.append(run(lambda xi: blk(xi, m)))
    blk.zero_grad(set_to_none=True)
    ref = run(lambda xi: _timm_block(blk, xi, m))
    torch.manual_seed(1)
    assert 0 < int(blk.drop_path.sample(x).sum()) < 8  # some samples dropped, some kept: both cases run
    for out, gx, gp in results:
        torch.testing.assert_close(out, ref[0], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(gx, ref[1], rtol=1e-4, atol=1e-5)
        for a, b in zip(gp, ref[2]):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_stochastic_depth_with_cls_only_and_every_sample_dropped():
    torch.manual_seed(0)
    blk = Block(16, 2, 4.0, True, 0.5).train()
    x = torch.randn(6, 5, 16)
    torch.manual_seed(2)
    fast = blk(x, queries=1)
    torch.manual_seed(2)
    torch.testing.assert_close(fast, _timm_block(blk, x)[:, :1], rtol=1e-5, atol=1e-5)
    blk.drop_path.p = 1 - 1e-12  # everything dropped: the block passes its input through
    torch.testing.assert_close(blk(x), x)
