"""BENCHMARK BASELINE ONLY - never imported by vitssl.

The public SiT code's way of preparing a batch (METHODS.md §1), rewritten for a side-by-side timing:
every image is decoded and augmented with PIL inside DataLoader worker processes, and the GMML
corruption is sampled per image with NumPy loops in the collate function. Same maths as vitssl's
batched path (random resized crop, flip, colour jitter, grayscale, blur, solarize; blocks drawn
until their union covers the target fraction; noise fill; a 50 % swap stage), done the slow way.
"""

from __future__ import annotations

import math
import random

import numpy as np
import torch
from PIL import Image, ImageEnhance, ImageFilter, ImageOps
from torch.utils.data import Dataset

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32).reshape(3, 1, 1)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32).reshape(3, 1, 1)


def rrc_params(w: int, h: int, scale=(0.2, 1.0), ratio=(3 / 4, 4 / 3)):
    area = w * h
    for _ in range(10):
        target = area * random.uniform(*scale)
        r = math.exp(random.uniform(math.log(ratio[0]), math.log(ratio[1])))
        cw, ch = int(round(math.sqrt(target * r))), int(round(math.sqrt(target / r)))
        if 0 < cw <= w and 0 < ch <= h:
            return random.randint(0, w - cw), random.randint(0, h - ch), cw, ch
    return 0, 0, w, h


def hue_shift(img: Image.Image, factor: float) -> Image.Image:
    h, s, v = img.convert("HSV").split()
    h = Image.fromarray((np.asarray(h, dtype=np.int16) + int(factor * 255)).astype(np.uint8), "L")
    return Image.merge("HSV", (h, s, v)).convert("RGB")


def augment(img: Image.Image, size: int, blur_p: float, solarize_p: float) -> np.ndarray:
    x, y, cw, ch = rrc_params(*img.size)
    img = img.resize((size, size), Image.BILINEAR, box=(x, y, x + cw, y + ch))
    if random.random() < 0.5:
        img = ImageOps.mirror(img)
    if random.random() < 0.8:
        ops = [lambda i: ImageEnhance.Brightness(i).enhance(random.uniform(0.6, 1.4)),
               lambda i: ImageEnhance.Contrast(i).enhance(random.uniform(0.6, 1.4)),
               lambda i: ImageEnhance.Color(i).enhance(random.uniform(0.8, 1.2)),
               lambda i: hue_shift(i, random.uniform(-0.1, 0.1))]
        random.shuffle(ops)
        for op in ops:
            img = op(img)
    if random.random() < 0.2:
        img = ImageOps.grayscale(img).convert("RGB")
    if random.random() < blur_p:
        img = img.filter(ImageFilter.GaussianBlur(radius=random.uniform(0.1, 2.0) * size / 224))
    if random.random() < solarize_p:
        img = ImageOps.solarize(img, 128)
    arr = np.asarray(img, dtype=np.float32).transpose(2, 0, 1) / 255.0
    return (arr - MEAN) / STD


class ReferenceImages(Dataset):
    """Decode-and-augment per item, two views (blur 1.0 / 0.1, solarize 0 / 0.2, as SiT)."""

    def __init__(self, paths: list[str], size: int):
        self.paths, self.size = paths, size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        img = Image.open(self.paths[i]).convert("RGB")
        return augment(img, self.size, 1.0, 0.0), augment(img, self.size, 0.1, 0.2)


def gmml_mask(h: int, w: int, max_frac: float, max_block: float = 0.3) -> np.ndarray:
    """Blocks drawn one at a time until their union covers the target fraction."""
    mask = np.zeros((h, w), dtype=bool)
    target = random.uniform(min(0.5, max_frac), max_frac) * h * w
    while mask.sum() < target:
        bh, bw = random.randint(1, int(max_block * h)), random.randint(1, int(max_block * w))
        y, x = random.randint(0, h - 1), random.randint(0, w - 1)
        mask[y:y + bh, x:x + bw] = True
    return mask


def corrupt_batch(views: np.ndarray, max_frac: float) -> tuple[np.ndarray, np.ndarray]:
    """Per image: noise-filled GMML blocks, or with probability 0.5 blocks pasted from another image."""
    b, c, h, w = views.shape
    out, masks = views.copy(), np.zeros((b, 1, h, w), dtype=bool)
    for i in range(b):
        if random.random() < 0.5:
            j = random.choice([k for k in range(b) if k != i])
            m = gmml_mask(h, w, 0.3 + 1e-6)
            out[i][:, m] = views[j][:, m]
        else:
            m = gmml_mask(h, w, max_frac)
            out[i][:, m] = np.random.randn(c, int(m.sum())).astype(np.float32)
        masks[i, 0] = m
    return out, masks


def make_collate(max_frac: float):
    def collate(items):
        v1 = np.stack([a for a, _ in items])
        v2 = np.stack([b for _, b in items])
        c1, m1 = corrupt_batch(v1, max_frac)
        c2, m2 = corrupt_batch(v2, max_frac)
        return [torch.from_numpy(t) for t in (v1, v2, c1, c2, m1, m2)]

    return collate
