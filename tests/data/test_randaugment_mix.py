import torch

from vitssl.data.mix import mix_batch, smooth_one_hot
from vitssl.data.randaugment import OPS, rand_augment


def test_every_op_keeps_range_and_changes_images():
    x = torch.rand(8, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    for op in OPS:
        y = rand_augment(x, 1, 9, ops=(op,))
        assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1
        if op == "identity":
            assert torch.equal(y, x)
        else:
            assert not torch.allclose(y, x, atol=1e-3), op


def test_zero_magnitude_geometry_is_identity_and_ops_are_per_image():
    x = torch.rand(4, 3, 16, 16)
    assert torch.allclose(rand_augment(x, 2, 0, ops=("rotate", "shear_x", "translate_y")), x, atol=1e-5)
    torch.manual_seed(1)
    y = rand_augment(x[:1].expand(64, -1, -1, -1), 1, 9)
    assert len({tuple(v.flatten()[:20].tolist()) for v in y}) > 5  # different images got different ops


def test_mixup_and_cutmix_targets():
    x = torch.rand(6, 3, 8, 8)
    y = torch.arange(6) % 3
    assert torch.allclose(smooth_one_hot(y, 3, 0.3).sum(1), torch.ones(6))
    torch.manual_seed(0)
    mixed, t = mix_batch(x, y, 3, mixup=0.8, cutmix=0.0, smoothing=0.0)
    lam = t[0, y[0]].item() if y[0] != y[-1] else None
    if lam is not None:
        assert torch.allclose(mixed[0], lam * x[0] + (1 - lam) * x[-1], atol=1e-6)
    assert torch.allclose(t.sum(1), torch.ones(6))
    y = torch.arange(6)  # every image's partner has another label
    mixed, t = mix_batch(x, y, 6, mixup=0.0, cutmix=1.0, smoothing=0.0)
    pasted = (mixed != x).any(1).float().mean((1, 2))  # fraction of pixels taken from the partner image
    assert torch.allclose(pasted, 1 - t[torch.arange(6), y], atol=1e-6)  # label weight = pasted area
    unchanged, t = mix_batch(x, y, 6, mixup=0.8, cutmix=1.0, prob=0.0, smoothing=0.0)
    assert torch.equal(unchanged, x) and torch.equal(t, smooth_one_hot(y, 6))
