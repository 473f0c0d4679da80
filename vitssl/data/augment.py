"""Batched image augmentation on the training device: one kernel per step for the whole batch.

uint8 (B, 3, S, S), or the same as float in [0, 1] (`unit`, shared by several views) -> normalised
float (B, 3, s, s). Photos kept whole arrive as (B, 4, C, C) canvases (`vitssl.data.images.to_canvas`):
crops are then drawn from each photo's own extent, with its own aspect ratio. Every parameter is drawn
per image from the global torch RNG of the device (checkpointed by the loop, so resumed runs repeat it
exactly).

- random resized crop and horizontal flip: one `grid_sample` (bicubic, as the official SiT and MAE
  crops, or bilinear) on a grid built from two vectors per image;
- colour jitter (brightness, contrast, saturation, hue in a random order per image) and grayscale
  are all affine maps of the RGB vector, composed per image into one 3x4 matrix and applied with a
  single batched matmul, clamped once at the end (the per-op clamps of torchvision are dropped);
- Gaussian blur: separable, per-image sigma, two batched matmuls of tiles with per-image band matrices
  over the chosen images (kornia computes the kernels);
- solarize.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from kornia.filters import get_gaussian_kernel1d

GRAY = (0.299, 0.587, 0.114)


def _rand(n: int, lo: float, hi: float, device) -> torch.Tensor:
    return torch.rand(n, device=device) * (hi - lo) + lo


def crop_params(b: int, scale: tuple[float, float], ratio: tuple[float, float], device,
                attempts: int = 10, aspect: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random-resized-crop boxes as fractions of the image: (cx, cy, w, h), each (B,).

    As torchvision: up to `attempts` (area, log-ratio) draws per image, the first that fits wins;
    an image where none fits gets the largest centred crop of clamped ratio. `aspect` (B,): each
    image's width / height in pixels (1: squares), so that `ratio` is a ratio of pixels.
    """
    a = torch.ones(b, device=device) if aspect is None else aspect.to(device)
    area = _rand(b * attempts, *scale, device).view(b, attempts)
    logr = _rand(b * attempts, math.log(ratio[0]), math.log(ratio[1]), device).view(b, attempts)
    r = logr.exp()
    w, h = (area * r / a[:, None]).sqrt(), (area * a[:, None] / r).sqrt()
    ok = (w <= 1) & (h <= 1)
    first = torch.where(ok.any(1), ok.float().argmax(1), torch.zeros_like(ok[:, 0], dtype=torch.long))
    w, h = w.gather(1, first[:, None])[:, 0], h.gather(1, first[:, None])[:, 0]
    fallback = ~ok.any(1)
    w = torch.where(fallback, (ratio[1] / a).clamp(max=1), w)  # too tall for the widest ratio: full height
    h = torch.where(fallback, (a / ratio[0]).clamp(max=1), h)  # too wide for the narrowest: full width
    cx = w / 2 + torch.rand(b, device=device) * (1 - w)
    cy = h / 2 + torch.rand(b, device=device) * (1 - h)
    return cx, cy, w, h


