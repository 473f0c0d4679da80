"""CIFAR-10/100 in their standard python-pickle layout (`data.download=cifar10` fetches it: data/download.py)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from vitssl.errors import DataError


def find_pickle_dir(root: str | Path) -> tuple[str, Path] | None:
    """('cifar10' | 'cifar100', folder with the pickle files) if `root` holds that layout, else None."""
    root = Path(root)
    for folder in (root, root / "cifar-10-batches-py", root / "cifar-100-python"):
        if (folder / "data_batch_1").is_file() and (folder / "test_batch").is_file():
            return "cifar10", folder
        if (folder / "train").is_file() and (folder / "test").is_file() and (folder / "meta").is_file():
            return "cifar100", folder
    return None


# What the official CIFAR pickles hold besides dicts, lists, strings, bytes and numbers: NumPy arrays
# (rebuilt through these, under NumPy 1 and 2 module names) and latin-1 strings of Python 2 pickles.
_ALLOWED = {(m, n) for m in ("numpy.core.multiarray", "numpy._core.multiarray") for n in ("_reconstruct", "scalar")} | {
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"), ("numpy._core.numeric", "_frombuffer"),
    ("numpy.core.numeric", "_frombuffer")}


class _RefusedPickle(Exception):
    pass


class _CifarUnpickler(pickle.Unpickler):
    """Unpickles only what CIFAR files hold: a crafted file cannot make it import (or run) anything else."""

    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise _RefusedPickle(f"{module}.{name}")


def _unpickle(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            return _CifarUnpickler(f, encoding="latin1").load()
    except _RefusedPickle as e:
        raise DataError(f"'{path}' is not a CIFAR file: it asks to load '{e}', which CIFAR files never hold "
                        "(only dicts, lists, strings, numbers and NumPy arrays); refusing to read it. Download "
                        "CIFAR again (data.download=cifar10) or point data.root at an image folder") from None
    except Exception as e:
        raise DataError(f"cannot read CIFAR file '{path}': {e}; delete the folder and download it again") from None


def load_cifar(root: str | Path, split: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(images (N, 32, 32, 3) uint8, labels (N,), class names) of split 'train' or 'test'."""
    found = find_pickle_dir(root)
    if found is None:
        raise DataError(f"'{root}' does not hold CIFAR pickle files")
    kind, folder = found
    if split not in ("train", "test"):
        raise DataError(f"CIFAR has splits 'train' and 'test', not '{split}'; set data.split accordingly")
    if kind == "cifar10":
        files = [folder / f"data_batch_{i}" for i in range(1, 6)] if split == "train" else [folder / "test_batch"]
        meta, label_key, names_key = folder / "batches.meta", "labels", "label_names"
    else:
        files, meta, label_key, names_key = [folder / split], folder / "meta", "fine_labels", "fine_label_names"
    data, labels = [], []
    for f in files:
        d = _unpickle(f)
        data.append(np.asarray(d["data"], dtype=np.uint8))
        labels += list(d[label_key])
    images = np.concatenate(data).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    classes = list(_unpickle(meta)[names_key]) if meta.is_file() else [str(i) for i in range(max(labels) + 1)]
    return np.ascontiguousarray(images), np.asarray(labels, dtype=np.int64), classes
