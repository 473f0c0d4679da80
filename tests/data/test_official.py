"""The seeds' datasets as distributed: small fixtures written here in each official layout (the real
file formats: MATLAB v5 .mat written by scipy, the STL-10 binary order, the annotation texts), read
through `data.root` (recognised) or `data.format`; counts, labels, split mapping, and one line for
each missing piece, before an image is decoded."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vitssl.config.sections import DataConfig
from vitssl.data import official
from vitssl.data.dataset import load_dataset, scan_dataset
from vitssl.errors import ConfigError, DataError

scipy_io = pytest.importorskip("scipy.io")


def jpeg(path: Path, value: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (30 + value % 7, 22), (value * 20 % 256, 90, 160)).save(path, quality=90)


def scan(root: Path, split: str = "train", **kw):
    return scan_dataset(DataConfig(root=str(root), **kw), split)


def flowers(root: Path) -> Path:
    """12 images, classes 1..3 (4 each); train 1-3, val 4-6, test 7-12 (as setid.mat's lists)."""
    labels = [1, 1, 2, 2, 3, 3, 1, 2, 3, 1, 2, 3]
    for i in range(1, 13):
        jpeg(root / "jpg" / f"image_{i:05d}.jpg", i)
    scipy_io.savemat(root / "imagelabels.mat", {"labels": np.array([labels], dtype=np.uint8)}, do_compression=True)
    scipy_io.savemat(root / "setid.mat", {"trnid": np.array([[1, 3, 5]], dtype=np.uint16),
                                          "valid": np.array([[2, 4, 6]], dtype=np.uint16),
                                          "tstid": np.array([[7, 8, 9, 10, 11, 12]], dtype=np.uint16)},
                     do_compression=True)
    return root


def test_flowers102_splits_labels_and_the_count_note(tmp_path, capsys):
    root = flowers(tmp_path / "flowers")
    train = scan(root)
    assert train.name == "flowers102" and len(train.classes) == 102
    assert [Path(p).name for p in train.paths] == ["image_00001.jpg", "image_00003.jpg", "image_00005.jpg"]
    assert train.labels.tolist() == [0, 1, 2]
    assert scan(root, "val").labels.tolist() == [0, 1, 2] and len(scan(root, "test")) == 6
    assert len(scan(root, "trainval")) == 6
    assert "Flowers-102 'train' has 3 images" in capsys.readouterr().err  # official: 1,020
    assert scan(root, format="flowers102").labels.tolist() == [0, 1, 2]
    with pytest.raises(DataError, match="no 'valid'"):
        scan(root, "valid")
    ds = load_dataset(DataConfig(root=str(root), image_size=16, num_workers=0), "test", progress=False)
    assert tuple(ds.images.shape) == (6, 3, 16, 16) and ds.labels.tolist() == [0, 1, 2, 0, 1, 2]


def test_a_recognised_layout_missing_a_piece_is_one_line_naming_it(tmp_path):
    root = flowers(tmp_path / "flowers")
    (root / "setid.mat").unlink()
    with pytest.raises(DataError, match=r"looks like Flowers-102 but setid\.mat is missing"):
        scan(root)
    (root / "jpg" / "image_00003.jpg").unlink()
    scipy_io.savemat(root / "setid.mat", {"trnid": [[1, 3]], "valid": [[2]], "tstid": [[4]]})
    with pytest.raises(DataError, match=r"1 of 2 images listed in setid.mat \(trnid\) are missing.*image_00003"):
        scan(root)
    with pytest.raises(DataError, match="does not hold Oxford-IIIT Pets"):
        scan(root, format="pets")


def pets(root: Path) -> Path:
    header = "#Image CLASS-ID SPECIES BREED ID\n#ID: 1:37 Class ids\n"
    rows = {"trainval": [("Abyssinian_1", 1, 1, 1), ("Abyssinian_2", 1, 1, 1), ("american_bulldog_1", 2, 2, 1)],
            "test": [("Abyssinian_3", 1, 1, 1), ("american_bulldog_2", 2, 2, 1)]}
    for split, rs in rows.items():
        (root / "annotations").mkdir(parents=True, exist_ok=True)
        (root / "annotations" / f"{split}.txt").write_text(header + "".join(f"{a} {b} {c} {d}\n" for a, b, c, d in rs))
        for i, r in enumerate(rs):
            jpeg(root / "images" / f"{r[0]}.jpg", i)
    return root


def test_pets_trainval_and_test_with_breed_names(tmp_path):
    root = pets(tmp_path / "oxford-iiit-pet")
    tr, te = scan(root), scan(root, "test")
    assert tr.name == "pets" and tr.classes == ["Abyssinian", "american_bulldog"] == te.classes
    assert tr.labels.tolist() == [0, 0, 1] and te.labels.tolist() == [0, 1]
    assert "trainval.txt" in tr.formed and len(scan(root, "trainval")) == 3


def cub(parent: Path) -> Path:
    base = parent / "CUB_200_2011"
    classes = ["001.Black_footed_Albatross", "002.Laysan_Albatross"]
    items = [(1, 0, 1), (2, 0, 0), (3, 1, 1), (4, 1, 0), (5, 1, 1)]  # id, class, is_training
    base.mkdir(parents=True)
    (base / "classes.txt").write_text("".join(f"{i + 1} {c}\n" for i, c in enumerate(classes)))
    (base / "images.txt").write_text("".join(f"{i} {classes[c]}/img_{i}.jpg\n" for i, c, _ in items))
    (base / "image_class_labels.txt").write_text("".join(f"{i} {c + 1}\n" for i, c, _ in items))
    (base / "train_test_split.txt").write_text("".join(f"{i} {t}\n" for i, _, t in items))
    for i, c, _ in items:
        jpeg(base / "images" / classes[c] / f"img_{i}.jpg", i)
    return parent


def test_cub_found_below_data_root_with_its_official_split(tmp_path):
    root = cub(tmp_path / "downloads")
    tr, te = scan(root), scan(root, "test")
    assert tr.name == "cub200" and tr.classes == ["001.Black_footed_Albatross", "002.Laysan_Albatross"]
    assert tr.labels.tolist() == [0, 1, 1] and te.labels.tolist() == [0, 1]
    assert [Path(p).name for p in te.paths] == ["img_2.jpg", "img_4.jpg"]
    (root / "CUB_200_2011" / "images.txt").unlink()
    with pytest.raises(DataError, match="CUB-200-2011 but images.txt is missing"):
        scan(root)


def aircraft(parent: Path) -> Path:
    data = parent / "fgvc-aircraft-2013b" / "data"
    variants = ["707-320", "Cessna 172", "DHC-1"]
    data.mkdir(parents=True)
    (data / "variants.txt").write_text("\n".join(variants) + "\n")
    lists = {"train": [("1000001", 0), ("1000002", 1)], "val": [("1000003", 2)],
             "test": [("1000004", 1), ("1000005", 2)]}
    lists["trainval"] = lists["train"] + lists["val"]
    for split, rs in lists.items():
        (data / f"images_variant_{split}.txt").write_text("".join(f"{i} {variants[v]}\n" for i, v in rs))
        for i, _ in rs:
            jpeg(data / "images" / f"{i}.jpg", int(i) % 13)
    return parent


def test_aircraft_variants_with_spaces_and_four_splits(tmp_path):
    root = aircraft(tmp_path / "fgvc")
    assert scan(root).labels.tolist() == [0, 1] and scan(root).classes[1] == "Cessna 172"
    assert scan(root, "trainval").labels.tolist() == [0, 1, 2] and scan(root, "test").labels.tolist() == [1, 2]
    assert scan(root, "val").name == "aircraft"


def stl10(root: Path) -> tuple[Path, np.ndarray]:
    folder = root / "stl10_binary"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (4, 96, 96, 3), dtype=np.uint8)  # (N, H, W, C)
    imgs[0, :, :, 0] = np.arange(96, dtype=np.uint8)[:, None]  # a red ramp from top to bottom
    # the official order: per image, per channel, the 96x96 plane column by column (column-major)
    (folder / "train_X.bin").write_bytes(imgs.transpose(0, 3, 2, 1).tobytes())
    (folder / "train_y.bin").write_bytes(bytes([1, 2, 10, 2]))
    (folder / "test_X.bin").write_bytes(imgs[:2].transpose(0, 3, 2, 1).tobytes())
    (folder / "test_y.bin").write_bytes(bytes([3, 4]))
    (folder / "unlabeled_X.bin").write_bytes(imgs[:3].transpose(0, 3, 2, 1).tobytes())
    (folder / "class_names.txt").write_text("\n".join(["airplane", "bird", "car", "cat", "deer", "dog", "horse",
                                                        "monkey", "ship", "truck"]) + "\n")
    return root, imgs


