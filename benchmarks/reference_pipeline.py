"""Reference pipeline side by side (issue 5): the public SiT code's data path vs vitssl's, same data.

Reference (benchmarks/reference/sit_data.py, a baseline never used by vitssl): JPEG decode + PIL
augmentation of two views per image in DataLoader workers, NumPy GMML per image in the collate.
Ours: images decoded once into a uint8 cache, then two views augmented and corrupted batched on the
device. Both produce two clean and two corrupted normalised views per image, with masks. On CPU,
vitssl runs with glibc's default malloc and as its trainer does (freed memory kept for reuse,
`vitssl.hostmem`), and the reference runs with that setting too, so the ratio of the code alone can
be read off. Every row runs in a fresh process (no row inherits another's heap), `--rounds` times,
interleaved; the table has the medians.

python benchmarks/reference_pipeline.py [--size 224] [--images 512] [--batch 64] [--workers 2] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import device, run_rows, write, write_jpegs  # noqa: E402
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


def run_row(a, kind: str, tmp: Path) -> float:
    """Images/s of one row, in this process: the reference, or ours."""
    dev = torch.device(a.device)
    keep_freed_memory(dev)  # as vitssl's trainer on CPU, unless VITSSL_HOST_ALLOCATOR=default
    torch.manual_seed(0)
    np.random.seed(0)
    if kind == "reference":
        paths = sorted(str(p) for p in (tmp / "data").rglob("*.jpg"))
        return reference_rate(paths, a.size, a.batch, a.workers, a.max_frac)
    cfg = _config(a, tmp)  # the images come from the cache that main() filled (VITSSL_CACHE)
    return ours_rate(load_dataset(cfg.data, "train", progress=False), cfg, a.batch, a.max_frac, dev)


def _config(a, tmp: Path):
    return load_config("sit_224", [f"data.root={tmp}/data", f"data.image_size={a.size}", "data.num_workers=2"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--images", type=int, default=512)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--workers", type=int, default=2, help="reference DataLoader workers (2 = the cores here)")
    ap.add_argument("--max-frac", type=float, default=0.5)
    ap.add_argument("--device", default="cpu", type=device, choices=["cpu", "cuda"])
    ap.add_argument("--rounds", type=int, default=3, help="run every row this many times, interleaved; report medians")
    ap.add_argument("--row", help=argparse.SUPPRESS)  # internal: run one row in this process
    ap.add_argument("--data", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.row:
        print(json.dumps({"rate": run_row(a, a.row, Path(a.data))}))
        return
    ours = f"vitssl (cached uint8, batched augment + GMML on {a.device})"
    if a.device == "cpu":
        plan = [("reference", "default", "reference (PIL workers + NumPy GMML in collate)"),
                ("ours", "default", ours + ", default malloc"),
                ("ours", "", ours + ", freed memory kept (as the trainer)"),
                ("reference", "", "reference, freed memory kept (vitssl.hostmem)")]
    else:
        plan = [("reference", "", "reference (PIL workers + NumPy GMML in collate)"), ("ours", "", ours)]
    store = round(a.size * 256 / 224) if a.size > 64 else a.size
    with tempfile.TemporaryDirectory() as tmp:
        write_jpegs(Path(tmp) / "data", a.images, store)
        os.environ["VITSSL_CACHE"] = str(Path(tmp) / "cache")
        t = time.perf_counter()
        n = len(load_dataset(_config(a, Path(tmp)).data, "train", progress=False))  # fills the cache once
        decode = n / (time.perf_counter() - t)
        results = run_rows(__file__, plan, tmp, a.rounds)
    rates = {name: [r["rate"] for r in runs] for name, runs in results.items()}
    ref = statistics.median(rates[plan[0][2]])
    rows = [{"pipeline": name, "size": a.size, "batch": a.batch,
             "images_per_s": round(statistics.median(rates[name]), 1),
             "ratio": round(statistics.median(rates[name]) / ref, 2)} for _, _, name in plan]
    for r in rows:
        print(r)
    print(f"vitssl's one-time decode into the cache: {decode:.0f} images/s (once per dataset, not per epoch)")
    write(f"reference_pipeline_{a.device}_{a.size}", rows, ["pipeline", "size", "batch", "images_per_s", "ratio"],
          "python benchmarks/reference_pipeline.py " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
