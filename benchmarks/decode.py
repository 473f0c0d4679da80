"""Decoding photos for training, per core: vitssl's decoder (JPEG DCT scaling by 1/2, 1/4 or 1/8
through libjpeg-turbo where the target size allows it, then a centre square) against plain Pillow
(`Image.open().convert("RGB").resize()` to the same size, then the same centre crop). (issue 14)

Images/s on one core (one process), rounds interleaved; fidelity as the mean absolute difference
(grey levels) from the plain decode, beside what JPEG itself moves: the plain result saved as a
quality-90 JPEG and read back. Photos are fabricated (smooth colour fields with shapes and mild
noise, 500x375 and 375x500, quality 90) unless --photos names a folder of JPEGs.

python benchmarks/decode.py [--photos DIR] [--sizes 224 112 64] [--rounds 5]
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write  # noqa: E402

from vitssl.data.images import decode_image  # noqa: E402


def fabricate(folder: Path, n: int, side: tuple[int, int]) -> list[Path]:
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        w, h = side if i % 3 else side[::-1]
        img = Image.fromarray(rng.integers(0, 256, (h // 16, w // 16, 3), dtype=np.uint8)).resize((w, h), Image.BICUBIC)
        draw = ImageDraw.Draw(img)
        for _ in range(12):
            x, y, r = int(rng.integers(0, w)), int(rng.integers(0, h)), int(rng.integers(w // 50, w // 6))
            draw.ellipse((x - r, y - r, x + r, y + r), fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
        arr = np.asarray(img.filter(ImageFilter.GaussianBlur(1.2))).astype(np.int16)
        arr += rng.normal(0, 3, arr.shape).round().astype(np.int16)
        path = folder / f"photo_{w}x{h}_{i:03d}.jpg"
        Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(path, quality=90)
        paths.append(path)
    return paths


def plain(path: Path, size: int) -> np.ndarray:
    img = Image.open(path).convert("RGB")
    w, h = img.size
    s = size / min(w, h)
    nw, nh = max(size, round(w * s)), max(size, round(h * s))
    img = img.resize((nw, nh))
    left, top = (nw - size) // 2, (nh - size) // 2
    return np.asarray(img.crop((left, top, left + size, top + size)))


def rate(fn, paths: list[Path], size: int) -> float:
    t = time.perf_counter()
    for p in paths:
        fn(p, size)
    return len(paths) / (time.perf_counter() - t)


def jpeg_rounding(img: np.ndarray) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "JPEG", quality=90)
    return np.asarray(Image.open(buf).convert("RGB"))


def row(label: str, paths: list[Path], size: int, rounds: int) -> dict:
    ours = lambda p, s: decode_image(p, s)  # noqa: E731
    rates: dict[str, list[float]] = {"plain": [], "vitssl": []}
    rate(ours, paths[:5], size), rate(plain, paths[:5], size)  # warm-up
    for _ in range(rounds):
        rates["plain"].append(rate(plain, paths, size))
        rates["vitssl"].append(rate(ours, paths, size))
    diff, rounding = [], []
    for p in paths:
        ref = plain(p, size)
        diff.append(np.abs(decode_image(p, size).astype(np.float32) - ref).mean())
        rounding.append(np.abs(jpeg_rounding(ref).astype(np.float32) - ref).mean())
    a, b = statistics.median(rates["plain"]), statistics.median(rates["vitssl"])
    return {"photos": label, "size": size, "plain_img_s": round(a, 1), "vitssl_img_s": round(b, 1),
            "ratio": round(b / a, 2), "mean_abs_diff": round(float(np.mean(diff)), 2),
            "jpeg_q90_rounding": round(float(np.mean(rounding)), 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", help="a folder of JPEG photos (default: fabricated)")
    ap.add_argument("--n", type=int, default=60, help="fabricated photos per set")
    ap.add_argument("--sizes", type=int, nargs="+", default=[224, 112, 64])
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        if a.photos:
            sets = {a.photos: sorted(p for p in Path(a.photos).rglob("*") if p.suffix.lower() in (".jpg", ".jpeg"))}
        else:
            sets = {}
            for side in ((500, 375), (1000, 750)):
                folder = Path(tmp) / f"{side[0]}x{side[1]}"
                folder.mkdir()
                sets[f"{side[0]}x{side[1]}"] = fabricate(folder, a.n, side)
        for label, paths in sets.items():
            for size in a.sizes:
                rows.append(row(label, paths, size, a.rounds))
                print(rows[-1], flush=True)
    write("decode_cpu", rows, ["photos", "size", "plain_img_s", "vitssl_img_s", "ratio", "mean_abs_diff",
                               "jpeg_q90_rounding"], "python benchmarks/decode.py " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
