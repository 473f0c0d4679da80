import pytest
import torch

from vitssl.config import load_config
from vitssl.methods import registry
from vitssl.methods.randsac.decoder import SkipMix
from vitssl.methods.randsac.masks import MaskBuilder
from vitssl.methods.randsac.segments import SquareSegmenter
from vitssl.methods.randsac.serialise import serialise

SMALL = ["method.name=randsac", "model.patch_size=4", "model.embed_dim=32", "model.depth=3", "model.num_heads=2",
         "data.image_size=32", "method.decoder_dim=32", "method.decoder_depth=2", "method.decoder_heads=2"]
LAYOUTS = {"square 16->4": ["method.segments=square", "method.square_size=2", "method.partition_size=4"],
           "patch-random": ["method.square_size=1", "method.partition_size=null"],
           "blob 11->5": ["method.segments=blob", "method.blobs=11", "method.blob_partitions=5"],
           "blob 7 vanilla": ["method.segments=blob", "method.blobs=7", "method.blob_partitions=null",
                              "method.skip=last"]}


def build(*extra):
    cfg = load_config(None, SMALL + list(extra))
    return registry.get("randsac").build(cfg).eval(), cfg


def token_pixels(tokens: torch.Tensor, grid=(8, 8), patch=4) -> torch.Tensor:
    """(B, N) bool over tokens -> (B, 1, H, W) bool over their pixels."""
    return tokens.reshape(-1, 1, *grid).repeat_interleave(patch, 2).repeat_interleave(patch, 3)


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_causality_end_to_end(layout):
    """A segment's prediction ignores its own and later segments' pixels, and depends on earlier ones."""
    model, _ = build(*LAYOUTS[layout])
    with torch.no_grad():  # random weights would make the skip mix trivial: perturb it off its init
        if model.decoder.mix is not None:
            model.decoder.mix.skip_weights.add_(torch.rand_like(model.decoder.mix.skip_weights))
    b = 3
    x = torch.randn(b, 3, 32, 32)
    serial = model.order(b, (8, 8), "cpu", torch.Generator().manual_seed(1))
    token_rank = serial.rank.gather(1, serial.inverse())  # (B, N) serial rank of every token
    with torch.no_grad():
        base, targets, _, _ = model.predict(x, serial)
    query_rank = token_rank.gather(1, targets)  # (B, Nd) rank of the segment each query predicts
    for j in (1, 2, int(serial.num_segments.min()) - 1):
        region = token_pixels(token_rank >= j)
        changed = torch.where(region, torch.randn_like(x) * 3, x)
        with torch.no_grad():
            after = model.predict(changed, serial)[0]
        assert torch.allclose(after[query_rank <= j], base[query_rank <= j], atol=1e-5), f"segment {j} saw the future"
        later = query_rank > j
        if later.any():
            assert not torch.allclose(after[later], base[later], atol=1e-3)
        earlier = torch.where(token_pixels(token_rank == j - 1), torch.randn_like(x) * 3, x)
        with torch.no_grad():
            after = model.predict(earlier, serial)[0]
        at_j = query_rank == j
        assert (after[at_j] - base[at_j]).abs().amax(-1).gt(1e-4).all(), f"segment {j} ignores segment {j - 1}"


