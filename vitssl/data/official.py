"""The datasets of the papers' tables as their authors distribute them (label files, annotation lists,
binary arrays), read without decoding an image: which files, which labels, which official split.

Each layout is recognised from `data.root` (or named with `data.format`); a recognised layout missing
a piece is one line naming the file; a split whose count differs from the official one is a note
naming the list it came from. `.mat` label files are read with mat4py (pure Python, tiny).
"""

from __future__ import annotations

import csv
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from vitssl.errors import DataError


@dataclass
class Found:
    """One split: the files (or, for binary arrays, the images) and their labels."""

    labels: np.ndarray  # (N,) int64, -1 where unlabelled
    classes: list[str]
    formed: str  # in words: which official list or file
    paths: Optional[list[str]] = None
    images: Optional[np.ndarray] = None  # (N, H, W, 3) uint8 (STL-10)


@dataclass(frozen=True)
class Layout:
    name: str  # the data.format value
    title: str
    top: tuple[str, ...]  # folder names the archive unpacks to (data.root may be above them)
    markers: tuple[str, ...]  # any of these identifies the layout
    needs: tuple[str, ...]  # what a complete layout has
    counts: dict  # split -> official image count
    read: Callable[[Path, str], Found]

    def base(self, root: Path) -> Optional[Path]:
        """The folder holding the layout's files: `root` or one of its `top` sub-folders."""
        for d in (root, *(root / t for t in self.top)):
            if any((d / m).exists() for m in self.markers):
                return d
        return None


def _loadmat(path: Path) -> dict:
    from mat4py import loadmat

    try:
        return loadmat(str(path))
    except Exception as e:  # mat4py raises plain exceptions (ParseError, ValueError) on damaged files
        raise DataError(f"cannot read '{path}' as a MATLAB .mat file: {e}") from None


def _ints(value) -> np.ndarray:
    return np.asarray(value, dtype=np.int64).reshape(-1)


def _lines(path: Path) -> list[list[str]]:
    return [line.split() for line in path.read_text().splitlines() if line.strip()]


def _split_error(layout: str, split: str, splits) -> DataError:
    return DataError(f"{layout} has splits {', '.join(splits)}; no '{split}': set data.split / test_split to one "
                     "of them")


def _exists(paths: list[str], where: str) -> None:
    missing = [p for p in paths if not Path(p).is_file()]
    if missing:
        raise DataError(f"{len(missing)} of {len(paths)} images listed in {where} are missing (e.g. '{missing[0]}')")


# --- Flowers-102 -----------------------------------------------------------------------------------
def _flowers(base: Path, split: str) -> Found:
    labels = _ints(_loadmat(base / "imagelabels.mat")["labels"]) - 1  # 1..102 -> 0..101
    ids = _loadmat(base / "setid.mat")
    keys = {"train": ["trnid"], "val": ["valid"], "test": ["tstid"], "trainval": ["trnid", "valid"]}
    if split not in keys:
        raise _split_error("Flowers-102", split, keys)
    idx = np.concatenate([_ints(ids[k]) for k in keys[split]])  # 1-based image numbers
    paths = [str(base / "jpg" / f"image_{i:05d}.jpg") for i in idx]
    _exists(paths, f"setid.mat ({'+'.join(keys[split])})")
    return Found(labels[idx - 1], [f"class_{c:03d}" for c in range(1, 103)],
                 f"Flowers-102 '{'+'.join(keys[split])}' of setid.mat", paths=paths)


# --- Oxford-IIIT Pets ------------------------------------------------------------------------------
def _pets(base: Path, split: str) -> Found:
    files = {"trainval": "trainval.txt", "train": "trainval.txt", "test": "test.txt"}
    if split not in files:
        raise _split_error("Oxford-IIIT Pets", split, files)
    rows = [r for r in _lines(base / "annotations" / files[split]) if not r[0].startswith("#")]
    names: dict[int, str] = {}
    for f in ("trainval.txt", "test.txt"):  # class names (breeds) from both lists, so both splits agree
        for r in _lines(base / "annotations" / f):
            if not r[0].startswith("#"):
                names[int(r[1])] = r[0].rsplit("_", 1)[0]
    classes = [names[k] for k in sorted(names)]
    paths = [str(base / "images" / f"{r[0]}.jpg") for r in rows]
    _exists(paths, f"annotations/{files[split]}")
    return Found(np.asarray([int(r[1]) - 1 for r in rows], dtype=np.int64), classes,
                 f"Oxford-IIIT Pets annotations/{files[split]}", paths=paths)


