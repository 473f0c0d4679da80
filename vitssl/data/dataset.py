"""Datasets as the training loop sees them: uint8 square images, decoded once when they fit in memory.
(Photos kept whole, `data.aspect=keep`, are squares too: canvases with a 4th channel saying where the
photo is; see `vitssl.data.images`.)

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

from vitssl import distributed as dist
from vitssl.data import cache as disk_cache
from vitssl.data import cifar, download, folder, official, synthetic
from vitssl.data.images import Decode, to_canvas
from vitssl.errors import DataError

CACHE_VERSION = 1


@dataclass
class ImageDataset:
    name: str
    split: str
    labels: torch.Tensor  # (N,) int64; -1 where unlabeled
    classes: list[str]
    store_size: int
    images: Optional[torch.Tensor] = None  # (N, 3, S, S) uint8 when decoded into memory; (N, 4, C, C) canvases
    paths: Optional[list[str]] = None  # the files, when streamed
    decode: Optional[Decode] = None  # how the files are (or were) decoded; None: centre squares of store_size
    skipped: list[str] = field(default_factory=list)  # unreadable files left out
    formed: str = ""  # how the split was formed, in words
    identity: str = ""  # names exactly these images (source, place, files or indices): feature-cache keys use it

    def __post_init__(self):
        n = self.images.shape[0] if self.images is not None else len(self.paths or [])
        if n != self.labels.shape[0]:
            raise ValueError(f"{n} images but {self.labels.shape[0]} labels")
        if self.decode is None:
            self.decode = Decode(self.store_size)

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
    return disk_cache.cache_dir()


def _cached(cache_dir: Path, key: dict, build: Callable[[], tuple[np.ndarray, np.ndarray, dict]]):
    """Return (images, labels, meta) from the disk cache, or build and store them there."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    folder_ = cache_dir / f"{key['name']}-{key['split']}-{key['size']}px-{digest}"
    if (folder_ / "meta.json").is_file():
        try:
            meta = json.loads((folder_ / "meta.json").read_text())
            disk_cache.touch(folder_)
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
        disk_cache.enforce(keep=folder_, root=cache_dir)
    except OSError as e:
        warnings.warn(f"could not keep the decoded dataset in {cache_dir} ({e}); it will be decoded again next run")
    return images, labels, meta


def _decode_chunk(args: tuple[list[str], Decode, bool]) -> tuple[list[np.ndarray], list[int], list[str]]:
    paths, decode, skip = args
    out, ok, bad = [], [], []
    for i, p in enumerate(paths):
        try:
            out.append(decode(p))
            ok.append(i)
        except DataError as e:
            if not skip:
                raise
            bad.append(str(e))
    return out, ok, bad


def _stack(arrays: list[np.ndarray], decode: Decode) -> np.ndarray:
    """Decoded (h, w, 3) arrays -> (N, 3, S, S), or canvases (N, 4, C, C) where some are not square (C:
    the longest side found)."""
    if not arrays:
        return np.zeros((0, 3, decode.size, decode.size), np.uint8)
    if all(a.shape[0] == a.shape[1] == decode.size for a in arrays):
        return np.ascontiguousarray(np.stack(arrays).transpose(0, 3, 1, 2))
    side = max(max(a.shape[:2]) for a in arrays)
    out = np.empty((len(arrays), 4, side, side), np.uint8)
    for i, a in enumerate(arrays):  # once per dataset, at decode time
        out[i] = to_canvas(a, side).transpose(2, 0, 1)
    return out


