"""Reference pipeline side by side (issue 5): the public SiT code's data path vs vitssl's, same data.

Reference (benchmarks/reference/sit_data.py, a baseline never used by vitssl): JPEG decode + PIL
augmentation of two views per image in DataLoader workers, NumPy GMML per image in the collate.
Ours: images decoded once into a uint8 cache, then two views augmented and corrupted batched on the
device. Both produce two clean and two corrupted normalised views per image, with masks. On CPU,
vitssl runs with glibc's default malloc, then as its trainer does (freed memory kept for reuse,
`vitssl.hostmem`), and the reference is timed again in that tuned process, so the ratio of the code
alone can be read off too.

python benchmarks/reference_pipeline.py [--size 224] [--images 512] [--batch 64] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
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
from vitssl.hostmem import keep_freed_memory  # noqa: E402
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


def ours_rate(ds, cfg, batch: int, max_frac: float, device: torch.device) -> float:
    """Images/s of SiT's data path (`SiT.forward` up to the model): two views, each corrupted."""
    aug = Augment(cfg.augment, image_size=cfg.data.image_size, mean=cfg.data.mean, std=cfg.data.std)
    images = ds.images.to(device)

    def one(idx):
        unit = aug.unit(images[idx])  # converted once, read by both views
        views = [aug(unit, v) for v in (0, 1)]
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
    return n / (time.perf_counter() - t)


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
        os.environ["VITSSL_CACHE"] = str(cache)
        paths = write_jpegs(Path(tmp) / "data", a.images, store)
        cfg = load_config("sit_224", [f"data.root={tmp}/data", f"data.image_size={a.size}", "data.num_workers=2"])
        t = time.perf_counter()
        ds = load_dataset(cfg.data, "train", progress=False)
        decode = len(ds) / (time.perf_counter() - t)
        dev = torch.device(a.device)
        ref = reference_rate(paths, a.size, a.batch, a.workers, a.max_frac)
        rates = [("reference (PIL workers + NumPy GMML in collate)", ref)]
        ours = f"vitssl (cached uint8, batched augment + GMML on {a.device})"
        if dev.type == "cpu":
            rates.append((ours + ", default malloc", ours_rate(ds, cfg, a.batch, a.max_frac, dev)))
            keep_freed_memory(dev)  # as vitssl's trainer does on CPU
            rates.append((ours + ", freed memory kept (as the trainer)",
                          ours_rate(ds, cfg, a.batch, a.max_frac, dev)))
            rates.append(("reference, freed memory kept (vitssl.hostmem)",
                          reference_rate(paths, a.size, a.batch, a.workers, a.max_frac)))
        else:
            rates.append((ours, ours_rate(ds, cfg, a.batch, a.max_frac, dev)))
    rows = [{"pipeline": name, "size": a.size, "batch": a.batch, "images_per_s": round(rate, 1),
             "ratio": round(rate / ref, 2)} for name, rate in rates]
    for r in rows:
        print(r)
    print(f"vitssl's one-time decode into the cache: {decode:.0f} images/s (once per dataset, not per epoch)")
    write(f"reference_pipeline_{a.device}_{a.size}", rows, ["pipeline", "size", "batch", "images_per_s", "ratio"],
          "python benchmarks/reference_pipeline.py " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
