"""Batched image augmentation on the training device: one kernel per step for the whole batch.

uint8 (B, 3, S, S), or the same as float in [0, 1] (`unit`, shared by several views) -> normalised
float (B, 3, s, s). Every parameter is drawn per image from the global torch RNG of the device
(checkpointed by the trainer, so resumed runs repeat it exactly).

- random resized crop and horizontal flip: one `affine_grid` + `grid_sample`;
- colour jitter (brightness, contrast, saturation, hue in a random order per image) and grayscale
  are all affine maps of the RGB vector, composed per image into one 3x4 matrix and applied with a
  single batched matmul, clamped once at the end (the per-op clamps of torchvision are dropped);
- Gaussian blur: separable, per-image sigma, two batched matmuls with per-image (n, n) matrices
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
                attempts: int = 10) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random-resized-crop boxes as fractions of the image: (cx, cy, w, h), each (B,).

    As torchvision: up to `attempts` (area, log-ratio) draws per image, the first that fits wins;
    an image where none fits gets the largest centred crop of clamped ratio.
    """
    area = _rand(b * attempts, *scale, device).view(b, attempts)
    logr = _rand(b * attempts, math.log(ratio[0]), math.log(ratio[1]), device).view(b, attempts)
    r = logr.exp()
    w, h = (area * r).sqrt(), (area / r).sqrt()
    ok = (w <= 1) & (h <= 1)
    first = torch.where(ok.any(1), ok.float().argmax(1), torch.zeros_like(ok[:, 0], dtype=torch.long))
    w, h = w.gather(1, first[:, None])[:, 0], h.gather(1, first[:, None])[:, 0]
    fallback = ~ok.any(1)
    w = torch.where(fallback, torch.full_like(w, min(1.0, ratio[1])), w)
    h = torch.where(fallback, torch.full_like(h, min(1.0, 1 / ratio[0])), h)
    cx = w / 2 + torch.rand(b, device=device) * (1 - w)
    cy = h / 2 + torch.rand(b, device=device) * (1 - h)
    return cx, cy, w, h


def resized_crop(x: torch.Tensor, size: int, cx, cy, w, h, flip: torch.Tensor) -> torch.Tensor:
    """Crop boxes (fractions) of float images (B, C, H, W), resized to size x size, flipped where `flip`."""
    b = x.shape[0]
    theta = torch.zeros(b, 2, 3, device=x.device, dtype=x.dtype)
    theta[:, 0, 0] = w * torch.where(flip, -1.0, 1.0)
    theta[:, 0, 2] = cx * 2 - 1
    theta[:, 1, 1] = h
    theta[:, 1, 2] = cy * 2 - 1
    grid = F.affine_grid(theta, [b, x.shape[1], size, size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


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


def _blur_matrix(k: torch.Tensor, n: int) -> torch.Tensor:
    """(B, n, n) matrices M with (x @ M)[j] = sum_d k[d] x[reflect(j + d - r)]: the 1-D blur, borders included."""
    r = k.shape[1] // 2
    src = torch.arange(n, device=k.device)[:, None] + torch.arange(-r, r + 1, device=k.device)  # (n, 2r + 1)
    src = torch.where(src < 0, -src, torch.where(src >= n, 2 * (n - 1) - src, src))  # reflect, no edge repeat
    onehot = F.one_hot(src, n).to(k)  # (n_dst, 2r + 1, n_src)
    return torch.einsum("bk,jks->bsj", k, onehot)


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Separable blur of (B, C, H, W) with one sigma per image (pixels), reflect borders.

    Each pass is one batched matmul with a dense (n, n) matrix per image that holds the kernel and
    the reflected borders: no padding and no transposes. It does n / (2r + 1) times the arithmetic of
    a grouped convolution but at matmul speed: on a 2-core CPU both take about 3 ms per 224 px
    image (the convolution runs at about 1 GMAC/s there); on a GPU the matmul is the better fit.
    """
    b, c, h, w = x.shape
    radius = min(int(math.ceil(3 * float(sigma.max()))), (min(h, w) - 1) // 2)
    if radius < 1:
        return x
    k = get_gaussian_kernel1d(2 * radius + 1, sigma.float()[:, None]).to(x.dtype)  # (B, 2r + 1), symmetric
    x = torch.bmm(x.reshape(b, c * h, w), _blur_matrix(k, w)).view(b, c, h, w)  # along W
    return torch.matmul(_blur_matrix(k, h).transpose(1, 2)[:, None], x)  # along H: (B, 1, H, H) @ (B, C, H, W)


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
        x = self.unit(images)  # (B, 3, S, S) in [0, 1]; read only below
        b, dev = x.shape[0], x.device
        cx, cy, w, h = crop_params(b, c.crop_scale, c.crop_ratio, dev)
        flip = torch.rand(b, device=dev) < c.flip_p
        x = resized_crop(x, self.size, cx, cy, w, h, flip)  # (B, 3, s, s)
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
        """No augmentation: the centre `image_size` square, normalised (for evaluation and pictures)."""
        x = images.float() / 255
        off = (x.shape[-1] - self.size) // 2
        if off > 0:
            x = x[..., off:off + self.size, off:off + self.size]
        elif x.shape[-1] != self.size:
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", antialias=True, align_corners=False)
        return self.normalize(x)
