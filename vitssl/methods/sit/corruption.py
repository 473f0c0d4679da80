"""GMML group-masked corruption, batched on the training device (METHODS.md §1).

Per image: a target fraction f ~ U(min(0.5, max_frac), max_frac); rectangular blocks (corner
uniform, height and width independent in [align, max_block * side], multiples of `align`, clipped)
are drawn until their union covers f of the area; the union is filled with noise, zeros (the mean
colour) or the same pixels of another image of the batch. With probability `swap_prob` an image
instead gets blocks of another image pasted until `swap_frac` of it is covered.

The public code draws block after block per image in Python, summing the whole mask after each.
Here every image draws its blocks in chunks, and one batched matmul per chunk gives, for every
pixel, the index of the first block that covers it: with row indicators R (T, H) weighted by 2^-t
and column indicators C (T, W), S = R^T C sums distinct powers of two, exactly in floating point, so
the exponent of S is the smallest covering t. A histogram of those indices gives each image's
coverage after any number of blocks, hence exactly the block count at which the sequential loop
would stop, and the mask is "first index < count". Same blocks in, same mask out.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import torch

FILLS = ("noise", "zeros", "image")


@dataclass
class Corrupted:
    images: torch.Tensor  # (B, C, H, W) the corrupted images
    mask: torch.Tensor  # (B, 1, H, W) bool, True where pixels were replaced
    num_blocks: torch.Tensor  # (B,) blocks drawn for each image
    fill: torch.Tensor  # (B,) index into FILLS


def _draw_blocks(b: int, t: int, grid: tuple[int, int], max_side: tuple[int, int], device):
    """(y0, y1, x0, x1), each (B, T) in grid units; sides independent, clipped to the grid."""
    (gh, gw), (mh, mw) = grid, max_side
    y0 = torch.randint(0, gh, (b, t), device=device)
    x0 = torch.randint(0, gw, (b, t), device=device)
    y1 = (y0 + torch.randint(1, mh + 1, (b, t), device=device)).clamp_max(gh)
    x1 = (x0 + torch.randint(1, mw + 1, (b, t), device=device)).clamp_max(gw)
    return y0, y1, x0, x1


def first_cover(blocks, grid: tuple[int, int]) -> torch.Tensor:
    """For T <= 53 blocks: the index of the first block covering each cell, (B, gh, gw) int32, and a value
    >= T where no block does."""
    y0, y1, x0, x1 = blocks
    t = y0.shape[1]
    exact64 = t > 24  # fp32 holds 24 distinct powers of two exactly; GPUs may round fp32 (TF32) anyway
    dtype, mant, bias = (torch.float64, 52, 1023) if exact64 else (torch.float32, 23, 127)
    if t > mant + 1:
        raise ValueError(f"at most {mant + 1} blocks per chunk in {dtype}")
    ys = torch.arange(grid[0], device=y0.device)
    xs = torch.arange(grid[1], device=y0.device)
    rows = ((ys >= y0[..., None]) & (ys < y1[..., None])).to(dtype)  # (B, T, gh)
    cols = ((xs >= x0[..., None]) & (xs < x1[..., None])).to(dtype)  # (B, T, gw)
    weight = torch.pow(2.0, -torch.arange(t, device=y0.device, dtype=dtype))  # block t counts 2^-t
    with torch.autocast(y0.device.type, enabled=False):
        s = torch.bmm((rows * weight[:, None]).transpose(1, 2), cols)  # (B, gh, gw) sum of 2^-t over covering t
    bits = s.view(torch.int32)  # an fp64's exponent lies in its high 32-bit word
    if exact64:
        bits = bits[..., 1::2] if sys.byteorder == "little" else bits[..., 0::2]
    exponent = bits >> (mant - 32 if exact64 else mant)  # (B, gh, gw) biased exponent; 0 where s == 0
    return torch.sub(bias, exponent, out=exponent)  # first covering t = bias - exponent; bias where none


def sample_masks(b: int, size: tuple[int, int], target: torch.Tensor, *, align: int = 1, max_block: float = 0.3,
                 device=None, return_blocks: bool = False):
    """Block masks reaching each image's target fraction: (mask (B, H, W) bool, blocks used (B,)).

    `target` (B,) holds fractions of the area. Exact: drawing the same blocks one by one until the
    union reaches the target gives the same mask (with `return_blocks`, the blocks come back too).
    """
    h, w = size
    if h % align or w % align:
        raise ValueError(f"image size {h}x{w} is not a multiple of align={align}")
    device = torch.device(device) if device is not None else target.device
    grid = (h // align, w // align)
    cells = grid[0] * grid[1]
    max_side = (max(1, round(int(max_block * h) / align)), max(1, round(int(max_block * w) / align)))
    need = torch.ceil(target.to(device).double() * cells - 1e-9).clamp(1, cells).long()  # cells to cover
    chunk = 53  # the most blocks whose powers of two fp64 sums exactly
    none = 2 ** 30  # "no block covers this cell yet"
    first = None  # (B, gh, gw) int32: index of the first block covering each cell, or `none`
    count = torch.zeros(b, dtype=torch.long, device=device)  # cells covered so far
    used = torch.zeros(b, dtype=torch.long, device=device)  # blocks the sequential loop would draw
    todo = torch.arange(b, device=device)  # images still short of their target
    drawn = []
    while todo.numel():
        blocks = _draw_blocks(b, chunk, grid, max_side, device)  # drawn for all, so any image's blocks are its own
        offset = chunk * len(drawn)
        drawn.append(blocks)
        n = todo.numel()
        if first is None:  # the first chunk: every image, nothing covered before
            bins = first_cover(blocks, grid).clamp_max_(chunk)  # (B, gh, gw): the covering block, or `chunk` for none
        else:
            idx = first_cover(tuple(t.index_select(0, todo) for t in blocks), grid)
            first_t = first.index_select(0, todo)
            new = (idx < chunk).logical_and_(first_t == none)  # cells this chunk covers first
            bins = idx.masked_fill_(~new, chunk)
            first.index_copy_(0, todo, torch.where(new, bins + offset, first_t))
        key = (torch.arange(n, device=device, dtype=torch.int32) * (chunk + 1)).view(n, 1, 1)
        hist = torch.bincount((bins + key).view(-1), minlength=n * (chunk + 1)).view(n, chunk + 1)[:, :chunk]
        if first is None:
            first = bins.masked_fill_(bins == chunk, none)  # bins are not needed any more
        covered = count.index_select(0, todo)[:, None] + hist.cumsum(1)  # (n, chunk): covered after each block
        goal = need.index_select(0, todo)[:, None]
        reached = covered[:, -1] >= goal[:, 0]
        count.index_copy_(0, todo, covered[:, -1])
        used.index_copy_(0, todo, torch.where(reached, offset + (covered < goal).sum(1) + 1, 0))
        todo = todo[~reached]
    mask = first < used.int()[:, None, None]  # (B, gh, gw)
    if align > 1:
        mask = mask.repeat_interleave(align, 1).repeat_interleave(align, 2)
    if return_blocks:
        return mask, used, tuple(torch.cat(parts, 1) for parts in zip(*drawn))
    return mask, used


def gmml_corrupt(images: torch.Tensor, *, max_frac: float = 0.5, align: int = 1, max_block: float = 0.3,
                 fill_probs: tuple[float, float, float] = (1.0, 0.0, 0.0), swap_prob: float = 0.5,
                 swap_frac: float = 0.3) -> Corrupted:
    """Corrupt normalised images (B, C, H, W) with GMML; random numbers from the device's global RNG."""
    b, c, h, w = images.shape
    dev = images.device
    lo = min(0.5, max_frac)
    frac = torch.rand(b, device=dev) * (max_frac - lo) + lo
    fill = torch.multinomial(torch.tensor(fill_probs, device=dev, dtype=torch.float), b, replacement=True)
    swap = torch.rand(b, device=dev) < swap_prob
    frac = torch.where(swap, torch.full_like(frac, swap_frac), frac)
    fill = torch.where(swap, torch.full_like(fill, FILLS.index("image")), fill)
    if b < 2:  # no other image to paste from
        fill = torch.where(fill == FILLS.index("image"), torch.zeros_like(fill), fill)
    mask, used = sample_masks(b, (h, w), frac, align=align, max_block=max_block, device=dev)
    mask = mask[:, None]  # (B, 1, H, W)

    partner = (torch.arange(b, device=dev) + torch.randint(1, max(b, 2), (b,), device=dev)) % b  # never itself
    return Corrupted(fill_masked(images, mask, fill, partner), mask, used, fill)


def fill_masked(images: torch.Tensor, mask: torch.Tensor, fill: torch.Tensor, partner: torch.Tensor) -> torch.Tensor:
    """images (B, C, H, W) with the pixels under mask (B, 1, H, W) replaced by each image's fill: Gaussian
    noise, zeros, or the same pixels of images[partner]. The replacement values are gathered into one
    tensor, image by image, and a single `where` writes them: two passes over the batch."""
    src = torch.empty_like(images)
    for kind, name in enumerate(FILLS):  # each fill touches only its own images
        rows = (fill == kind).nonzero()[:, 0]
        if not rows.numel():
            continue
        if name == "noise":
            src.index_copy_(0, rows, torch.randn((rows.numel(), *images.shape[1:]), device=images.device,
                                                 dtype=images.dtype))
        elif name == "zeros":
            src.index_fill_(0, rows, 0.0)
        else:
            src.index_copy_(0, rows, images.index_select(0, partner.index_select(0, rows)))
    return torch.where(mask, src, images)
