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
    with pytest.raises(DataError, match="has splits \\['test', 'train'\\] but no 'val'"):
        scan_folder(tmp_path, "val")


def test_class_folders_without_splits_and_nested(tmp_path):
    img(tmp_path / "a" / "1.png")
    img(tmp_path / "b" / "sub" / "2.jpg")
    img(tmp_path / "b" / "3.JPEG")
    files = scan_folder(tmp_path, "train")
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
    with pytest.raises(DataError, match="is not a folder"):
        scan_folder(tmp_path / "missing", "train")