def test_stl10_binary_order_labels_and_unlabelled_split(tmp_path):
    root, imgs = stl10(tmp_path / "stl")
    tr = scan(root)
    assert tr.name == "stl10" and tr.labels.tolist() == [0, 1, 9, 1] and tr.classes[9] == "truck"
    assert np.array_equal(np.asarray(tr._images), imgs)  # rows are rows: the ramp runs top to bottom
    un = scan(root, "unlabeled")
    assert len(un) == 3 and not un.labelled
    ds = load_dataset(DataConfig(root=str(root), image_size=96, store_size=96), "test", progress=False)
    assert tuple(ds.images.shape) == (2, 3, 96, 96) and ds.images[0, 0, :, 5].tolist() == list(range(96))
    (root / "stl10_binary" / "test_y.bin").unlink()
    with pytest.raises(DataError, match="test_y.bin' is missing"):
        scan(root, "test")


def _struct(rows: list[dict]) -> np.ndarray:
    """A 1xN MATLAB struct array (as the devkit's annotation files hold)."""
    keys = list(rows[0])
    arr = np.empty((1, len(rows)), dtype=[(k, object) for k in keys])
    for i, r in enumerate(rows):
        for k in keys:
            arr[0, i][k] = r[k]
    return arr


def cars(root: Path) -> Path:
    names = np.array([["AM General Hummer SUV 2000"], ["Acura RL Sedan 2012"]], dtype=object).T
    (root / "devkit").mkdir(parents=True)
    scipy_io.savemat(root / "devkit" / "cars_meta.mat", {"class_names": names})
    train = [{"bbox_x1": 1, "bbox_y1": 1, "bbox_x2": 9, "bbox_y2": 9, "class": c, "fname": f"{i:05d}.jpg"}
             for i, c in ((1, 1), (2, 2), (3, 2))]
    test = [{"bbox_x1": 1, "bbox_y1": 1, "bbox_x2": 9, "bbox_y2": 9, "class": c, "fname": f"{i:05d}.jpg"}
            for i, c in ((1, 2), (2, 1))]
    scipy_io.savemat(root / "devkit" / "cars_train_annos.mat", {"annotations": _struct(train)})
    scipy_io.savemat(root / "cars_test_annos_withlabels.mat", {"annotations": _struct(test)})
    for split, rows in (("train", train), ("test", test)):
        for r in rows:
            jpeg(root / f"cars_{split}" / r["fname"], int(r["fname"][:5]))
    return root


