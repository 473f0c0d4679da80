import pytest
import torch

from vitssl.config import load_config
from vitssl.errors import ConfigError
from vitssl.methods.randsac import BlobSegmenter, SquareSegmenter, serialise
from vitssl.models.patches import gather_tokens

GRID = (8, 8)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def runs(values: torch.Tensor) -> list[int]:
    """Distinct values in order of their runs: [a, a, b, b, a] -> [a, b, a]."""
    keep = torch.ones_like(values, dtype=torch.bool)
    keep[1:] = values[1:] != values[:-1]
    return values[keep].tolist()


def check_serial(seg, serial):
    """Shared invariants: orders are permutations, segments contiguous, ranks 0..K-1, partitions contiguous."""
    b, n = seg.segment.shape
    assert torch.equal(serial.perm.sort(1).values, torch.arange(n).expand(b, n))
    assert torch.equal(serial.perm.gather(1, serial.inverse()), torch.arange(n).expand(b, n))
    for i in range(b):
        seg_in_order = seg.segment[i][serial.perm[i]]
        segs = runs(seg_in_order)
        assert len(segs) == len(set(segs)) == serial.num_segments[i]  # each segment one contiguous run
        assert runs(serial.rank[i]) == list(range(len(segs)))  # ranks 0..K-1, non-decreasing
        parts = runs(seg.partition[i][seg_in_order])
        assert len(parts) == len(set(parts))  # each partition one contiguous run of segments
        for s in segs:  # row-major inside a segment
            toks = serial.perm[i][seg_in_order == s]
            assert torch.equal(toks, toks.sort().values)


