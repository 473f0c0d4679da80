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


def photo(path, w=500, h=375, exif=None):
    """A smooth photo-like JPEG: a coarse colour field blurred, red on the top half."""
    from PIL import ImageFilter

    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 256, (h // 25, w // 25, 3), dtype=np.uint8)).resize((w, h), Image.BICUBIC)
    arr = np.asarray(img.filter(ImageFilter.GaussianBlur(2))).copy()
    arr[: h // 2, :, 0] = 255
    kw = {"exif": exif} if exif is not None else {}
    Image.fromarray(arr).save(path, quality=92, **kw)
    return arr


def plain(path, size):
    from vitssl.data.images import center_square, to_rgb

    with Image.open(path) as img:
        return np.asarray(center_square(to_rgb(img), size))


@pytest.mark.parametrize("size", [64, 112, 224])
def test_jpeg_decoded_at_a_reduced_dct_scale_matches_the_plain_decode(tmp_path, size):
    photo(tmp_path / "p.jpg")
    fast, ref = decode_image(tmp_path / "p.jpg", size).astype(float), plain(tmp_path / "p.jpg", size).astype(float)
    assert fast.shape == ref.shape == (size, size, 3)
    assert np.abs(fast - ref).mean() < 3.0  # grey levels: what JPEG's own rounding moves (see benchmarks/decode.py)


def test_exif_rotation_is_still_applied_to_large_jpegs(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 3  # rotated 180 degrees: the red half is at the bottom once applied
    photo(tmp_path / "r.jpg", exif=exif.tobytes())
    out = decode_image(tmp_path / "r.jpg", 64)
    assert out[-8:, :, 0].mean() > 240 and out[:8, :, 0].mean() < 240


def test_keep_aspect_keeps_the_whole_photo_up_to_max_aspect(tmp_path):
    from vitssl.data.images import Decode

    wide = photo(tmp_path / "w.jpg", w=500, h=375)  # 4:3
    assert decode_image(tmp_path / "w.jpg", 64, aspect="keep").shape == (64, 85, 3)
    tall = Image.fromarray(wide).transpose(Image.Transpose.ROTATE_90)
    tall.save(tmp_path / "t.png")
    assert decode_image(tmp_path / "t.png", 64, aspect="keep").shape == (85, 64, 3)
    photo(tmp_path / "pano.jpg", w=600, h=150)  # 4:1: its ends are cut to 1.5:1
    assert decode_image(tmp_path / "pano.jpg", 32, aspect="keep", max_aspect=1.5).shape == (32, 48, 3)
    assert Decode(64, aspect="keep", max_aspect=1.5).canvas == 96 and Decode(64).canvas == 64
    keep, square = decode_image(tmp_path / "w.jpg", 64, aspect="keep"), decode_image(tmp_path / "w.jpg", 64)
    assert np.abs(keep[:, 10:74].astype(float) - square).mean() < 2  # the square is the photo's centre


@pytest.mark.parametrize("ext", ["jpg", "png"])  # the JPEG's DCT-scaled path, and the plain one
def test_crop_bottom_cuts_the_banner_in_full_size_pixels(tmp_path, ext):
    arr = np.full((400, 600, 3), 40, np.uint8)
    arr[-80:] = 255  # a white banner, 80 px of the full-size image
    Image.fromarray(arr).save(tmp_path / f"b.{ext}", quality=95)
    with_banner = decode_image(tmp_path / f"b.{ext}", 50, aspect="keep")
    assert with_banner.shape == (50, 75, 3) and with_banner[-5:].mean() > 200
    cut = decode_image(tmp_path / f"b.{ext}", 50, aspect="keep", crop_bottom=80)
    assert cut.shape == (50, 75, 3) and cut.max() < 60  # 320 x 600 left: no banner, still 1.875 -> cut to 1.5
    with pytest.raises(DataError, match="after data.crop_bottom=390"):
        decode_image(tmp_path / f"b.{ext}", 8, min_side=16, crop_bottom=390)