# --- CUB-200-2011 ----------------------------------------------------------------------------------
def _cub(base: Path, split: str) -> Found:
    if split not in ("train", "test"):
        raise _split_error("CUB-200-2011", split, ("train", "test"))
    images = {r[0]: r[1] for r in _lines(base / "images.txt")}
    label = {r[0]: int(r[1]) - 1 for r in _lines(base / "image_class_labels.txt")}
    is_train = {r[0]: r[1] == "1" for r in _lines(base / "train_test_split.txt")}
    ids = [i for i in images if is_train.get(i) == (split == "train")]
    if (base / "classes.txt").is_file():
        classes = [r[1] for r in sorted(_lines(base / "classes.txt"), key=lambda r: int(r[0]))]
    else:
        classes = [f"class_{c:03d}" for c in range(1, max(label.values()) + 2)]
    paths = [str(base / "images" / images[i]) for i in ids]
    _exists(paths, "images.txt")
    return Found(np.asarray([label[i] for i in ids], dtype=np.int64), classes,
                 f"CUB-200-2011 train_test_split.txt ({'is_training_image=1' if split == 'train' else '=0'})",
                 paths=paths)


# --- FGVC-Aircraft ---------------------------------------------------------------------------------
def _aircraft(base: Path, split: str) -> Found:
    if split not in ("train", "val", "trainval", "test"):
        raise _split_error("FGVC-Aircraft", split, ("train", "val", "trainval", "test"))
    classes = [line.strip() for line in (base / "data" / "variants.txt").read_text().splitlines() if line.strip()]
    index = {c: i for i, c in enumerate(classes)}
    listing = base / "data" / f"images_variant_{split}.txt"
    if not listing.is_file():
        raise DataError(f"FGVC-Aircraft: '{listing}' is missing (the '{split}' list)")
    ids, labels = [], []
    for line in listing.read_text().splitlines():
        if line.strip():
            image, variant = line.strip().split(" ", 1)  # variant names hold spaces
            if variant not in index:
                raise DataError(f"FGVC-Aircraft: variant '{variant}' of {listing.name} is not in data/variants.txt")
            ids.append(image)
            labels.append(index[variant])
    paths = [str(base / "data" / "images" / f"{i}.jpg") for i in ids]
    _exists(paths, f"data/{listing.name}")
    return Found(np.asarray(labels, dtype=np.int64), classes, f"FGVC-Aircraft data/{listing.name}", paths=paths)


# --- STL-10 ----------------------------------------------------------------------------------------
def _stl10(base: Path, split: str) -> Found:
    folder = base / "stl10_binary" if (base / "stl10_binary").is_dir() else base
    if split not in ("train", "test", "unlabeled"):
        raise _split_error("STL-10", split, ("train", "test", "unlabeled"))
    xfile = folder / f"{split}_X.bin"
    if not xfile.is_file():
        raise DataError(f"STL-10: '{xfile}' is missing (the '{split}' images)")
    n = xfile.stat().st_size // (3 * 96 * 96)
    # column-major 96x96 planes: (N, 3, W, H) in C order -> (N, H, W, 3)
    images = np.memmap(xfile, dtype=np.uint8, mode="r", shape=(n, 3, 96, 96)).transpose(0, 3, 2, 1)
    names = folder / "class_names.txt"
    classes = [c.strip() for c in names.read_text().splitlines() if c.strip()] if names.is_file() else \
        [f"class_{c}" for c in range(1, 11)]
    if split == "unlabeled":
        return Found(np.full(n, -1, dtype=np.int64), classes, "STL-10 unlabeled_X.bin (no labels)", images=images)
    yfile = folder / f"{split}_y.bin"
    if not yfile.is_file():
        raise DataError(f"STL-10: '{yfile}' is missing (the '{split}' labels)")
    labels = np.fromfile(yfile, dtype=np.uint8).astype(np.int64) - 1  # 1..10 -> 0..9
    if len(labels) != n:
        raise DataError(f"STL-10: {yfile.name} has {len(labels)} labels for {n} images in {xfile.name}")
    return Found(labels, classes, f"STL-10 {split}_X.bin / {split}_y.bin", images=images)


