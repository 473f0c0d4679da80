"""A built-in labelled image dataset drawn procedurally, so the quick start needs no download.

Ten classes of shapes and textures, each with a random colour, size, position and rotation on a
random background (two-colour gradient plus noise). Deterministic by seed; rendered at twice the
size and averaged down, so edges are anti-aliased.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from tqdm import tqdm

CLASSES = ["disk", "square", "triangle", "ring", "cross", "ellipse", "stripes", "checker", "dots", "crescent"]


SHAPES = [  # class -> inside(x, y) for local coordinates, in the order of CLASSES
    lambda x, y: x * x + y * y <= 1.0,  # disk
    lambda x, y: torch.maximum(x.abs(), y.abs()) <= 0.8,  # square
    lambda x, y: (y >= -0.5) & (math.sqrt(3) * x + y <= 1.0) & (-math.sqrt(3) * x + y <= 1.0),  # triangle
    lambda x, y: ((x * x + y * y) <= 1.0) & ((x * x + y * y) >= 0.55 ** 2),  # ring
    lambda x, y: ((x.abs() <= 0.3) & (y.abs() <= 1.0)) | ((y.abs() <= 0.3) & (x.abs() <= 1.0)),  # cross
    lambda x, y: x * x + y * y / 0.16 <= 1.0,  # ellipse
    lambda x, y: x * x + y * y <= 1.0,  # stripes (texture inside a disk)
    lambda x, y: torch.maximum(x.abs(), y.abs()) <= 0.9,  # checker (texture inside a square)
    lambda x, y: ((x - 0.5) ** 2 + y * y <= 0.16) | ((x + 0.5) ** 2 + y * y <= 0.16),  # dots
    lambda x, y: (x * x + y * y <= 1.0) & ((x - 0.45) ** 2 + y * y > 0.8 ** 2),  # crescent
]
PATTERNS = {  # class -> second-colour texture(x, y, k), k the per-image frequency (n, 1, 1)
    CLASSES.index("stripes"): lambda x, y, k: torch.sin(k * math.pi * x) > 0,
    CLASSES.index("checker"): lambda x, y, k: (torch.sin(k * math.pi * x) * torch.sin(k * math.pi * y)) > 0,
}


def _shape_masks(x: torch.Tensor, y: torch.Tensor, label: torch.Tensor, freq: torch.Tensor) -> tuple:
    """Foreground coverage and a second-colour pattern for local coords x, y: (n, S, S) each. Each
    image evaluates its own class's shape only."""
    fg = torch.zeros(x.shape, dtype=torch.bool)
    second = torch.zeros(x.shape, dtype=torch.bool)
    for c, inside in enumerate(SHAPES):
        idx = (label == c).nonzero()[:, 0]
        if idx.numel():
            xc, yc = x[idx], y[idx]
            fg[idx] = inside(xc, yc)
            if c in PATTERNS:
                second[idx] = PATTERNS[c](xc, yc, freq[idx, None, None])
    return fg, second


def _colours(n: int, g: torch.Generator) -> torch.Tensor:
    return torch.rand(n, 3, generator=g)


def render(labels: torch.Tensor, size: int, g: torch.Generator) -> torch.Tensor:
    """Images (n, 3, size, size) uint8 for the given class labels."""
    n, s2 = labels.shape[0], 2 * size
    coords = (torch.arange(s2, dtype=torch.float32) + 0.5) / s2 * 2 - 1  # pixel centres in [-1, 1]
    gy, gx = torch.meshgrid(coords, coords, indexing="ij")
    scale = 0.3 + 0.35 * torch.rand(n, generator=g)
    cx, cy = [(torch.rand(n, generator=g) * 2 - 1) * (0.95 - scale) for _ in range(2)]
    theta = torch.rand(n, generator=g) * 2 * math.pi
    freq = 2.0 + 3.0 * torch.rand(n, generator=g)
    cos, sin = theta.cos()[:, None, None], theta.sin()[:, None, None]
    dx, dy = gx[None] - cx[:, None, None], gy[None] - cy[:, None, None]
    x = (cos * dx + sin * dy) / scale[:, None, None]
    y = (-sin * dx + cos * dy) / scale[:, None, None]
    fg, second = _shape_masks(x, y, labels, freq)

    bg_a, bg_b, c_fg, c_second = (_colours(n, g) for _ in range(4))
    c_fg = torch.where((c_fg - bg_a).abs().sum(1, keepdim=True) < 0.6, 1.0 - c_fg, c_fg)  # keep the shape visible
    direction = torch.rand(n, generator=g) * 2 * math.pi
    ramp = ((gx[None] * direction.cos()[:, None, None] + gy[None] * direction.sin()[:, None, None]) + 1.5) / 3.0
    background = bg_a[:, :, None, None] + (bg_b - bg_a)[:, :, None, None] * ramp[:, None]  # (n, 3, S, S)
    colour = torch.where(second[:, None], c_second[:, :, None, None], c_fg[:, :, None, None])
    img = torch.where(fg[:, None], colour, background)
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
