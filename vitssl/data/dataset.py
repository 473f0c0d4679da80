"""Datasets as the trainer sees them: uint8 square images, decoded once when they fit in memory.

Sources: the built-in synthetic set, CIFAR pickles, and image folders. Small datasets are decoded
once into a (N, 3, S, S) uint8 tensor that is also kept on disk for the next run; large ones are
streamed from their files by DataLoader workers. Either way a batch is uint8 on the training device
and augmentation happens there.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import os
import shutil
import sys
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
from tqdm import tqdm

from vitssl.data import cifar, folder, synthetic
from vitssl.data.images import decode_image
from vitssl.errors import DataError

CACHE_VERSION = 1


@dataclass
class ImageDataset:
    name: str
    split: str
    labels: torch.Tensor  # (N,) int64; -1 where unlabeled
    classes: list[str]
    store_size: int
    images: Optional[torch.Tensor] = None  # (N, 3, S, S) uint8 when decoded into memory
    paths: Optional[list[str]] = None  # the files, when streamed
    skipped: list[str] = field(default_factory=list)  # unreadable files left out

    def __post_init__(self):
        n = self.images.shape[0] if self.images is not None else len(self.paths or [])
        if n != self.labels.shape[0]:
            raise ValueError(f"{n} images but {self.labels.shape[0]} labels")

    def __len__(self) -> int:
        return self.labels.shape[0]

    @property
    def in_memory(self) -> bool:
        return self.images is not None

    @property
    def labelled(self) -> bool:
        return bool(self.classes) and bool((self.labels >= 0).all())


def balanced_subset(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Sorted indices of a seeded subset of `n` items spread evenly over the classes (-1: one class)."""
    if n >= len(labels):
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    pools = {c: rng.permutation(np.flatnonzero(labels == c)) for c in classes}
    quota = {c: n // len(classes) for c in classes}
    for c in rng.permutation(classes)[: n % len(classes)]:
        quota[c] += 1
    picked = [pools[c][: quota[c]] for c in classes]
    short = n - sum(len(p) for p in picked)
    if short > 0:  # some classes are smaller than their quota: fill from the rest
        rest = rng.permutation(np.concatenate([pools[c][quota[c]:] for c in classes]))
        picked.append(rest[:short])
    return np.sort(np.concatenate(picked))


def _keep(labels: np.ndarray, limit: Optional[int], seed: int) -> np.ndarray:
    return balanced_subset(labels, limit, seed) if limit else np.arange(len(labels))


def default_cache_dir() -> Path:
    return Path(os.environ.get("VITSSL_CACHE", Path.home() / ".cache" / "vitssl"))


def _cached(cache_dir: Path, key: dict, build: Callable[[], tuple[np.ndarray, np.ndarray, dict]]):
    """Return (images, labels, meta) from the disk cache, or build and store them there."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    folder_ = cache_dir / f"{key['name']}-{key['split']}-{key['size']}px-{digest}"
    if (folder_ / "meta.json").is_file():
        try:
            meta = json.loads((folder_ / "meta.json").read_text())
            return np.load(folder_ / "images.npy"), np.load(folder_ / "labels.npy"), meta
        except (OSError, ValueError) as e:
            warnings.warn(f"ignoring a broken dataset cache at {folder_} ({e}); decoding again")
    images, labels, meta = build()
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=cache_dir, prefix=".tmp-"))
        np.save(tmp / "images.npy", images)
        np.save(tmp / "labels.npy", labels)
        (tmp / "meta.json").write_text(json.dumps(meta))
        if folder_.exists():
            shutil.rmtree(folder_, ignore_errors=True)
        os.replace(tmp, folder_)
    except OSError as e:
        warnings.warn(f"could not keep the decoded dataset in {cache_dir} ({e}); it will be decoded again next run")
    return images, labels, meta


def _decode_chunk(args: tuple[list[str], int, int, bool]) -> tuple[np.ndarray, list[int], list[str]]:
    paths, size, min_side, skip = args
    out, ok, bad = [], [], []
    for i, p in enumerate(paths):
        try:
            out.append(decode_image(p, size, min_side))
            ok.append(i)
        except DataError as e:
            if not skip:
                raise
            bad.append(str(e))
    arr = np.stack(out) if out else np.zeros((0, size, size, 3), np.uint8)
    return arr, ok, bad


def decode_files(paths: list[str], size: int, *, min_side: int, skip: bool, workers: int,
                 progress: bool = True) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Decode files into (N, 3, size, size) uint8 with a process pool; returns (images, kept indices, errors)."""
    step = 256
    chunks = [(paths[i:i + step], size, min_side, skip) for i in range(0, len(paths), step)]
    bar = tqdm(total=len(paths), desc=f"decoding {len(paths)} images", unit="img", disable=not progress,
               file=sys.stderr, dynamic_ncols=True)
    images, kept, errors = [], [], []
    ctx = mp.get_context("fork" if sys.platform.startswith("linux") else "spawn")
    pool = ctx.Pool(workers) if workers > 0 and len(chunks) > 1 else None
    try:
        results = pool.imap(_decode_chunk, chunks) if pool else map(_decode_chunk, chunks)
        for c, (arr, ok, bad) in enumerate(results):
            images.append(arr)
            kept += [c * step + i for i in ok]
            errors += bad
            bar.update(len(chunks[c][0]))
    finally:
        bar.close()
        if pool:
            pool.terminate()
    arr = np.concatenate(images) if images else np.zeros((0, size, size, 3), np.uint8)
    return np.ascontiguousarray(arr.transpose(0, 3, 1, 2)), np.asarray(kept, dtype=np.int64), errors


def _report_skipped(errors: list[str], total: int) -> None:
    if errors:
        shown = "\n  ".join(errors[:5])
        warnings.warn(f"skipped {len(errors)} of {total} images that could not be used (data.bad_images=skip):\n"
                      f"  {shown}" + ("\n  ..." if len(errors) > 5 else ""), stacklevel=2)


def _square(images_hwc: np.ndarray, size: int) -> np.ndarray:
    """(N, h, w, 3) uint8 -> (N, 3, size, size), resized with PIL where the size differs."""
    if images_hwc.shape[1:3] != (size, size):
        from PIL import Image

        from vitssl.data.images import center_square

        images_hwc = np.stack([np.asarray(center_square(Image.fromarray(a), size)) for a in images_hwc])
    return np.ascontiguousarray(images_hwc.transpose(0, 3, 1, 2))


def load_dataset(cfg, split: str, *, seed: int = 0, min_side: int = 1, progress: bool = True) -> ImageDataset:
    """The `split` of `cfg.root` (a DataConfig) as an ImageDataset; `cfg.limit` picks a balanced subset."""
    size = cfg.resolved_store_size
    cache_dir = Path(cfg.cache_dir) if cfg.cache_dir else default_cache_dir()
    root = cfg.root

    if root == "synthetic":
        n = cfg.synthetic_train if split == "train" else cfg.synthetic_test
        split_seed = {"train": 0, "val": 1, "test": 2}.get(split, 3)
        key = dict(v=CACHE_VERSION, name="synthetic", render=2, split=split, size=size, n=n)  # 2: chunks by pixels

        def build():
            imgs, labels = synthetic.make_synthetic(n, size, seed=split_seed, progress=progress)
            return imgs.numpy(), labels.numpy(), {}

        images, labels, _ = _cached(cache_dir, key, build)
        keep = _keep(labels, cfg.limit, seed)
        return ImageDataset("synthetic", split, torch.from_numpy(labels[keep]), list(synthetic.CLASSES), size,
                            images=torch.from_numpy(images[keep]))

    root_path = Path(root).expanduser()
    if not root_path.exists() and cfg.download:
        cifar.download_cifar(root_path, cfg.download)
    if cifar.find_pickle_dir(root_path) is not None:
        images_hwc, labels, classes = cifar.load_cifar(root_path, split)
        keep = _keep(labels, cfg.limit, seed)
        return ImageDataset(root_path.name, split, torch.from_numpy(labels[keep]), classes, size,
                            images=torch.from_numpy(_square(images_hwc[keep], size)))

    files = folder.scan_folder(root_path, split)
    labels = np.asarray(files.labels, dtype=np.int64)
    keep = _keep(labels, cfg.limit, seed)
    paths = [files.paths[i] for i in keep]
    labels = labels[keep]
    name = root_path.resolve().name
    nbytes = len(paths) * 3 * size * size
    if cfg.cache == "stream" or (cfg.cache == "auto" and nbytes > cfg.cache_max_gb * 2 ** 30):
        return ImageDataset(name, split, torch.from_numpy(labels), files.classes, size, paths=paths)

    skip = cfg.bad_images == "skip"
    stats = [(os.path.relpath(p, root_path), st.st_size, st.st_mtime_ns) for p in paths for st in [os.stat(p)]]
    key = dict(v=CACHE_VERSION, name=name, split=split, size=size, root=str(root_path.resolve()), files=stats,
               min_side=min_side, skip=skip)

    def build():
        images, kept, errors = decode_files(paths, size, min_side=min_side, skip=skip, workers=cfg.num_workers,
                                            progress=progress)
        return images, labels[kept], {"skipped": errors}

    images, labels, meta = _cached(cache_dir, key, build)
    _report_skipped(meta.get("skipped", []), len(paths))
    if len(labels) == 0:
        raise DataError(f"none of the {len(paths)} images under '{root_path}' could be read")
    return ImageDataset(name, split, torch.from_numpy(labels), files.classes, size, images=torch.from_numpy(images),
                        skipped=meta.get("skipped", []))