# --- Stanford Cars ---------------------------------------------------------------------------------
def _records(value) -> list[dict]:
    """A .mat struct array as mat4py gives it (a dict of lists, or one dict per record) -> list of dicts."""
    if isinstance(value, list):
        return value
    keys = list(value)
    column = value[keys[0]]
    if not isinstance(column, list):
        return [value]
    return [{k: value[k][i] for k in keys} for i in range(len(column))]


def _scalar(v):
    while isinstance(v, list) and len(v) == 1:
        v = v[0]
    return v


def _cars(base: Path, split: str) -> Found:
    if split not in ("train", "test"):
        raise _split_error("Stanford Cars", split, ("train", "test"))
    if (base / "cars_annos.mat").is_file() and (base / "car_ims").is_dir():  # the car_ims/ + cars_annos.mat variant
        mat = _loadmat(base / "cars_annos.mat")
        classes = [str(_scalar(c)) for c in mat["class_names"]]
        rows = [r for r in _records(mat["annotations"]) if bool(int(_scalar(r["test"]))) == (split == "test")]
        paths = [str(base / str(_scalar(r["relative_im_path"]))) for r in rows]
        where = "cars_annos.mat"
    else:
        classes = [str(_scalar(c)) for c in _loadmat(base / "devkit" / "cars_meta.mat")["class_names"]]
        annos = base / ("devkit/cars_train_annos.mat" if split == "train" else "cars_test_annos_withlabels.mat")
        if not annos.is_file():
            raise DataError(f"Stanford Cars: '{annos}' is missing (the '{split}' labels"
                            + ("; the test labels come in cars_test_annos_withlabels.mat)" if split == "test" else ")"))
        rows = _records(_loadmat(annos)["annotations"])
        folder = base / f"cars_{split}"
        paths = [str(folder / str(_scalar(r["fname"]))) for r in rows]
        where = annos.name
    labels = np.asarray([int(_scalar(r["class"])) - 1 for r in rows], dtype=np.int64)
    _exists(paths, where)
    return Found(labels, classes, f"Stanford Cars {where} ({split})", paths=paths)


LAYOUTS = {layout.name: layout for layout in (
    Layout("flowers102", "Flowers-102", ("flowers-102", "102flowers"), ("imagelabels.mat", "setid.mat"),
           ("jpg", "imagelabels.mat", "setid.mat"), {"train": 1020, "val": 1020, "test": 6149, "trainval": 2040},
           _flowers),
    Layout("pets", "Oxford-IIIT Pets", ("oxford-iiit-pet",), ("annotations/trainval.txt", "annotations/test.txt"),
           ("images", "annotations/trainval.txt", "annotations/test.txt"),
           {"trainval": 3680, "train": 3680, "test": 3669}, _pets),
    Layout("cub200", "CUB-200-2011", ("CUB_200_2011",), ("image_class_labels.txt", "train_test_split.txt"),
           ("images", "images.txt", "image_class_labels.txt", "train_test_split.txt"),
           {"train": 5994, "test": 5794}, _cub),
    Layout("aircraft", "FGVC-Aircraft", ("fgvc-aircraft-2013b",), ("data/variants.txt", "data/images_variant_test.txt"),
           ("data/images", "data/variants.txt"), {"train": 3334, "val": 3333, "trainval": 6667, "test": 3333},
           _aircraft),
    Layout("stl10", "STL-10", (), ("stl10_binary/train_X.bin", "train_X.bin", "stl10_binary/unlabeled_X.bin",
                                   "unlabeled_X.bin"),
           (), {"train": 5000, "test": 8000, "unlabeled": 100000}, _stl10),
    Layout("cars", "Stanford Cars", ("stanford_cars",), ("devkit/cars_meta.mat", "cars_annos.mat"),
           (), {"train": 8144, "test": 8041}, _cars),
)}


def detect(root: Path) -> Optional[Layout]:
    """The official layout `root` (or a folder the archive unpacks to below it) holds, if any."""
    for layout in LAYOUTS.values():
        if layout.base(root) is not None:
            return layout
    return None


