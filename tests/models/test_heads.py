import torch

from vitssl.models import PixelHead, ProjectionHead, patchify, unpatchify


def test_patchify_roundtrip():
    x = torch.randn(2, 3, 16, 24)
    p = patchify(x, 4)
    assert p.shape == (2, 4 * 6, 48)
    assert torch.equal(unpatchify(p, 4, (4, 6)), x)
    # patch 0 holds the top-left 4x4 pixels, channel-last
    assert torch.equal(p[0, 0], x[0, :, :4, :4].permute(1, 2, 0).reshape(-1))


def test_pixel_head_is_per_token():
    head = PixelHead(dim=16, patch_size=4, depth=2)
    tokens = torch.randn(2, 9, 16)
    out = head(tokens, (3, 3))
    assert out.shape == (2, 3, 12, 12)
    tokens2 = tokens.clone()
    tokens2[:, 4] += 1  # the centre token only changes the centre patch
    diff = (head(tokens2, (3, 3)) - out).abs().sum(1)[0]
    assert diff[4:8, 4:8].min() > 0 and diff[:4].max() == 0 and diff[8:].max() == 0


def test_projection_head_layers():
    head = ProjectionHead(in_dim=8, hidden_dim=32, out_dim=4, num_layers=3)
    out = head(torch.randn(6, 8))
    assert out.shape == (6, 4)
    bns = [m for m in head.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    assert len(bns) == 3 and bns[-1].weight is None and bns[0].weight is not None
    assert torch.allclose(out.mean(0), torch.zeros(4), atol=1e-5)  # last BN, no affine: batch-centred
