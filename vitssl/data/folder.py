"""Find the images of a folder: class sub-folders (optionally under train/ val/ test/), or a flat folder."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from vitssl.data.images import IMAGE_EXTENSIONS
from vitssl.errors import DataError

SPLIT_NAMES = ("train", "val", "test")


@dataclass
class FileList:
    paths: list[str]
    labels: list[int]  # -1 for an unlabeled (flat) folder
    classes: list[str]


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith(".")


def _images_in(folder: Path) -> list[str]:
    return sorted(e.path for e in os.scandir(folder) if e.is_file() and _is_image(e.name))


def _subdirs(folder: Path) -> list[Path]:
    return sorted(Path(e.path) for e in os.scandir(folder) if e.is_dir() and not e.name.startswith("."))


def available_splits(root: Path) -> list[str]:
    return [d.name for d in _subdirs(root) if d.name in SPLIT_NAMES]


def scan_split(folder: Path) -> FileList:
    """Class sub-folders -> labelled; otherwise the images directly inside -> unlabeled."""
    classes, paths, labels = [], [], []
    for sub in _subdirs(folder):
        files = [str(p) for p in sorted(Path(sub).rglob("*")) if p.is_file() and _is_image(p.name)]
        if files:
            labels += [len(classes)] * len(files)
            classes.append(sub.name)
            paths += files
    if paths:
        return FileList(paths, labels, classes)
    flat = _images_in(folder)
    return FileList(flat, [-1] * len(flat), [])


def scan_folder(root: str | Path, split: str) -> FileList:
    """The images of `split` under `root`; a folder without split sub-folders is one split."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"data.root '{root}' is not a folder; give an image folder, a CIFAR folder, or 'synthetic'")
    splits = available_splits(root)
    if splits:
        if split not in splits:
            raise DataError(f"data.root '{root}' has splits {splits} but no '{split}'; set data.split to one of them")
        folder = root / split
    else:
        folder = root
    files = scan_split(folder)
    if not files.paths:
        raise DataError(f"no images found in '{folder}' (looked for {', '.join(IMAGE_EXTENSIONS)} files, directly "
                        "or in class sub-folders)")
    return files
