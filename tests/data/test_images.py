import numpy as np
import pytest
from PIL import Image

from vitssl.data.images import decode_image
from vitssl.errors import DataError


def save(tmp_path, name, img):
    path = tmp_path / name
    img.save(path)
    return path


@pytest.mark.parametrize("mode", ["L", "P", "CMYK", "RGB", "I;16", "I", "F", "1"])
def test_modes_become_rgb(tmp_path, mode):
    arr = (np.arange(40 * 30).reshape(30, 40) % 256).astype(np.uint8)
    img = Image.fromarray(arr).convert(mode) if mode not in ("I;16",) else \
        Image.fromarray((arr.astype(np.uint16) * 257))
    ext = "tif" if mode in ("I;16", "I", "F", "CMYK") else "png"
    out = decode_image(save(tmp_path, f"x.{ext}", img), 16)
    assert out.shape == (16, 16, 3) and out.dtype == np.uint8
    if mode in ("L", "I;16", "RGB"):
        assert out.max() > 200 and out.min() < 50  # the range survives conversion


def test_sixteen_bit_png_is_scaled_not_clipped(tmp_path):
    arr = np.full((20, 20), 65535 // 2, dtype=np.uint16)
    out = decode_image(save(tmp_path, "x.png", Image.fromarray(arr)), 8)
    assert 120 <= out.mean() <= 135


def test_rgba_composited_on_white(tmp_path):
    rgba = Image.new("RGBA", (20, 20), (255, 0, 0, 0))  # fully transparent red
    out = decode_image(save(tmp_path, "x.png", rgba), 8)
    assert (out == 255).all()


def test_centre_square_resize(tmp_path):
    arr = np.zeros((20, 60, 3), np.uint8)
    arr[:, 20:40] = 255  # white centre third
    out = decode_image(save(tmp_path, "x.png", Image.fromarray(arr)), 20)
    assert out.shape == (20, 20, 3) and out.mean() > 250


def test_corrupt_file_names_path(tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(DataError, match="broken.jpg.*bad_images=skip"):
        decode_image(bad, 8)


def test_truncated_jpeg(tmp_path):
    path = save(tmp_path, "t.jpg", Image.fromarray(np.random.randint(0, 255, (64, 64, 3), np.uint8)))
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(DataError, match="t.jpg"):
        decode_image(path, 8)


def test_image_smaller_than_patch(tmp_path):
    path = save(tmp_path, "tiny.png", Image.new("RGB", (3, 3)))
    with pytest.raises(DataError, match="3x3 px, smaller than one 4x4 patch"):
        decode_image(path, 32, min_side=4)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        decode_image(tmp_path / "nope.png", 8)