def test_stanford_cars_devkit_and_car_ims_variants(tmp_path):
    root = cars(tmp_path / "cars")
    tr, te = scan(root), scan(root, "test")
    assert tr.name == "cars" and tr.classes == ["AM General Hummer SUV 2000", "Acura RL Sedan 2012"]
    assert tr.labels.tolist() == [0, 1, 1] and te.labels.tolist() == [1, 0]
    (root / "cars_test_annos_withlabels.mat").unlink()
    with pytest.raises(DataError, match="cars_test_annos_withlabels.mat' is missing"):
        scan(root, "test")

    other = tmp_path / "car_ims_variant"
    annos = [{"relative_im_path": f"car_ims/{i:06d}.jpg", "bbox_x1": 1, "bbox_y1": 1, "bbox_x2": 5, "bbox_y2": 5,
              "class": c, "test": t} for i, c, t in ((1, 1, 0), (2, 2, 1), (3, 2, 0))]
    for a in annos:
        jpeg(other / a["relative_im_path"], 1)
    scipy_io.savemat(other / "cars_annos.mat", {"annotations": _struct(annos),
                                                "class_names": np.array([["A"], ["B"]], dtype=object).T})
    assert scan(other).labels.tolist() == [0, 1] and scan(other, "test").labels.tolist() == [1]