def read(layout: Layout, root: Path, split: str) -> Found:
    """`split` of `layout` under `root` (recognised there, or named with data.format)."""
    base = layout.base(root)
    if base is None:
        want = " or ".join(layout.markers)
        raise DataError(f"data.format={layout.name}: '{root}' does not hold {layout.title} as distributed "
                        f"(no {want}); check data.root, or set data.format=auto")
    missing = [n for n in layout.needs if not (base / n).exists()]
    if missing:
        raise DataError(f"'{base}' looks like {layout.title} but {', '.join(missing)} "
                        f"{'is' if len(missing) == 1 else 'are'} missing; unpack the complete archive there")
    found = layout.read(base, split)
    official = layout.counts.get(split)
    if official is not None and len(found.labels) != official:
        print(f"note: {layout.title} '{split}' has {len(found.labels)} images ({found.formed}); the official split "
              f"has {official}", file=sys.stderr)
    return found


# --- an annotation file per split ------------------------------------------------------------------
ANNOTATION_SUFFIXES = (".csv", ".tsv", ".txt")


def annotation_file(root: Path, split: str) -> Optional[Path]:
    """The annotation file of `split`: `<split>.csv|.tsv|.txt` (or `<split>_labels.*`,
    `<split>_annotations.*`) in `root`, or `labels.*` / `annotations.*` / those names inside `root/<split>/`."""
    stems = (split, f"{split}_labels", f"labels_{split}", f"{split}_annotations")
    for folder, names in ((root, stems), (root / split, (*stems[1:], "labels", "annotations"))):
        for stem in names:
            for suffix in ANNOTATION_SUFFIXES:
                if (folder / f"{stem}{suffix}").is_file():
                    return folder / f"{stem}{suffix}"
    return None


def annotated(root: Path, split: str) -> bool:
    """Whether `split` has an annotation file whose first row names an existing image (data.format=auto
    reads it then; a text file that does not list this folder's images is left alone)."""
    path = annotation_file(root, split) if root.is_dir() else None
    if path is None:
        return False
    try:
        rows = _rows(path, root)
    except (DataError, OSError, UnicodeDecodeError):
        return False
    return bool(rows) and _resolve(rows[0][0], path, root).is_file()


def _rows(path: Path, root: Path) -> list[list[str]]:
    """'path label [more columns]' rows (CSV, TSV or whitespace): comments, blank lines and a header dropped."""
    text = path.read_text()
    if path.suffix in (".csv", ".tsv"):
        rows = list(csv.reader(text.splitlines(), delimiter="\t" if path.suffix == ".tsv" else ","))
    else:
        rows = [line.split() for line in text.splitlines()]
    rows = [[c.strip() for c in r] for r in rows if r and r[0].strip() and not r[0].startswith("#")]
    if rows and not _resolve(rows[0][0], path, root).is_file():
        rows = rows[1:]  # a header
    bad = next((i for i, r in enumerate(rows) if len(r) < 2), None)
    if bad is not None:
        raise DataError(f"annotation file '{path}': row {bad + 1} is not 'path label': {rows[bad]!r}")
    return rows


def _resolve(rel: str, path: Path, root: Path) -> Path:
    """An annotated image: relative to the annotation file's folder, its images/ folder, or data.root."""
    for base in (path.parent, path.parent / "images", root):
        if (base / rel).is_file():
            return base / rel
    return path.parent / rel


def read_annotations(root: Path, split: str, splits: tuple[str, ...]) -> Found:
    """`split` from its annotation file: one 'relative/path label' row per image (a header row is
    skipped; labels are names or numbers; further columns, such as boxes, are ignored). Classes are
    those of every split's file (`splits`), so all splits number them alike."""
    path = annotation_file(root, split)
    if path is None:
        raise DataError(f"data.format=annotations: no annotation file for split '{split}' under '{root}' (looked "
                        f"for {split}.csv/.tsv/.txt, {split}_labels.txt, {split}/labels.txt, ...): one 'path label' "
                        "row per image")
    rows = _rows(path, root)
    names = {r[1] for s in dict.fromkeys((*splits, split)) if (f := annotation_file(root, s)) for r in _rows(f, root)}
    numeric = all(n.lstrip("-").isdigit() for n in names)
    classes = sorted(names, key=int if numeric else str)
    index = {c: i for i, c in enumerate(classes)}
    paths = [str(_resolve(r[0], path, root)) for r in rows]
    _exists(paths, str(path))
    return Found(np.asarray([index[r[1]] for r in rows], dtype=np.int64), classes,
                 f"the annotation file {path.relative_to(root)}", paths=paths)