def photo_box(x: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """A float (B, 4, C, C) canvas batch in [0, 1] -> (its RGB (B, 3, C, C), the photos' boxes (left,
    top, width, height) as fractions of the canvas, each (B,)). Photos are centred: the middle row and
    column cross them."""
    c = x.shape[-1]
    alpha = x[:, 3]
    cols, rows = alpha[:, c // 2, :] > 0.5, alpha[:, :, c // 2] > 0.5  # (B, C) each
    w, h = cols.sum(1), rows.sum(1)
    left, top = cols.float().argmax(1), rows.float().argmax(1)  # first column / row of the photo
    return x[:, :3], (left / c, top / c, w / c, h / c)


def random_crop(x: torch.Tensor, size: int, scale: tuple[float, float], ratio: tuple[float, float], flip_p: float,
                mode: str = "bicubic") -> torch.Tensor:
    """Random resized crops (and horizontal flips) of float images in [0, 1]: (B, 3, S, S), or (B, 4, C, C)
    canvases whose crops come from each photo's whole extent -> (B, 3, size, size)."""
    b, dev = x.shape[0], x.device
    if x.shape[1] == 4:
        x, (left, top, pw, ph) = photo_box(x)
        cx, cy, w, h = crop_params(b, scale, ratio, dev, aspect=pw / ph)
        cx, cy, w, h = left + cx * pw, top + cy * ph, w * pw, h * ph  # fractions of the photo -> of the canvas
    else:
        cx, cy, w, h = crop_params(b, scale, ratio, dev)
    flip = torch.rand(b, device=dev) < flip_p
    return resized_crop(x, size, cx, cy, w, h, flip, mode)


def resized_crop(x: torch.Tensor, size: int, cx, cy, w, h, flip: torch.Tensor,
                 mode: str = "bicubic") -> torch.Tensor:
    """Crop boxes (fractions) of float images (B, C, H, W) in [0, 1], resized to size x size (`mode`
    'bicubic' or 'bilinear'), flipped where `flip`. Bicubic overshoot is clamped back into [0, 1].

    The boxes are axis-aligned, so the sampling grid's x depends on the column only and its y on the
    row only: two (B, size) vectors broadcast into the grid, where `affine_grid` would spend a
    (size², 3) x (3, 2) matmul per image (as long as the bilinear sampling itself on a CPU).
    """
    b = x.shape[0]
    base = (torch.arange(size, device=x.device) * 2 + 1 - size) / size  # pixel centres in [-1, 1]
    gx = (w * torch.where(flip, -1.0, 1.0))[:, None] * base + (cx * 2 - 1)[:, None]  # (B, s)
    gy = h[:, None] * base + (cy * 2 - 1)[:, None]  # (B, s)
    grid = torch.stack((gx[:, None, :].expand(b, size, size), gy[:, :, None].expand(b, size, size)), -1)
    out = F.grid_sample(x, grid.to(x.dtype), mode=mode, padding_mode="border", align_corners=False)
    return out.clamp_(0, 1) if mode == "bicubic" else out


def _yiq_hue(angle: torch.Tensor) -> torch.Tensor:
    """(B, 3, 3) RGB->RGB hue rotation by `angle` radians in YIQ space."""
    to_yiq = angle.new_tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
    to_rgb = torch.linalg.inv(to_yiq)
    c, s = angle.cos(), angle.sin()
    rot = torch.zeros(angle.shape[0], 3, 3, device=angle.device, dtype=angle.dtype)
    rot[:, 0, 0] = 1
    rot[:, 1, 1], rot[:, 1, 2], rot[:, 2, 1], rot[:, 2, 2] = c, -s, s, c
    return to_rgb @ rot @ to_yiq


def colour_matrix(x: torch.Tensor, *, jitter_p: float, brightness: float, contrast: float, saturation: float,
                  hue: float, grayscale_p: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image affine colour map (A (B, 3, 3), o (B, 3)) so that x' = clamp(A x + o)."""
    b, dev = x.shape[0], x.device
    eye = torch.eye(3, device=dev).expand(b, 3, 3)
    gray = torch.tensor(GRAY, device=dev)
    a, o = eye.clone(), torch.zeros(b, 3, device=dev)
    mean_rgb = x.mean((2, 3))  # (B, 3): the contrast op blends toward the mean gray of the current image
    on = torch.rand(b, device=dev) < jitter_p
    bf = torch.where(on, _rand(b, 1 - brightness, 1 + brightness, dev), 1.0)
    cf = torch.where(on, _rand(b, 1 - contrast, 1 + contrast, dev), 1.0)
    sf = torch.where(on, _rand(b, 1 - saturation, 1 + saturation, dev), 1.0)
    hf = torch.where(on, _rand(b, -hue, hue, dev), 0.0) * 2 * math.pi
    sat = sf[:, None, None] * eye + (1 - sf)[:, None, None] * gray.expand(3, 3)
    hue_m = _yiq_hue(hf)
    order = torch.rand(b, 4, device=dev).argsort(1)  # random order of the four ops, per image
    for k in range(4):
        op = order[:, k]
        # brightness: scale; contrast: blend with the mean gray; saturation / hue: 3x3 maps
        mean_gray = ((a @ mean_rgb[:, :, None])[:, :, 0] + o) @ gray  # (B,)
        lin = torch.where((op == 0)[:, None, None], bf[:, None, None] * eye,
                          torch.where((op == 1)[:, None, None], cf[:, None, None] * eye,
                                      torch.where((op == 2)[:, None, None], sat, hue_m)))
        shift = torch.where(op == 1, (1 - cf) * mean_gray, 0.0)[:, None].expand(b, 3)
        a, o = lin @ a, (lin @ o[:, :, None])[:, :, 0] + shift
    to_gray = torch.rand(b, device=dev) < grayscale_p
    g = torch.where(to_gray[:, None, None], gray.expand(3, 3), eye)
    return g @ a, (g @ o[:, :, None])[:, :, 0]


def _band(k: torch.Tensor, tile: int) -> torch.Tensor:
    """(B, tile + 2r, tile) matrices M with (window @ M)[j] = sum_d k[d] window[j + d]: the 1-D blur of
    one tile from its window, which reaches r pixels past the tile on either side."""
    r = k.shape[1] // 2
    d = torch.arange(tile + 2 * r, device=k.device)[:, None] - torch.arange(tile, device=k.device)  # (t + 2r, t)
    inside = (d >= 0) & (d <= 2 * r)
    return k[:, d.clamp(0, 2 * r)] * inside  # (B, t + 2r, t)


def _pad(x: torch.Tensor, dim: int, r: int, extra: int) -> torch.Tensor:
    """Reflect-pad `dim` (-1 or -2) by r on both sides, then zeros up to a whole number of tiles."""
    pad = (r, r, 0, 0) if dim == -1 else (0, 0, r, r)
    x = F.pad(x, pad, mode="reflect")
    return F.pad(x, (0, extra) if dim == -1 else (0, 0, 0, extra)) if extra else x


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor, tile: int = 32) -> torch.Tensor:
    """Separable blur of (B, C, H, W) with one sigma per image (pixels), reflect borders.

    Each pass cuts its axis into tiles of `tile` pixels and blurs every tile as one small matmul of
    its window (tile + 2r pixels, from the reflect-padded image) with a per-image band matrix: the
    whole batch is two batched matmuls at matmul speed, with (tile + 2r) / (2r + 1) times the
    arithmetic of a convolution instead of the n / (2r + 1) of a dense (n, n) blur matrix (3.4x
    against 17x for a 13-tap kernel at 224 px; on a 2-core CPU about half the time of the dense one).
    """
    b, c, h, w = x.shape
    radius = min(int(math.ceil(3 * float(sigma.max()))), (min(h, w) - 1) // 2)
    if radius < 1:
        return x
    k = get_gaussian_kernel1d(2 * radius + 1, sigma.float()[:, None]).to(x.dtype)  # (B, 2r + 1), symmetric
    # along W: windows (B, C, H, tiles, t + 2r) @ (B, t + 2r, t)
    t = min(tile, w)
    n = -(-w // t)
    win = _pad(x, -1, radius, n * t - w).unfold(3, t + 2 * radius, t)
    x = torch.matmul(win.reshape(b, c * h * n, t + 2 * radius), _band(k, t)).view(b, c, h, n * t)[..., :w]
    # along H: (B, 1, 1, t, t + 2r) @ windows of rows (B, C, tiles, t + 2r, W)
    t = min(tile, h)
    n = -(-h // t)
    win = _pad(x, -2, radius, n * t - h).unfold(2, t + 2 * radius, t).transpose(-1, -2)
    x = torch.matmul(_band(k, t).transpose(1, 2)[:, None, None], win).view(b, c, n * t, w)
    return x[:, :, :h].contiguous()  # a view of the whole result when the tiles fit H exactly


class Augment:
    """Augmentation of a uint8 (or `unit` float) batch into normalised views; `view` selects the
    per-view probabilities."""

    def __init__(self, cfg, *, image_size: int, mean, std):
        self.cfg, self.size = cfg, image_size
        self.mean = torch.tensor(mean).view(1, 3, 1, 1)
        self.std = torch.tensor(std).view(1, 3, 1, 1)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean.to(x)) / self.std.to(x)

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.std.to(x) + self.mean.to(x)

    @staticmethod
    def unit(images: torch.Tensor) -> torch.Tensor:
        """uint8 images as float in [0, 1]: convert once, then draw several views from the result."""
        return images.float().div_(255) if images.dtype == torch.uint8 else images

    def __call__(self, images: torch.Tensor, view: int = 0) -> torch.Tensor:
        c = self.cfg
        x = self.unit(images)  # (B, 3, S, S) or (B, 4, C, C) in [0, 1]; read only below
        b, dev = x.shape[0], x.device
        x = random_crop(x, self.size, c.crop_scale, c.crop_ratio, c.flip_p, c.interpolation)  # (B, 3, s, s)
        if c.jitter_p > 0 or c.grayscale_p > 0:
            a, o = colour_matrix(x, jitter_p=c.jitter_p, brightness=c.brightness, contrast=c.contrast,
                                 saturation=c.saturation, hue=c.hue, grayscale_p=c.grayscale_p)
            x = torch.baddbmm(o[:, :, None], a, x.flatten(2)).view_as(x).clamp_(0, 1)  # (B, 3, s*s)
        blur_p = c.blur_p[view % 2]
        if blur_p > 0:
            chosen = (torch.rand(b, device=dev) < blur_p).nonzero()[:, 0]
            if chosen.numel():
                # sigma is given for 224 px images; scale it to this size
                sigma = _rand(chosen.numel(), *c.blur_sigma, dev) * self.size / 224
                if chosen.numel() == b:
                    x = gaussian_blur(x, sigma)
                else:
                    x = x.index_copy(0, chosen, gaussian_blur(x.index_select(0, chosen), sigma))
        sol_p = c.solarize_p[view % 2]
        if sol_p > 0:
            chosen = (torch.rand(b, device=dev) < sol_p).nonzero()[:, 0]
            if chosen.numel():
                part = x.index_select(0, chosen)
                x = x.index_copy(0, chosen, torch.where(part >= 0.5, 1 - part, part))
        return x.sub_(self.mean.to(x)).div_(self.std.to(x))

    def plain(self, images: torch.Tensor) -> torch.Tensor:
        """No augmentation: the centre `image_size` square, normalised (for evaluation and pictures). A
        canvas's centre lies inside its photo (shorter side data.store_size >= image_size): the same crop."""
        x = images[:, :3].float() / 255
        off = (x.shape[-1] - self.size) // 2
        if off > 0:
            x = x[..., off:off + self.size, off:off + self.size]
        elif x.shape[-1] != self.size:
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", antialias=True, align_corners=False)
        return self.normalize(x)
