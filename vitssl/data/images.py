"""Decode any image file into a uint8 RGB array, or say clearly why not.

Grayscale, palette, RGBA/LA (composited on white), CMYK, 16-bit and float images are converted;
EXIF orientation is applied. The result is resized so its shorter side is `size`, then either its
centre square (`aspect='square'`) or the whole photo, its longer side cut to at most `max_aspect`
times the shorter (`aspect='keep'`). Kept photos of several shapes share one batch as a square
*canvas* (`to_canvas`): the photo centred, its border pixels repeated around it, and a 4th channel
(255 on the photo, 0 around it) from which augmentation reads where the photo is.
"""

from __future__ import annotations

import io
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from vitssl.errors import DataError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm")


def to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL mode -> 8-bit RGB."""
    if img.mode.startswith("I") or img.mode == "F":  # 16/32-bit integer or float grayscale
        arr = np.asarray(img, dtype=np.float64)
        if img.mode == "F":
            scale = 255.0 if arr.max() <= 1.0 else 255.0 / max(float(arr.max()), 1e-12)
        else:
            scale = 255.0 / 65535.0 if (img.mode.startswith("I;16") or arr.max() > 255) else 1.0
        return Image.fromarray(np.clip(arr * scale + 0.5, 0, 255).astype(np.uint8)).convert("RGB")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB") if img.mode != "RGB" else img


def center_square(img: Image.Image, size: int) -> Image.Image:
    """Resize so the shorter side is `size`, then crop the centre `size` x `size`."""
    w, h = img.size
    if (w, h) != (size, size):
        scale = size / min(w, h)
        nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
        img = img.resize((nw, nh), Image.BICUBIC, reducing_gap=3.0)
        left, top = (nw - size) // 2, (nh - size) // 2
        img = img.crop((left, top, left + size, top + size))
    return img


def shorter_side(img: Image.Image, size: int, max_aspect: float) -> Image.Image:
    """Resize so the shorter side is `size`; a longer side past `max_aspect` x `size` loses its ends."""
    w, h = img.size
    scale = size / min(w, h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    if (nw, nh) != (w, h):
        img = img.resize((nw, nh), Image.BICUBIC, reducing_gap=3.0)
    cap = math.floor(size * max_aspect)
    if max(nw, nh) > cap:
        cw, ch = min(nw, cap), min(nh, cap)
        left, top = (nw - cw) // 2, (nh - ch) // 2
        img = img.crop((left, top, left + cw, top + ch))
    return img


def to_canvas(photo: np.ndarray, side: int) -> np.ndarray:
    """(h, w, 3) uint8 with h, w <= side -> (side, side, 4): centred, edges repeated outwards (so a
    bicubic kernel at the photo's border reads what `padding_mode='border'` would), alpha 255 on it."""
    h, w = photo.shape[:2]
    top, left = (side - h) // 2, (side - w) // 2
    pad = ((top, side - h - top), (left, side - w - left), (0, 0))
    rgb = np.pad(photo, pad, mode="edge")
    alpha = np.zeros((side, side, 1), np.uint8)
    alpha[top:top + h, left:left + w] = 255
    return np.concatenate([rgb, alpha], axis=2)


JPEG_MAGIC = b"\xff\xd8\xff"


def _decode_jpeg_scaled(data: bytes, size: int) -> tuple[Image.Image, int] | None:
    """(image, scale): a JPEG decoded by libjpeg-turbo (simplejpeg) at the smallest DCT scale of 1/2, 1/4
    or 1/8 whose shorter side is still at least `size` (a 500x375 photo for 64 px: 1/4 side, 1/16 of the pixels),
    as Pillow's `draft` scales (other n/8 scales move pixels more than JPEG's own rounding does).
    None where the plain path must decide (no reduction possible, not a JPEG, EXIF rotation, CMYK,
    damage, no simplejpeg)."""
    try:
        import simplejpeg
    except ImportError:
        return None
    if not data.startswith(JPEG_MAGIC):
        return None
    try:
        h, w, _, _ = simplejpeg.decode_jpeg_header(data)
        scale = max((d for d in (1, 2, 4, 8) if min(h, w) // d >= size), default=1)
        if scale == 1:
            return None  # no reduction possible: the plain path decodes the same pixels
        with Image.open(io.BytesIO(data)) as img:  # the header only: EXIF orientation
            if img.getexif().get(0x0112, 1) != 1:
                return None
        arr = simplejpeg.decode_jpeg(data, colorspace="RGB", min_height=-(-h // scale), min_width=-(-w // scale))
    except (ValueError, OSError):
        return None
    return Image.fromarray(arr), scale


def decode_image(path: str | Path, size: int, min_side: int = 1, *, aspect: str = "square",
                 max_aspect: float = 1.5, crop_bottom: int = 0) -> np.ndarray:
    """Read `path` as a uint8 (size, size, 3) array (`aspect='square'`), or (h, w, 3) with the shorter
    side `size` (`aspect='keep'`), after cutting `crop_bottom` rows off the bottom of the file's image
    (FGVC-Aircraft's copyright banner); DataError names the file and the problem."""
    def finish(img: Image.Image, scale: int = 1) -> np.ndarray:
        if crop_bottom:
            img = img.crop((0, 0, img.size[0], img.size[1] - round(crop_bottom / scale)))
        if aspect == "keep":
            return np.asarray(shorter_side(img, size, max_aspect), dtype=np.uint8)
        return np.asarray(center_square(img, size), dtype=np.uint8)

    try:
        with open(path, "rb") as f:
            data = f.read()  # once, for both decoders
        if min_side <= size:
            fast = _decode_jpeg_scaled(data, size + crop_bottom)  # the banner's rows are full-size pixels
            if fast is not None:
                return finish(*fast)
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                img.load()
                ImageOps.exif_transpose(img, in_place=True)  # in place: no copy of an upright photo
                if min(img.size[0], img.size[1] - crop_bottom) < min_side:
                    raise DataError(f"image '{path}' is {img.size[0]}x{img.size[1]} px"
                                    + (f" ({img.size[1] - crop_bottom} high after data.crop_bottom={crop_bottom})"
                                       if crop_bottom else "")
                                    + f", smaller than one {min_side}x{min_side} patch; remove it or set "
                                    "data.bad_images=skip")
                return finish(to_rgb(img))
    except DataError:
        raise
    except FileNotFoundError:
        raise DataError(f"image '{path}' does not exist") from None
    except Exception as e:  # PIL raises many types for broken files
        raise DataError(f"cannot read image '{path}': {type(e).__name__}: {e}; "
                        "remove or replace it, or set data.bad_images=skip") from None


@dataclass(frozen=True)
class Decode:
    """How image files become stored pixels: everything the decoded cache depends on."""

    size: int  # shorter side
    min_side: int = 1  # smaller images are refused (one patch)
    aspect: str = "square"  # 'square': the centre square; 'keep': the whole photo on a canvas
    max_aspect: float = 1.5
    crop_bottom: int = 0

    @property
    def canvas(self) -> int:
        """Side of the square that holds any photo this decodes (the store size for squares)."""
        return self.size if self.aspect == "square" else math.floor(self.size * self.max_aspect)

    def __call__(self, path: str | Path) -> np.ndarray:
        """(size, size, 3), or (h, w, 3) for aspect='keep' (`to_canvas` puts it into a batch)."""
        return decode_image(path, self.size, self.min_side, aspect=self.aspect, max_aspect=self.max_aspect,
                            crop_bottom=self.crop_bottom)
