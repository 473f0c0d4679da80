import re

import pytest
from PIL import Image

from vitssl.data.folder import scan_folder
from vitssl.errors import DataError


def img(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8)).save(path)


def test_class_folders_with_splits(tmp_path):
    for split in ("train", "test"):
        for cls in ("cat", "dog"):
            img(tmp_path / split / cls / "a.png")
    files = scan_folder(tmp_path, "train")
    assert files.classes == ["cat", "dog"] and files.labels == [0, 1]
    assert all("/train/" in p for p in files.paths)
    with pytest.raises(DataError, match="has split folders \\['test', 'train'\\] but no 'val'; set test_split"):
        scan_folder(tmp_path, "val", key="test_split")


@pytest.mark.parametrize("name", ["valid", "validation", "val", "holdout", "my_eval_set"])
def test_any_folder_name_can_be_a_split(tmp_path, name):
    """Once one folder has a usual split name, every sub-folder is a split (test_split=valid works)."""
    for split in ("train", name):
        for cls in ("cat", "dog"):
            img(tmp_path / split / cls / "a.png")
    files = scan_folder(tmp_path, name, key="test_split")
    assert files.classes == ["cat", "dog"] and all(f"/{name}/" in p for p in files.paths)


def test_labelled_folder_without_splits_holds_out_a_balanced_test_part(tmp_path):
    for cls, n in (("a", 10), ("b", 20), ("c", 1)):
        for i in range(n):
            img(tmp_path / cls / f"{i}.png")
    train = scan_folder(tmp_path, "train", holdout=0.2)
    test = scan_folder(tmp_path, "test", key="test_split", holdout=0.2)
    assert not set(train.paths) & set(test.paths)  # never the same image on both sides
    assert len(train.paths) + len(test.paths) == 31
    assert sorted(test.labels) == [0, 0, 1, 1, 1, 1]  # 20 % of each class; a class of one stays in train
    assert test.formed.startswith("held out: 6 of 31") and "data.holdout" in test.formed
    again = scan_folder(tmp_path, "test", key="test_split", holdout=0.2)
    assert again.paths == test.paths  # seeded: the same part every time
    other = scan_folder(tmp_path, "test", key="test_split", holdout=0.2, holdout_seed=1)
    assert other.paths != test.paths
    with pytest.raises(DataError, match="no split folders.*set test_split=test"):
        scan_folder(tmp_path, "val", key="test_split", holdout=0.2)
    with pytest.raises(DataError, match="no 'test' split; hold out part of it with data.holdout"):
        scan_folder(tmp_path, "test", key="test_split", holdout=0.0)
    assert len(scan_folder(tmp_path, "train", holdout=0.0).paths) == 31


def test_class_folders_without_splits_and_nested(tmp_path):
    img(tmp_path / "a" / "1.png")
    img(tmp_path / "b" / "sub" / "2.jpg")
    img(tmp_path / "b" / "3.JPEG")
    files = scan_folder(tmp_path, "train", holdout=0.0)
    assert files.classes == ["a", "b"] and files.labels == [0, 1, 1]


def test_flat_folder_is_unlabeled(tmp_path):
    for i in range(3):
        img(tmp_path / f"{i}.png")
    (tmp_path / "notes.txt").write_text("not an image")
    files = scan_folder(tmp_path, "train")
    assert len(files.paths) == 3 and files.labels == [-1] * 3 and files.classes == []


def test_empty_or_missing(tmp_path):
    with pytest.raises(DataError, match="no images found"):
        scan_folder(tmp_path, "train")
    with pytest.raises(DataError, match="is not a folder;"):
        scan_folder(tmp_path / "missing", "train")


def test_a_missing_relative_root_names_the_folder_it_was_read_from(tmp_path, monkeypatch):
    """A study or config run from another folder than the one its relative paths assume."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError, match=re.escape(f"'../data' is not a folder (relative to the current folder, {tmp_path})")):
        scan_folder("../data", "train")
