import pickle
import tarfile
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from vitssl.config import DataConfig
from vitssl.data import dataset as ds_mod
from vitssl.data.dataset import balanced_subset, load_dataset
from vitssl.errors import DataError


def test_balanced_subset_covers_every_class():
    labels = np.repeat(np.arange(10), 100)
    idx = balanced_subset(labels, 25, seed=0)
    counts = np.bincount(labels[idx], minlength=10)
    assert len(idx) == 25 and counts.min() == 2 and counts.max() == 3
    assert np.array_equal(idx, balanced_subset(labels, 25, seed=0))
    assert not np.array_equal(idx, balanced_subset(labels, 25, seed=1))


def test_balanced_subset_small_classes_filled_from_others():
    labels = np.array([0] * 2 + [1] * 50)
    idx = balanced_subset(labels, 20, seed=0)
    assert len(idx) == 20 and (labels[idx] == 0).sum() == 2


def test_synthetic_is_deterministic_and_labelled():
    cfg = DataConfig(root="synthetic", synthetic_train=40, synthetic_test=20, image_size=32)
    a = load_dataset(cfg, "train")
    b = load_dataset(cfg, "train")  # second time: from the disk cache
    assert a.images.shape == (40, 3, 32, 32) and a.images.dtype == torch.uint8
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert a.labelled and len(a.classes) == 10
    test = load_dataset(cfg, "test")
    assert len(test) == 20 and not torch.equal(test.images[:20], a.images[:20])


def test_synthetic_memory_does_not_grow_with_image_size(monkeypatch):
    """Large images are drawn a few at a time (sit_224 on synthetic images was once killed for memory on
    a 24 GiB machine); each image evaluates only its own class's pattern, which gives what evaluating
    all ten and picking one gave."""
    from vitssl.data import synthetic

    chunks, render = [], synthetic.render
    monkeypatch.setattr(synthetic, "render", lambda labels, size, g: chunks.append(len(labels)) or render(labels, size, g))
    images, labels = synthetic.make_synthetic(40, 256)
    assert images.shape == (40, 3, 256, 256) and sum(chunks) == 40
    assert max(chunks) * 512 ** 2 <= synthetic.CHUNK_PIXELS and len(chunks) > 1
    coords = torch.linspace(-1, 1, 24)
    grid = torch.meshgrid(coords, coords, indexing="xy")
    label = torch.arange(20) % 10
    mine = synthetic._pattern_masks(label, grid, torch.Generator().manual_seed(5))
    every = torch.stack([synthetic._pattern_masks(torch.full((20,), c), grid, torch.Generator().manual_seed(5))
                         for c in range(10)], 1)  # (n, 10, S, S): every pattern for every image, same draws
    assert torch.equal(mine, every[torch.arange(20), label])
    assert len({every[0, c].numpy().tobytes() for c in range(10)}) == 10  # ten different patterns


def test_image_folder_decoded_once(cifar_small, monkeypatch):
    cfg = DataConfig(root=str(cifar_small), image_size=32, num_workers=0)
    first = load_dataset(cfg, "train")
    assert len(first) == 80 and first.classes[0] == "airplane" and first.in_memory

    def boom(*a, **k):
        raise AssertionError("decoded again instead of reading the cache")

    monkeypatch.setattr(ds_mod, "decode_files", boom)
    again = load_dataset(cfg, "train")
    assert torch.equal(first.images, again.images)


def test_limit_is_class_balanced(cifar_small):
    cfg = DataConfig(root=str(cifar_small), image_size=32, limit=20, num_workers=0)
    d = load_dataset(cfg, "train", seed=3)
    assert len(d) == 20 and torch.bincount(d.labels, minlength=10).min() == 2


def test_bad_images_error_or_skip(tmp_path):
    for i in range(3):
        Image.new("RGB", (16, 16), (i * 50, 0, 0)).save(tmp_path / f"ok{i}.png")
    (tmp_path / "bad.png").write_bytes(b"garbage")
    with pytest.raises(DataError, match="bad.png"):
        load_dataset(DataConfig(root=str(tmp_path), image_size=16, num_workers=0), "train")
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        d = load_dataset(DataConfig(root=str(tmp_path), image_size=16, num_workers=0, bad_images="skip"), "train")
    assert len(d) == 3 and len(d.skipped) == 1
    assert any("skipped 1 of 4 images" in str(x.message) for x in w)


def test_mixed_modes_and_sizes_in_one_folder(tmp_path):
    Image.new("L", (40, 20), 128).save(tmp_path / "gray.png")
    Image.new("RGBA", (20, 50), (0, 0, 255, 255)).save(tmp_path / "rgba.png")
    Image.new("P", (33, 33)).save(tmp_path / "pal.gif")
    d = load_dataset(DataConfig(root=str(tmp_path), image_size=16, num_workers=0), "train")
    assert d.images.shape == (3, 3, 16, 16) and d.labels.tolist() == [-1, -1, -1]


def test_stream_mode_keeps_paths(cifar_small):
    d = load_dataset(DataConfig(root=str(cifar_small), image_size=32, cache="stream"), "test")
    assert not d.in_memory and len(d.paths) == 40