def test_a_validation_folder_labelled_by_an_annotation_file(tmp_path):
    """Tiny-ImageNet's shape: train/<class>/images/*.JPEG; val/images/*.JPEG with val/val_annotations.txt."""
    root = tmp_path / "tiny"
    for c in ("n01", "n02"):
        for i in range(2):
            jpeg(root / "train" / c / "images" / f"{c}_{i}.JPEG", i)
    rows = [("val_0.JPEG", "n02"), ("val_1.JPEG", "n01"), ("val_2.JPEG", "n02")]
    for name, _ in rows:
        jpeg(root / "val" / "images" / name, 3)
    (root / "val" / "val_annotations.txt").write_text("".join(f"{n}\t{c}\t0\t0\t10\t10\n" for n, c in rows))
    val = scan(root, "val")
    assert val.classes == ["n01", "n02"] == scan(root).classes and val.labels.tolist() == [1, 0, 1]
    assert "val/val_annotations.txt" in val.formed


def test_csv_annotations_with_a_header_and_named_format(tmp_path):
    root = tmp_path / "mine"
    for i in range(4):
        jpeg(root / "pics" / f"{i}.png", i)
    (root / "train.csv").write_text("file,label\npics/0.png,cat\npics/1.png,dog\npics/2.png,cat\n")
    (root / "test.csv").write_text("file,label\npics/3.png,dog\n")
    tr, te = scan(root, format="annotations"), scan(root, "test")
    assert tr.classes == ["cat", "dog"] == te.classes and tr.labels.tolist() == [0, 1, 0] and te.labels.tolist() == [1]
    (root / "test.csv").write_text("file,label\npics/3.png\n")
    with pytest.raises(DataError, match="row 1 is not 'path label'"):
        scan(root, "test", format="annotations")


def test_sub_folders_that_are_not_classes_are_reported_not_invented(tmp_path):
    root = tmp_path / "download"
    for i in range(3):
        jpeg(root / "flowers" / f"image_{i:05d}.jpg", i)
    jpeg(root / "assets" / "logo.png", 1)
    (root / "meta").mkdir()
    (root / "meta" / "labels.mat").write_bytes(b"not read")
    with pytest.raises(DataError) as e:
        scan(root)
    msg = str(e.value)
    assert "does not look like class folders" in msg and "flowers/ (3 images)" in msg
    assert "meta/ (no images; labels.mat)" in msg
    assert scan(root, format="folder").classes == ["assets", "flowers"]  # asked for: read as classes


def test_a_crowded_folder_is_reported_by_a_few_examples(tmp_path):
    """A folder such as /tmp with dozens of sub-folders: the error stays readable."""
    for i in range(8):
        jpeg(tmp_path / f"pics{i}" / "a.jpg", i)
        (tmp_path / f"notes{i}").mkdir()
        (tmp_path / f"notes{i}" / "x.json").write_text("{}")
    with pytest.raises(DataError) as e:
        scan(tmp_path)
    msg = str(e.value)
    assert "pics5/ (1 images)" in msg and "pics6/" not in msg and "notes5/ (no images; x.json)" in msg
    assert "notes6/" not in msg and "and 4 more folders" in msg


def test_format_names_are_checked_and_match_the_readers():
    with pytest.raises(ConfigError, match="data.format"):
        from vitssl.config.schema import from_dict

        from_dict(DataConfig, {"format": "flowers"}, "data")
    allowed = set(typing.get_args(typing.get_type_hints(DataConfig)["format"]))
    assert set(official.LAYOUTS) <= allowed
    assert dataclasses.replace(DataConfig(), format="cub200").format == "cub200"
