"""Reference pipeline side by side (issue 5): the public SiT code's data path vs vitssl's, same data.

Reference (benchmarks/reference/sit_data.py, a baseline never used by vitssl): JPEG decode + PIL
augmentation of two views per image in DataLoader workers, NumPy GMML per image in the collate.
Ours: images decoded once into a uint8 cache, then two views augmented and corrupted batched on the
device. Both produce two clean and two corrupted normalised views per image, with masks.

python benchmarks/reference_pipeline.py [--size 224] [--images 512] [--batch 64] [--workers 2]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write, write_jpegs  # noqa: E402
from reference.sit_data import ReferenceImages, make_collate  # noqa: E402

from vitssl.config import load_config  # noqa: E402
from vitssl.data.augment import Augment  # noqa: E402
from vitssl.data.dataset import load_dataset  # noqa: E402
from vitssl.methods.sit.corruption import gmml_corrupt  # noqa: E402


def reference_rate(paths: list[str], size: int, batch: int, workers: int, max_frac: float) -> float:
    loader = DataLoader(ReferenceImages(paths, size), batch_size=batch, shuffle=True, num_workers=workers,
                        collate_fn=make_collate(max_frac), drop_last=True, persistent_workers=workers > 0)
    it = iter(loader)
    next(it)  # workers started, first batch out
    t, n = time.perf_counter(), 0
    for out in it:
        n += out[0].shape[0]
    return n / (time.perf_counter() - t)


def ours_rate(root: Path, size: int, batch: int, max_frac: float, device: torch.device) -> tuple[float, float]:
    cfg = load_config("sit_224", [f"data.root={root}", f"data.image_size={size}", "data.num_workers=2"])
    t = time.perf_counter()
    ds = load_dataset(cfg.data, "train", progress=False)
    decode = len(ds) / (time.perf_counter() - t)
    aug = Augment(cfg.augment, image_size=size, mean=cfg.data.mean, std=cfg.data.std)
    images = ds.images.to(device)

    def one(idx):
        b = images[idx]
        views = [aug(b, v) for v in (0, 1)]
        outs = [gmml_corrupt(v, max_frac=max_frac) for v in views]
        if device.type == "cuda":
            torch.cuda.synchronize()
        return outs

    perm = torch.randperm(len(ds))
    one(perm[:batch])  # warm-up
    t, n = time.perf_counter(), 0
    for i in range(0, len(ds) - batch + 1, batch):
        one(perm[i:i + batch])
        n += batch
    return n / (time.perf_counter() - t), decode


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--images", type=int, default=512)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--workers", type=int, default=2, help="reference DataLoader workers (2 = the cores here)")
    ap.add_argument("--max-frac", type=float, default=0.5)
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args()
    torch.manual_seed(0)
    np.random.seed(0)
    store = round(a.size * 256 / 224) if a.size > 64 else a.size
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "cache"
        import os

        os.environ["VITSSL_CACHE"] = str(cache)
        paths = write_jpegs(Path(tmp) / "data", a.images, store)
        ref = reference_rate(paths, a.size, a.batch, a.workers, a.max_frac)
        ours, decode = ours_rate(Path(tmp) / "data", a.size, a.batch, a.max_frac, torch.device(a.device))
    rows = [{"pipeline": "reference (PIL workers + NumPy GMML in collate)", "size": a.size, "batch": a.batch,
             "images_per_s": round(ref, 1), "ratio": 1.0},
            {"pipeline": f"vitssl (cached uint8, batched augment + GMML on {a.device})", "size": a.size,
             "batch": a.batch, "images_per_s": round(ours, 1), "ratio": round(ours / ref, 2)}]
    for r in rows:
        print(r)
    print(f"vitssl's one-time decode into the cache: {decode:.0f} images/s (once per dataset, not per epoch)")
    write(f"reference_pipeline_{a.device}_{a.size}", rows, ["pipeline", "size", "batch", "images_per_s", "ratio"],
          "python benchmarks/reference_pipeline.py " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