def write_fake_cifar10(folder, n=6):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with open(folder / name, "wb") as f:
            pickle.dump({"data": rng.integers(0, 255, (n, 3072), dtype=np.uint8), "labels": list(range(n))}, f)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"c{i}" for i in range(10)]}, f)


def test_cifar_pickle_layout(tmp_path):
    write_fake_cifar10(tmp_path / "cifar-10-batches-py")
    d = load_dataset(DataConfig(root=str(tmp_path), image_size=32), "train")
    assert len(d) == 30 and d.classes[3] == "c3" and d.images.shape == (30, 3, 32, 32)
    raw = pickle.load(open(tmp_path / "cifar-10-batches-py" / "data_batch_1", "rb"))["data"][0]
    assert torch.equal(d.images[0].reshape(-1), torch.from_numpy(raw))  # channel planes, row-major
    assert len(load_dataset(DataConfig(root=str(tmp_path), image_size=32), "test")) == 6


class _Payload:
    """A pickle that creates a file when it is loaded by an unrestricted unpickler."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_cifar_pickles_are_read_without_running_code(tmp_path, protocol):
    folder = tmp_path / "cifar-10-batches-py"
    write_fake_cifar10(folder)
    for name in ["data_batch_1", "batches.meta"]:  # official-like arrays in every pickle protocol still load
        obj = pickle.load(open(folder / name, "rb"))
        pickle.dump(obj, open(folder / name, "wb"), protocol=protocol)
    assert len(load_dataset(DataConfig(root=str(tmp_path), image_size=32), "train")) == 30
    marker = tmp_path / "pwned"
    with open(folder / "data_batch_1", "wb") as f:
        pickle.dump({"data": _Payload(marker), "labels": [0]}, f, protocol=protocol)
    with pytest.raises(DataError, match="is not a CIFAR file: it asks to load '(builtins|io).open'.*refusing"):
        load_dataset(DataConfig(root=str(tmp_path), image_size=32), "train")
    assert not marker.exists()  # the payload never ran


def test_cifar_download_verifies_checksum(tmp_path, monkeypatch):
    from vitssl.data import download

    src = tmp_path / "src"
    write_fake_cifar10(src / "cifar-10-batches-py")
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(src / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    url = archive.as_uri()
    monkeypatch.setitem(download.SOURCES, "cifar10", (download.Resource(url, "0" * 32),))
    with pytest.raises(DataError, match="MD5"):
        download.download("cifar10", tmp_path / "dl_bad")
    assert not (tmp_path / "dl_bad" / "cifar-10-batches-py").exists()  # nothing unpacked
    monkeypatch.setitem(download.SOURCES, "cifar10", (download.Resource(url, download.md5(archive)),))
    d = load_dataset(DataConfig(root=str(tmp_path / "dl"), download="cifar10"), "test")
    assert len(d) == 6
    assert not (tmp_path / "dl" / download.PARTS).exists()  # the archive is gone once unpacked


def photo_folder(root, shapes, seed=0):
    """Class folders of JPEG photos of the given (w, h) shapes, two classes."""
    rng = np.random.default_rng(seed)
    for i, (w, h) in enumerate(shapes):
        d = root / ("cat" if i % 2 else "dog")
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(d / f"{i}.jpg")
    return root


def test_photos_kept_whole_become_canvases_in_memory_and_streamed_alike(tmp_path):
    root = photo_folder(tmp_path / "photos", [(90, 60), (60, 90), (80, 80), (120, 40), (60, 60), (75, 50)])
    cfg = DataConfig(root=str(root), holdout=0, image_size=24, store_size=30, aspect="keep", max_aspect=1.5)
    mem = load_dataset(cfg, "train")
    assert mem.images.shape == (6, 4, 45, 45)  # the longest side found: 30 x 1.5
    alpha = mem.images[:, 3] > 0
    heights, widths = alpha.any(2).sum(1).tolist(), alpha.any(1).sum(1).tolist()
    shapes = {p.split("/")[-1]: (w, h) for p, w, h in zip(sorted(str(p) for p in root.rglob("*.jpg")), widths,
                                                          heights)}
    assert shapes == {"0.jpg": (45, 30), "1.jpg": (30, 45), "2.jpg": (30, 30), "3.jpg": (45, 30),  # 3:1 cut to 1.5
                      "4.jpg": (30, 30), "5.jpg": (45, 30)}
    streamed = load_dataset(DataConfig(**{**cfg.__dict__, "cache": "stream"}), "train")
    from vitssl.data.loader import BatchLoader

    batch, _ = next(BatchLoader(streamed, batch_size=6, device=torch.device("cpu"), shuffle=False, drop_last=False,
                                num_workers=0).epoch(0))
    assert batch.shape == (6, 4, 45, 45) and torch.equal(batch, mem.images)
    squares = load_dataset(DataConfig(**{**cfg.__dict__, "aspect": "square"}), "train")
    assert squares.images.shape == (6, 3, 30, 30)
    square_only = photo_folder(tmp_path / "squares", [(50, 50), (40, 40)])
    assert load_dataset(DataConfig(root=str(square_only), holdout=0, image_size=24, aspect="keep"),
                        "train").images.shape == (2, 3, 24, 24)  # nothing to keep: plain squares