def test_static_masks_for_equal_segments():
    serial = serialise(SquareSegmenter(2, 4)(5, (8, 8), "cpu"), "random")
    plan = MaskBuilder()(serial)
    assert (plan.enc_len, plan.dec_start, plan.loss_weight) == (60, 4, None)  # last segment not fed, first not predicted
    enc_rank = torch.cat([torch.tensor([-1]), torch.arange(60) // 4])
    dec_rank = torch.arange(4, 64) // 4
    assert plan.enc_mask.shape == (61, 61) and plan.enc_mask[0].sum() == 1 and plan.enc_mask[:, 0].all()
    assert torch.equal(plan.enc_mask, enc_rank[:, None] >= enc_rank[None, :])
    assert torch.equal(plan.dec_mask, dec_rank[:, None] >= dec_rank[None, :])
    assert torch.equal(plan.cross_mask, dec_rank[:, None] > enc_rank[None, :])
    assert MaskBuilder.__call__(MaskBuilder(), serial).enc_mask.shape == (61, 61)
    builder = MaskBuilder()
    assert builder(serial) is builder(serialise(SquareSegmenter(2, 4)(7, (8, 8), "cpu"), "random"))  # cached


def test_per_image_masks_for_blobs():
    model, _ = build(*LAYOUTS["blob 11->5"])
    serial = model.order(4, (8, 8), "cpu")
    plan = MaskBuilder()(serial)
    assert plan.enc_mask.shape == (4, 1, 65, 65) and plan.cross_mask.shape == (4, 1, 64, 65)
    assert torch.equal(plan.loss_weight, (serial.rank > 0).float())
    assert not torch.equal(plan.enc_mask[0], plan.enc_mask[1])


@pytest.mark.parametrize("layout", ["square 16->4", "blob 11->5"])
def test_flex_attention_block_masks_match_sdpa(layout):
    sdpa, _ = build(*LAYOUTS[layout], "method.attention=sdpa")
    flex, _ = build(*LAYOUTS[layout], "method.attention=flex")
    flex.load_state_dict(sdpa.state_dict())
    x = torch.randn(2, 3, 32, 32)
    serial = sdpa.order(2, (8, 8), "cpu")
    with torch.no_grad():
        assert torch.allclose(sdpa.predict(x, serial)[0], flex.predict(x, serial)[0], atol=1e-5)


def test_flex_refuses_to_train_on_cpu():
    from vitssl.errors import ConfigError

    flex, _ = build("method.attention=flex")
    with pytest.raises(ConfigError, match="method.attention"):
        flex.train()(torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8))


def test_skip_mix_starts_as_the_vanilla_decoder_and_learns():
    mix = SkipMix(2, 3)
    hs = [torch.randn(2, 5, 4) for _ in range(3)]
    z = mix(hs)
    assert torch.equal(z[0], hs[-1]) and torch.equal(z[1], hs[-1])
    w = torch.tensor([[0.5, 0.25, 0.25], [0.0, 1.0, -1.0]])
    with torch.no_grad():
        mix.skip_weights.copy_(w)
    z = mix(hs)
    assert torch.allclose(z[0], 0.5 * hs[0] + 0.25 * hs[1] + 0.25 * hs[2])
    assert torch.allclose(z[1], hs[1] - hs[2])
    z.sum().backward()
    assert mix.skip_weights.grad is not None and mix.skip_weights.grad.abs().sum() > 0

    learned, _ = build("method.skip=learned")
    vanilla, _ = build("method.skip=last")
    state = {k: v for k, v in learned.state_dict().items() if "skip_weights" not in k}
    vanilla.load_state_dict(state)
    x = torch.randn(2, 3, 32, 32)
    serial = learned.order(2, (8, 8), "cpu")
    with torch.no_grad():
        assert torch.allclose(learned.predict(x, serial)[0], vanilla.predict(x, serial)[0], atol=1e-5)


def test_loss_targets_and_gradients():
    model, _ = build()
    x = torch.randn(2, 3, 32, 32)
    t = model.target_pixels(x)
    assert t.shape == (2, 64, 48)
    assert torch.allclose(t.mean(-1), torch.zeros(2, 64), atol=1e-5)
    assert torch.allclose(t.var(-1), torch.ones(2, 64), atol=1e-3)
    model.train()
    out = model(torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8))
    assert out["segments"] == 16
    out["loss"].backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert missing == []
    assert model.encoder.pos_embed.requires_grad is False  # fixed sin-cos


def test_evaluation_features_come_from_the_unmasked_encoder():
    model, _ = build()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        tokens = model.encoder.forward_features(x)  # full attention, no mask
        masked, _ = model.encoder.forward_blocks(model.encoder.embed(x), torch.ones(65, 65, dtype=torch.bool).tril())
    assert tokens.shape == (2, 65, 32)
    assert model.encoder.pool(tokens, "avg").shape == (2, 32)
    assert not torch.allclose(tokens, model.encoder.norm(masked), atol=1e-4)


def test_pictures_show_order_and_predictions():
    model, _ = build(*LAYOUTS["blob 11->5"])
    rows = model.pictures(torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8))
    assert list(rows) == ["image", "order", "predicted"]
    for v in rows.values():
        assert v.shape == (3, 3, 32, 32) and v.min() >= 0 and v.max() <= 1
    assert len(rows["order"][0].reshape(3, -1).T.unique(dim=0)) > 2  # one colour per segment
