import torch

from tests.conftest import TINY_MODEL
from vitssl.config import load_config
from vitssl.methods import registry


def build(*extra):
    cfg = load_config(None, ["method.name=mae", *TINY_MODEL, "data.image_size=32", "method.decoder_dim=32",
                             "method.decoder_depth=1", "method.decoder_heads=2", *extra])
    return registry.get("mae").build(cfg)


def test_masks_the_right_fraction_and_the_encoder_sees_only_visible_tokens(monkeypatch):
    mae = build()
    seen = []
    orig = mae.encoder.forward_blocks
    monkeypatch.setattr(mae.encoder, "forward_blocks", lambda t, *a, **k: seen.append(t.shape) or orig(t, *a, **k))
    pred, mask = mae.reconstruct(torch.randn(3, 3, 32, 32))
    assert pred.shape == (3, 64, 48) and seen == [(3, 1 + 16, 64)]
    assert mask.sum(1).tolist() == [48.0] * 3
    assert len({tuple(m.tolist()) for m in mask}) == 3  # a fresh mask per image


def test_loss_only_on_masked_patches_and_gradients():
    mae = build()
    out = mae(torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8))
    out["loss"].backward()
    assert [n for n, p in mae.named_parameters() if p.requires_grad and p.grad is None] == []
    pred, mask = mae.reconstruct(torch.randn(2, 3, 32, 32))
    images = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    losses = []
    for p in (pred, pred + 100 * (1 - mask)[..., None], pred + 100 * mask[..., None]):
        mae.reconstruct = lambda x, p=p: (p, mask)
        torch.manual_seed(0)  # the same augmentation each time
        losses.append(mae(images)["loss"].item())
    assert losses[0] == losses[1] and losses[2] > losses[0] + 100  # visible patches never count


def test_pictures_paste_reconstruction_into_masked_patches():
    rows = build().eval().pictures(torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8))
    assert list(rows) == ["image", "visible", "reconstructed", "pasted"]
    assert all(v.shape == (2, 3, 32, 32) for v in rows.values())