def decode_files(paths: list[str], decode: Decode, *, skip: bool, workers: int,
                 progress: bool = True) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Decode files with a process pool into (N, 3, S, S) uint8, or (N, 4, C, C) canvases of photos kept whole;
    returns (images, kept indices, errors)."""
    step = 256
    chunks = [(paths[i:i + step], decode, skip) for i in range(0, len(paths), step)]
    bar = tqdm(total=len(paths), desc=f"decoding {len(paths)} images", unit="img", disable=not progress,
               file=sys.stderr, dynamic_ncols=True)
    arrays, kept, errors = [], [], []
    ctx = mp.get_context("fork" if sys.platform.startswith("linux") else "spawn")
    pool = ctx.Pool(workers) if workers > 0 and len(chunks) > 1 else None
    try:
        results = pool.imap(_decode_chunk, chunks) if pool else map(_decode_chunk, chunks)
        for c, (arrs, ok, bad) in enumerate(results):
            arrays += arrs
            kept += [c * step + i for i in ok]
            errors += bad
            bar.update(len(chunks[c][0]))
    finally:
        bar.close()
        if pool:
            pool.terminate()
    return _stack(arrays, decode), np.asarray(kept, dtype=np.int64), errors


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


@dataclass
class SplitScan:
    """What a split holds, found without decoding an image: enough to check a request before the
    expensive part. `identity` names exactly these images (source, resolved place, files or indices)."""

    name: str
    split: str
    labels: np.ndarray  # (N,) int64, -1 where unlabelled; after data.limit
    classes: list[str]
    formed: str  # how the split was formed, in words
    identity: str
    kind: str  # 'synthetic', 'array' (CIFAR pickles, STL-10 binaries) or 'folder' (image files)
    paths: Optional[list[str]] = None  # folder: the files
    root: Optional[Path] = None
    key: dict = field(default_factory=dict)  # decode-cache key (synthetic, folder)
    _images: Optional[np.ndarray] = None  # array: the whole split as read, (N_all, h, w, 3)
    keep: Optional[np.ndarray] = None  # synthetic, array: indices of data.limit's subset in the whole split

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def labelled(self) -> bool:
        return bool(self.classes) and bool((self.labels >= 0).all())

    def class_counts(self) -> np.ndarray:
        return np.bincount(self.labels[self.labels >= 0], minlength=len(self.classes))


def _identity(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:20]


def scan_dataset(cfg, split: str, *, seed: int = 0, key: str = "data.split") -> SplitScan:
    """The `split` of `cfg.root` (a DataConfig) after `cfg.limit`, without decoding; `key` is the config key
    that named the split, for the errors."""
    size = cfg.resolved_store_size
    root = cfg.root
    if root == "synthetic":
        n = cfg.synthetic_train if split == "train" else cfg.synthetic_test
        split_seed = synthetic.split_seed(split)
        labels = synthetic.labels_for(n, split_seed).numpy()
        keep = _keep(labels, cfg.limit, seed)
        ckey = dict(v=CACHE_VERSION, name="synthetic", render=3, split=split, size=size, n=n)  # 3: textures
        return SplitScan("synthetic", split, labels[keep], list(synthetic.CLASSES),
                         f"built-in synthetic images, split seed {split_seed}", kind="synthetic", key=ckey,
                         keep=keep, identity=_identity(dict(ckey, size=None, keep=keep.tolist())))

    root_path = Path(root).expanduser()
    if cfg.download and not _present(root_path, cfg.download):
        download.download(cfg.download, root_path, progress=dist.is_main())
    fmt = cfg.format
    if fmt in ("auto", "cifar"):
        found = cifar.find_pickle_dir(root_path)
        if found is not None:
            if split not in ("train", "test"):
                raise DataError(f"CIFAR has splits 'train' and 'test', not '{split}'; set {key} to one of them")
            images_hwc, labels, classes = cifar.load_cifar(root_path, split)
            return _array_scan(root_path.name, split, labels, classes, f"the CIFAR {split} batches", images_hwc,
                               place=found[1], limit=cfg.limit, seed=seed)
        if fmt == "cifar":
            raise DataError(f"data.format=cifar: '{root_path}' holds no CIFAR python pickles (data_batch_1 and "
                            "test_batch, or train, test and meta); check data.root or set data.format=auto")
    layout = official.LAYOUTS.get(fmt) or (official.detect(root_path) if fmt == "auto" and root_path.is_dir() else None)
    if layout is not None or fmt == "annotations" or (fmt == "auto" and official.annotated(root_path, split)):
        if layout is not None:
            f = official.read(layout, root_path, split)
            name = layout.name
        else:
            f = official.read_annotations(root_path, split, folder.SPLIT_NAMES)
            name = root_path.resolve().name
        if f.images is not None:
            return _array_scan(name, split, f.labels, f.classes, f.formed, f.images, place=root_path,
                               limit=cfg.limit, seed=seed)
        return _files_scan(name, split, f.labels, f.classes, f.formed, f.paths, root_path, cfg.limit, seed)
    files = folder.scan_folder(root_path, split, key=key, holdout=cfg.holdout, holdout_seed=cfg.holdout_seed,
                               strict=fmt == "auto")
    return _files_scan(root_path.resolve().name, split, np.asarray(files.labels, dtype=np.int64), files.classes,
                       files.formed, files.paths, root_path, cfg.limit, seed)


def _present(root: Path, name: str) -> bool:
    """Whether `root` already holds dataset `name` (data.download fetches it otherwise)."""
    if name.startswith("cifar"):
        return cifar.find_pickle_dir(root) is not None
    layout = official.LAYOUTS[name]
    base = layout.base(root) if root.is_dir() else None
    return base is not None and all((base / n).exists() for n in layout.needs)


def _array_scan(name: str, split: str, labels: np.ndarray, classes: list[str], formed: str, images_hwc: np.ndarray,
                *, place: Path, limit: Optional[int], seed: int) -> SplitScan:
    """A split held as one array of images (CIFAR pickles, STL-10 binaries)."""
    keep = _keep(labels, limit, seed)  # the array stays as read (a memmap for STL-10): nothing copied to scan
    return SplitScan(name, split, labels[keep], classes, formed, kind="array", root=place, _images=images_hwc,
                     keep=keep, identity=_identity(dict(kind="array", place=str(Path(place).resolve()), split=split,
                                                        keep=keep.tolist())))


def _files_scan(name: str, split: str, labels: np.ndarray, classes: list[str], formed: str, paths: list[str],
                root_path: Path, limit: Optional[int], seed: int) -> SplitScan:
    """A split held as image files: identified (and cached) by their paths, sizes and times."""
    keep = _keep(labels, limit, seed)
    paths = [paths[i] for i in keep]
    stats = [(os.path.relpath(p, root_path), st.st_size, st.st_mtime_ns) for p in paths for st in [os.stat(p)]]
    where = str(root_path.resolve())
    return SplitScan(name, split, labels[keep], classes, formed, kind="folder", paths=paths, root=root_path,
                     key=dict(v=CACHE_VERSION, decode=2, root=where, files=stats),  # 2: JPEG DCT scaling
                     identity=_identity(dict(kind="folder", root=where, split=split, files=stats)))


_NOTED: set = set()  # folders whose held-out split was announced


def load_dataset(cfg, split: str, *, seed: int = 0, min_side: int = 1, progress: bool = True,
                 key: str = "data.split", scan: Optional[SplitScan] = None) -> ImageDataset:
    """The `split` of `cfg.root` (a DataConfig) as an ImageDataset; `cfg.limit` picks a balanced subset.
    `scan` (from `scan_dataset`) skips scanning again."""
    scan = scan or scan_dataset(cfg, split, seed=seed, key=key)
    size = cfg.resolved_store_size
    decode = Decode(size, min_side, cfg.aspect, cfg.max_aspect, cfg.crop_bottom)
    cache_dir = Path(cfg.cache_dir) if cfg.cache_dir else default_cache_dir()
    meta_kw = dict(formed=scan.formed, identity=scan.identity)
    if "held out" in scan.formed and str(scan.root) not in _NOTED and dist.is_main():  # one line per folder
        _NOTED.add(str(scan.root))
        print(f"note: '{scan.name}' has no split folders: its '{split}' split is {scan.formed}", file=sys.stderr)

    if scan.kind == "synthetic":
        def build_synthetic():
            imgs, labels = synthetic.make_synthetic(scan.key["n"], size, seed=synthetic.split_seed(split),
                                                    progress=progress)
            return imgs.numpy(), labels.numpy(), {}

        images, _, _ = _cached(cache_dir, scan.key, build_synthetic)
        return ImageDataset("synthetic", split, torch.from_numpy(scan.labels), list(synthetic.CLASSES), size,
                            images=torch.from_numpy(images[scan.keep]), **meta_kw)

    if scan.kind == "array":
        return ImageDataset(scan.name, split, torch.from_numpy(scan.labels), scan.classes, size,
                            images=torch.from_numpy(_square(scan._images[scan.keep], size)), **meta_kw)

    paths, labels = scan.paths, scan.labels
    nbytes = len(paths) * (3 if decode.aspect == "square" else 4) * decode.canvas ** 2
    if cfg.cache == "stream" or (cfg.cache == "auto" and nbytes > cfg.cache_max_gb * 2 ** 30):
        return ImageDataset(scan.name, split, torch.from_numpy(labels), scan.classes, size, paths=paths,
                            decode=decode, **meta_kw)

    skip = cfg.bad_images == "skip"
    ckey = dict(scan.key, name=scan.name, split=split, size=size, min_side=min_side, skip=skip)
    if decode.aspect != "square" or decode.crop_bottom:  # (the defaults keep earlier caches' keys)
        ckey.update(aspect=decode.aspect, max_aspect=decode.max_aspect, crop_bottom=decode.crop_bottom)

    def build():
        images, kept, errors = decode_files(paths, decode, skip=skip, workers=cfg.num_workers, progress=progress)
        return images, labels[kept], {"skipped": errors}

    images, labels, meta = _cached(cache_dir, ckey, build)
    _report_skipped(meta.get("skipped", []), len(paths))
    if len(labels) == 0:
        raise DataError(f"none of the {len(paths)} images under '{scan.root}' could be read")
    return ImageDataset(scan.name, split, torch.from_numpy(labels), scan.classes, size, images=torch.from_numpy(images),
                        skipped=meta.get("skipped", []), decode=decode, **meta_kw)
