"""GMML corruption against METHODS.md §1 and against the sequential block-by-block definition."""

import pytest
import torch

from vitssl.methods.sit.corruption import FILLS, fill_masked, gmml_corrupt, sample_masks


def sequential_mask(blocks, b, used, size):
    y0, y1, x0, x1 = blocks
    m = torch.zeros(size, dtype=torch.bool)
    for t in range(int(used[b])):
        m[y0[b, t]:y1[b, t], x0[b, t]:x1[b, t]] = True
    return m


def test_mask_equals_drawing_blocks_until_target():
    target = torch.rand(12) * 0.6 + 0.3
    mask, used, blocks = sample_masks(12, (40, 48), target, max_block=0.15, return_blocks=True)
    assert used.max() > 53  # several chunks were needed for some images
    for b in range(12):
        seq = sequential_mask(blocks, b, used, (40, 48))
        assert torch.equal(seq, mask[b])
        before = sequential_mask(blocks, b, used - 1, (40, 48))
        assert before.float().mean() < target[b] <= seq.float().mean() + 1e-9  # stops at the first block reaching it


@pytest.mark.parametrize("max_frac,mean,lo,hi,blocks", [(0.75, 0.64, 0.50, 0.78, 60), (0.5, 0.51, 0.5, 0.6, 40)])
def test_fraction_distribution_at_224_matches_reference(max_frac, mean, lo, hi, blocks):
    """The library's own draw (target fraction, blocks, union) against the reference sampler's statistics."""
    torch.manual_seed(0)
    out = gmml_corrupt(torch.zeros(256, 1, 224, 224), max_frac=max_frac, swap_prob=0.0)
    got = out.mask.float().mean((1, 2, 3))
    assert abs(got.mean().item() - mean) < 0.015
    q = torch.quantile(got, torch.tensor([0.025, 0.975]))
    assert q[0] >= lo - 1e-6 and q[1] <= hi  # the reference's reported range
    assert got.min() >= min(0.5, max_frac) - 1e-6 and got.max() < max_frac + 0.09  # overshoot: at most one block
    assert abs(out.num_blocks.float().mean().item() - blocks) < 6


def test_blocks_have_independent_sides_within_limits():
    mask, used, (y0, y1, x0, x1) = sample_masks(64, (100, 100), torch.full((64,), 0.5), return_blocks=True)
    h, w = y1 - y0, x1 - x0
    assert h.min() >= 1 and h.max() <= 30 and w.max() <= 30
    unclipped = (y1 < 100) & (x1 < 100)
    assert (h[unclipped] != w[unclipped]).float().mean() > 0.9  # aspect ratios vary


def test_patch_aligned_groups():
    mask, _ = sample_masks(8, (32, 32), torch.full((8,), 0.5), align=4)
    cells = mask.view(8, 8, 4, 8, 4)
    assert torch.equal(cells.all(4).all(2), cells.any(4).any(2))  # every 4x4 patch is all in or all out


def test_corruption_changes_exactly_the_masked_pixels():
    torch.manual_seed(1)
    x = torch.randn(16, 3, 32, 32)
    out = gmml_corrupt(x, max_frac=0.75, fill_probs=(1, 0, 0), swap_prob=0.0)
    changed = (out.images != x).any(1, keepdim=True)
    assert torch.equal(changed, out.mask)
    assert (out.fill == FILLS.index("noise")).all()


def test_zero_and_image_fills():
    torch.manual_seed(2)
    x = torch.randn(8, 3, 16, 16)
    z = gmml_corrupt(x, fill_probs=(0, 1, 0), swap_prob=0.0)
    assert (z.images.masked_select(z.mask.expand_as(x)) == 0).all()
    s = gmml_corrupt(x, swap_prob=1.0)
    assert (s.fill == FILLS.index("image")).all()
    frac = s.mask.float().mean((1, 2, 3))
    assert (frac >= 0.3).all() and frac.mean() < 0.4  # swap stage: about 30 % from another image
    for b in range(8):  # every pasted pixel equals the same pixel of one other image of the batch
        m = s.mask[b, 0]
        sources = [j for j in range(8) if j != b and torch.equal(s.images[b][:, m], x[j][:, m])]
        assert len(sources) == 1


def test_second_stage_half_the_time():
    torch.manual_seed(3)
    out = gmml_corrupt(torch.randn(400, 3, 16, 16), fill_probs=(1, 0, 0), swap_prob=0.5)
    share = (out.fill == FILLS.index("image")).float().mean()
    assert 0.4 < share < 0.6


def test_seeded_and_reproducible():
    x = torch.randn(4, 3, 32, 32)
    torch.manual_seed(9)
    a = gmml_corrupt(x)
    torch.manual_seed(9)
    b = gmml_corrupt(x)
    assert torch.equal(a.images, b.images) and torch.equal(a.mask, b.mask)


def test_batched_fill_equals_image_by_image():
    torch.manual_seed(4)
    x = torch.randn(9, 3, 12, 12)
    mask = torch.rand(9, 1, 12, 12) < 0.4
    fill = torch.tensor([0, 1, 2, 2, 1, 0, 2, 1, 2])
    partner = (torch.arange(9) + torch.randint(1, 9, (9,))) % 9
    torch.manual_seed(5)
    fast = fill_masked(x, mask, fill, partner)
    torch.manual_seed(5)
    noise = torch.randn(int((fill == 0).sum()), 3, 12, 12)  # the noise images draw theirs together, in order
    plain, k = x.clone(), 0
    for b in range(9):
        if fill[b] == 0:
            new, k = noise[k], k + 1
        elif fill[b] == 1:
            new = torch.zeros(3, 12, 12)
        else:
            new = x[partner[b]]
        plain[b] = torch.where(mask[b], new, x[b])
    assert torch.equal(fast, plain)
