"""Decode any image file into a square uint8 RGB array, or say clearly why not.

Grayscale, palette, RGBA/LA (composited on white), CMYK, 16-bit and float images are converted;
EXIF orientation is applied. The result is the centre square, resized so its side is `size`.
"""

from __future__ import annotations

import io
import warnings
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


JPEG_MAGIC = b"\xff\xd8\xff"


def _decode_jpeg_scaled(data: bytes, size: int) -> Image.Image | None:
    """A JPEG decoded by libjpeg-turbo (simplejpeg) at the smallest DCT scale of 1/2, 1/4 or 1/8 whose
    shorter side is still at least `size` (a 500x375 photo for 64 px: 1/4 side, 1/16 of the pixels),
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
    return Image.fromarray(arr)


def decode_image(path: str | Path, size: int, min_side: int = 1) -> np.ndarray:
    """Read `path` as a (size, size, 3) uint8 array; DataError names the file and the problem."""
    try:
        with open(path, "rb") as f:
            data = f.read()  # once, for both decoders
        if min_side <= size:
            fast = _decode_jpeg_scaled(data, size)
            if fast is not None:
                return np.asarray(center_square(fast, size), dtype=np.uint8)
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                img.load()
                ImageOps.exif_transpose(img, in_place=True)  # in place: no copy of an upright photo
                if min(img.size) < min_side:
                    raise DataError(f"image '{path}' is {img.size[0]}x{img.size[1]} px, smaller than one "
                                    f"{min_side}x{min_side} patch; remove it or set data.bad_images=skip")
                rgb = to_rgb(img)
                return np.asarray(center_square(rgb, size), dtype=np.uint8)
    except DataError:
        raise
    except FileNotFoundError:
        raise DataError(f"image '{path}' does not exist") from None
    except Exception as e:  # PIL raises many types for broken files
        raise DataError(f"cannot read image '{path}': {type(e).__name__}: {e}; "
                        "remove or replace it, or set data.bad_images=skip") from None