@pytest.mark.parametrize("m,q", [(1, None), (2, None), (4, None), (2, 4), (1, 4)])
def test_square_segments_tile_the_grid_and_respect_partitions(m, q):
    seg = SquareSegmenter(m, q)(6, GRID, "cpu")
    assert seg.equal_size == m * m
    counts = torch.bincount(seg.segment[0], minlength=64 // (m * m))
    assert counts.tolist() == [m * m] * (64 // (m * m))  # every token in exactly one segment of M*M tokens
    rows, cols = torch.arange(64) // 8, torch.arange(64) % 8
    assert torch.equal(seg.segment[0], (rows // m) * (8 // m) + cols // m)
    part_of_token = seg.partition[0][seg.segment[0]]
    expected = torch.zeros(64, dtype=torch.long) if q is None else (rows // q) * (8 // q) + cols // q
    assert torch.equal(part_of_token, expected)
    serial = serialise(seg, "random", gen())
    check_serial(seg, serial)
    assert torch.equal(serial.rank, (torch.arange(64) // (m * m)).expand(6, 64))  # one static rank for the batch


def test_random_orders_differ_per_image_and_reproduce_by_seed():
    seg = SquareSegmenter(2, 4)(8, GRID, "cpu")
    a, b = serialise(seg, "random", gen(1)), serialise(seg, "random", gen(1))
    assert torch.equal(a.perm, b.perm)
    assert len({tuple(p.tolist()) for p in a.perm}) == 8
    assert not torch.equal(a.perm, serialise(seg, "random", gen(2)).perm)
    blobs = BlobSegmenter(11, 5)
    s1, s2 = blobs(4, GRID, "cpu", gen(3)), blobs(4, GRID, "cpu", gen(3))
    assert torch.equal(s1.segment, s2.segment) and torch.equal(s1.partition, s2.partition)
    assert len({tuple(s.tolist()) for s in s1.segment}) == 4


def test_hierarchical_order_visits_quadrants_one_at_a_time():
    serial = serialise(SquareSegmenter(2, 4)(16, GRID, "cpu"), "random", gen())
    quadrant = lambda t: (t // 8 // 4) * 2 + (t % 8) // 4  # noqa: E731
    for perm in serial.perm:
        q = quadrant(perm).reshape(4, 16)  # 4 partitions of 16 tokens, in serial order
        assert all(len(set(row.tolist())) == 1 for row in q)
        assert sorted(q[:, 0].tolist()) == [0, 1, 2, 3]
    firsts = {tuple(quadrant(p[::16]).tolist()) for p in serial.perm}
    assert len(firsts) > 1  # the quadrant order is random too


def test_raster_orders():
    patch_raster = serialise(SquareSegmenter(1)(2, GRID, "cpu"), "raster")
    assert torch.equal(patch_raster.perm, torch.arange(64).expand(2, 64))
    squares = serialise(SquareSegmenter(2)(1, GRID, "cpu"), "raster")
    assert squares.perm[0, :8].tolist() == [0, 1, 8, 9, 2, 3, 10, 11]
    hier = serialise(SquareSegmenter(2, 4)(1, GRID, "cpu"), "raster")  # quadrant 0 first, row-major inside
    assert hier.perm[0, :16].tolist() == [0, 1, 8, 9, 2, 3, 10, 11, 16, 17, 24, 25, 18, 19, 26, 27]


@pytest.mark.parametrize("k,p", [(7, None), (11, 5), (7, 3), (30, None)])
def test_blob_segments(k, p):
    seg = BlobSegmenter(k, p)(16, GRID, "cpu", gen(k))
    assert seg.equal_size is None
    assert seg.segment.shape == (16, 64) and seg.segment.min() >= 0 and seg.segment.max() < k
    serial = serialise(seg, "random", gen())
    check_serial(seg, serial)
    used = [len(s.unique()) for s in seg.segment]
    assert serial.num_segments.tolist() == used  # empty blobs are dropped
    assert max(used) > 1
    if p is not None:
        assert seg.partition.max() < p


def test_blob_assignment_is_the_mahalanobis_nearest_gaussian():
    """Against the textbook formula (x - mu)^T Sigma^-1 (x - mu) with Sigma = R diag(s^2) R^T."""
    from vitssl.methods.randsac.segments import _gaussians, _mahalanobis2

    means, scales, angles = _gaussians(3, 7, (0.0, 1.0), (0.05, 0.5), "cpu", gen(5))
    pts = torch.rand(1, 40, 2, generator=gen(6))
    d = _mahalanobis2(pts, means, scales, angles)
    for b in range(3):
        for j in range(7):
            c, s = angles[b, j].cos(), angles[b, j].sin()
            rot = torch.stack([torch.stack([c, -s]), torch.stack([s, c])])
            sigma = rot @ torch.diag(scales[b, j] ** 2) @ rot.T
            diff = pts[0] - means[b, j]
            ref = ((diff @ torch.linalg.inv(sigma)) * diff).sum(-1)
            assert torch.allclose(d[b, :, j], ref, rtol=1e-4)
    seg = BlobSegmenter(7, scale_range=(0.05, 0.5))(3, GRID, "cpu", gen(5))  # the segmenter draws the same Gaussians from the same seed
    grid_pts = torch.stack(torch.meshgrid((torch.arange(8) + 0.5) / 8, (torch.arange(8) + 0.5) / 8,
                                          indexing="ij"), -1).reshape(1, 64, 2)
    assert torch.equal(seg.segment, _mahalanobis2(grid_pts, means, scales, angles).argmin(-1))


def test_gather_is_the_serial_order():
    x = torch.arange(2 * 64 * 3).reshape(2, 64, 3)
    serial = serialise(SquareSegmenter(2, 4)(2, GRID, "cpu"), "random", gen())
    out = gather_tokens(x, serial.perm)
    assert torch.equal(out[1, 5], x[1, serial.perm[1, 5]])
    assert torch.equal(gather_tokens(out, serial.inverse()), x)


def test_square_size_that_does_not_tile_the_grid_is_a_clear_error():
    with pytest.raises(ConfigError, match=r"method.square_size.*\(3\).*sizes that work: 1, 2, 4, 8"):
        load_config(None, ["method.name=randsac", "model.patch_size=4", "data.image_size=32", "method.square_size=3"])
    with pytest.raises(ConfigError, match=r"method.partition_size.*sizes that work: 2, 4, 8"):
        load_config(None, ["method.name=randsac", "model.patch_size=4", "data.image_size=32",
                           "method.partition_size=3"])
    with pytest.raises(ConfigError, match="sizes that work"):
        SquareSegmenter(3)(1, (8, 8), "cpu")
