"""Find the images of a folder: class sub-folders (optionally under split folders such as train/ val/
test/), or a flat folder.

A labelled folder without split folders has no test split of its own: a seeded, class-balanced part
of it (`data.holdout`) is held out as 'test' and 'train' is the rest, so that evaluation never tests
on images the probes (or the pre-training) saw.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vitssl.data.images import IMAGE_EXTENSIONS
from vitssl.errors import DataError

# names that mark a folder as holding splits; once one is there, every sub-folder is a split
SPLIT_NAMES = ("train", "training", "trainval", "val", "valid", "validation", "dev", "test", "testing", "eval",
               "evaluation", "holdout")
HELD_OUT = "test"  # the split name of the held-out part of a folder without split folders


@dataclass
class FileList:
    paths: list[str]
    labels: list[int]  # -1 for an unlabeled (flat) folder
    classes: list[str]
    formed: str = ""  # how this split was formed, in words (recorded in results)


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith(".")


def _images_in(folder: Path) -> list[str]:
    return sorted(e.path for e in os.scandir(folder) if e.is_file() and _is_image(e.name))


def _subdirs(folder: Path) -> list[Path]:
    return sorted(Path(e.path) for e in os.scandir(folder) if e.is_dir() and not e.name.startswith("."))


def available_splits(root: Path) -> list[str]:
    """The split folders of `root` (any name, once one of them has a usual split name), or []."""
    subs = _subdirs(root)
    if not any(d.name.lower() in SPLIT_NAMES for d in subs):
        return []
    return [d.name for d in subs]


METADATA = (".mat", ".txt", ".csv", ".tsv", ".json", ".xml", ".bin")  # label and annotation files


def scan_split(folder: Path, strict: bool = True) -> FileList:
    """Class sub-folders -> labelled; otherwise the images directly inside -> unlabeled. `strict`: a
    sub-folder holding label or annotation files and no image says these are not class folders."""
    classes, paths, labels, other = [], [], [], []
    for sub in _subdirs(folder):
        files = [str(p) for p in sorted(Path(sub).rglob("*")) if p.is_file() and _is_image(p.name)]
        if files:
            labels += [len(classes)] * len(files)
            classes.append(sub.name)
            paths += files
        else:
            meta = sorted(p.name for p in Path(sub).rglob("*") if p.is_file() and p.suffix.lower() in METADATA)
            if meta:
                other.append((sub.name, meta))
    if paths and other and strict:
        shown = 6  # of each kind: a few examples say enough (a folder may hold hundreds)
        found = "; ".join([f"{c}/ ({labels.count(i)} images)" for i, c in enumerate(classes[:shown])] +
                          [f"{n}/ (no images; {', '.join(m[:3])}{', ...' if len(m) > 3 else ''})"
                           for n, m in other[:shown]])
        more = max(0, len(classes) - shown) + max(0, len(other) - shown)
        found += f"; and {more} more folders" if more else ""
        raise DataError(f"'{folder}' does not look like class folders: {found}. A folder of label files beside "
                        "image folders is a dataset layout vitssl does not recognise: point data.root at the folder "
                        "that holds one sub-folder per class, name the layout with data.format=flowers102|pets|cub200|"
                        "aircraft|stl10|cars|annotations, or read the image folders as classes with data.format=folder")
    if paths:
        return FileList(paths, labels, classes)
    flat = _images_in(folder)
    return FileList(flat, [-1] * len(flat), [])


def held_out(labels: np.ndarray, frac: float, seed: int) -> np.ndarray:
    """Boolean (N,): a seeded part of about `frac` of every class (at least one image of each class that
    has two or more, never all of a class)."""
    rng = np.random.default_rng(seed)
    out = np.zeros(len(labels), dtype=bool)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        k = min(max(int(round(frac * len(idx))), 1), len(idx) - 1) if len(idx) >= 2 else 0
        out[rng.permutation(idx)[:k]] = True
    return out


def scan_folder(root: str | Path, split: str, *, key: str = "data.split", holdout: float = 0.0,
                holdout_seed: int = 0, strict: bool = True) -> FileList:
    """The images of `split` under `root`. `key` is the config key that named the split (for errors)."""
    root = Path(root)
    if not root.is_dir():
        where = "" if root.is_absolute() else f" (relative to the current folder, {Path.cwd()})"
        raise DataError(f"data.root '{root}' is not a folder{where}; give an image folder, a CIFAR folder, or "
                        "'synthetic'")
    splits = available_splits(root)
    if splits:
        if split not in splits:
            raise DataError(f"data.root '{root}' has split folders {splits} but no '{split}'; set {key} to one "
                            "of them")
        files = scan_split(root / split, strict)
        _require_images(files, root / split)
        files.formed = f"the folder '{split}/'"
        return files
    files = scan_split(root, strict)
    _require_images(files, root)
    if not files.classes:  # unlabelled: nothing to evaluate on, every image is the one split
        files.formed = "the whole folder (no split folders, no labels)"
        return files
    n = len(files.paths)
    if not holdout:
        if split == HELD_OUT:
            raise DataError(f"data.root '{root}' has no split folders, so no '{split}' split; hold out part of it "
                            f"with data.holdout=0.2, or give a folder with train/ and test/ sub-folders")
        files.formed = f"all {n} images (no split folders; data.holdout=0)"
        return files
    test = held_out(np.asarray(files.labels), holdout, holdout_seed)
    if split == HELD_OUT:
        keep = np.flatnonzero(test)
        formed = (f"held out: {len(keep)} of {n} images ({holdout:.0%} of each class, seed {holdout_seed}; "
                  "data.holdout, data.holdout_seed), no split folders")
    elif split in ("train", "trainval") or key == "data.split":
        keep = np.flatnonzero(~test)
        formed = f"the {len(keep)} of {n} images not held out as '{HELD_OUT}' (data.holdout={holdout})"
    else:
        raise DataError(f"data.root '{root}' has no split folders: its images are split into 'train' and a "
                        f"held-out '{HELD_OUT}' ({holdout:.0%}, data.holdout); set {key}={HELD_OUT}")
    return FileList([files.paths[i] for i in keep], [files.labels[i] for i in keep], files.classes, formed)


def _require_images(files: FileList, folder: Path) -> None:
    if not files.paths:
        raise DataError(f"no images found in '{folder}' (looked for {', '.join(IMAGE_EXTENSIONS)} files, directly "
                        "or in class sub-folders)")
