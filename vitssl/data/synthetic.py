"""A built-in labelled image dataset drawn procedurally, so the quick start needs no download.

Ten classes of two-tone textures that fill the image (stripes, checkers, rings, waves...), each with
its own frequency, phase, centre and a small tilt. The two tones are nearly neutral greys of random
brightness: what tells an image apart from another is its structure, not its colour. (Shapes in
random colours on random backgrounds, the first version, taught SiT nothing in the main job's 124
steps: two views of an image share their colours, so colour was the easiest way to tell images
apart.) Every class looks the same after a horizontal flip, so flipping, an augmentation every method
uses, never turns one class into another. Deterministic by seed; rendered at twice the size and
averaged down, so edges are anti-aliased.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from tqdm import tqdm

CLASSES = ["h-stripes", "v-stripes", "checker", "grid", "dots", "rings", "sectors", "waves", "chevrons",
           "diagonal-checker"]

# class -> second-tone mask from (u, v) tilted coordinates, (r, a) polar ones about a random centre,
# k the angular frequency and p, q two phases; every argument (n, S, S) or (n, 1, 1)
PATTERNS = [
    lambda u, v, r, a, k, p, q: torch.sin(k * v + p) > 0,  # h-stripes
    lambda u, v, r, a, k, p, q: torch.sin(k * u + p) > 0,  # v-stripes
    lambda u, v, r, a, k, p, q: torch.sin(k * u + p) * torch.sin(k * v + q) > 0,  # checker
    lambda u, v, r, a, k, p, q: (torch.sin(k * u + p).abs() < 0.35) | (torch.sin(k * v + q).abs() < 0.35),  # grid
    lambda u, v, r, a, k, p, q: torch.sin(k * u + p) + torch.sin(k * v + q) > 1.2,  # dots
    lambda u, v, r, a, k, p, q: torch.sin(1.5 * k * r + p) > 0,  # rings
    lambda u, v, r, a, k, p, q: torch.sin(4 * a + p) > 0,  # sectors (eight)
    lambda u, v, r, a, k, p, q: torch.sin(k * v + 0.8 * torch.sin(k * u + q) + p) > 0,  # waves
    lambda u, v, r, a, k, p, q: torch.sin(k * (u.abs() + v) + p) > 0,  # chevrons
    lambda u, v, r, a, k, p, q: torch.sin(k * (u + v) + p) * torch.sin(k * (u - v) + q) > 0,  # diagonal-checker
]


def _pattern_masks(labels: torch.Tensor, grid: tuple, g: torch.Generator) -> torch.Tensor:
    """(n, S, S) bool second-tone mask; each image evaluates its own class's pattern only."""
    n = labels.shape[0]
    gx, gy = grid[0][None], grid[1][None]  # (1, S, S) pixel centres in [-1, 1]
    col = lambda t: t[:, None, None]  # noqa: E731  (n,) -> (n, 1, 1)
    k = col((2.0 + 2.5 * torch.rand(n, generator=g)) * math.pi)  # 1 to 2.25 periods across the image
    p, q = (col(torch.rand(n, generator=g) * 2 * math.pi) for _ in range(2))
    cx, cy = (col((torch.rand(n, generator=g) * 2 - 1) * 0.6) for _ in range(2))
    tilt = col((torch.rand(n, generator=g) - 0.5) * math.radians(16))
    u, v = gx * tilt.cos() + gy * tilt.sin(), -gx * tilt.sin() + gy * tilt.cos()
    r, a = ((gx - cx) ** 2 + (gy - cy) ** 2).sqrt(), torch.atan2(gy - cy, gx - cx)
    mask = torch.zeros(n, *gx.shape[1:], dtype=torch.bool)
    for c, pattern in enumerate(PATTERNS):
        idx = (labels == c).nonzero()[:, 0]
        if idx.numel():
            pick = lambda t: t[idx] if t.shape[0] == n else t  # noqa: E731
            mask[idx] = pattern(*(pick(t) for t in (u, v, r, a, k, p, q))).expand(len(idx), -1, -1)
    return mask


def render(labels: torch.Tensor, size: int, g: torch.Generator) -> torch.Tensor:
    """Images (n, 3, size, size) uint8 for the given class labels."""
    n, s2 = labels.shape[0], 2 * size
    coords = (torch.arange(s2, dtype=torch.float32) + 0.5) / s2 * 2 - 1
    gy, gx = torch.meshgrid(coords, coords, indexing="ij")
    second = _pattern_masks(labels, (gx, gy), g)
    tint = 0.85 + 0.15 * torch.rand(n, 3, generator=g)  # nearly neutral
    dark = (0.1 + 0.3 * torch.rand(n, 1, generator=g)) * tint
    light = (0.6 + 0.3 * torch.rand(n, 1, generator=g)) * tint
    img = torch.where(second[:, None], light[:, :, None, None], dark[:, :, None, None])  # (n, 3, 2S, 2S)
    img = img + 0.04 * torch.randn(img.shape, generator=g)
    img = F.avg_pool2d(img, 2)  # anti-alias
    return (img.clamp(0, 1) * 255 + 0.5).to(torch.uint8)


CHUNK_PIXELS = 1000 * 64 * 64  # pixels of the 2x canvas rendered at once: about 0.5 GiB of temporaries


def _draw_labels(n: int, g: torch.Generator) -> torch.Tensor:
    labels = torch.arange(n) % len(CLASSES)
    return labels[torch.randperm(n, generator=g)]


def split_seed(split: str) -> int:
    """Each split is drawn from its own seed, so train and test never share an image."""
    return {"train": 0, "val": 1, "test": 2}.get(split, 3)


def labels_for(n: int, seed: int = 0) -> torch.Tensor:
    """The labels `make_synthetic(n, seed=seed)` gives, without drawing an image."""
    return _draw_labels(n, torch.Generator().manual_seed(seed))


def make_synthetic(n: int, size: int = 32, seed: int = 0, progress: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(images (n, 3, size, size) uint8, labels (n,)) with classes balanced and shuffled.

    Rendered in chunks of a fixed pixel budget (1000 images at 32 px, 15 at 256 px), so that memory
    does not grow with the image size. The same seed and size give the same images.
    """
    g = torch.Generator().manual_seed(seed)
    labels = _draw_labels(n, g)
    images = torch.empty(n, 3, size, size, dtype=torch.uint8)
    chunk = max(1, CHUNK_PIXELS // (2 * size) ** 2)
    with tqdm(total=n, desc=f"drawing {n} synthetic images", unit="img", disable=not progress, leave=False) as bar:
        for i in range(0, n, chunk):
            images[i:i + chunk] = render(labels[i:i + chunk], size, g)
            bar.update(min(chunk, n - i))
    return images, labels
