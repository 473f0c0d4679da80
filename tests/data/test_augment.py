import math

import pytest
import torch
import torch.nn.functional as F
from kornia.filters import get_gaussian_kernel1d

from vitssl.config import AugmentConfig
from vitssl.data.augment import GRAY, Augment, colour_matrix, crop_params, gaussian_blur, resized_crop

MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)


def test_views_shape_and_reproducible():
    images = torch.randint(0, 256, (6, 3, 40, 40), dtype=torch.uint8)
    aug = Augment(AugmentConfig(), image_size=32, mean=MEAN, std=STD)
    torch.manual_seed(3)
    a = aug(images, 0)
    torch.manual_seed(3)
    assert torch.equal(a, aug(images, 0))
    assert a.shape == (6, 3, 32, 32) and a.dtype == torch.float32
    assert not torch.equal(a, aug(images, 1))


def test_views_from_a_shared_unit_batch_equal_views_from_uint8():
    images = torch.randint(0, 256, (6, 3, 40, 40), dtype=torch.uint8)
    aug = Augment(AugmentConfig(), image_size=32, mean=MEAN, std=STD)
    torch.manual_seed(3)
    expected = [aug(images, v) for v in (0, 1)]
    unit = aug.unit(images)
    kept = unit.clone()
    torch.manual_seed(3)
    assert all(torch.equal(e, aug(unit, v)) for e, v in zip(expected, (0, 1)))
    assert torch.equal(unit, kept)  # the shared batch is read, never written


def test_plain_is_centre_crop_normalised():
    images = torch.randint(0, 256, (2, 3, 36, 36), dtype=torch.uint8)
    aug = Augment(AugmentConfig(), image_size=32, mean=MEAN, std=STD)
    out = aug.plain(images)
    assert torch.allclose(aug.denormalize(out), images[..., 2:34, 2:34].float() / 255, atol=1e-6)


def test_crop_boxes_valid_and_scaled():
    cx, cy, w, h = crop_params(4000, (0.2, 1.0), (3 / 4, 4 / 3), "cpu")
    assert (w <= 1).all() and (h <= 1).all()
    assert (cx - w / 2 >= -1e-6).all() and (cx + w / 2 <= 1 + 1e-6).all()
    area = w * h
    assert area.min() >= 0.2 - 1e-5 and 0.5 < area.mean() < 0.65
    ratio = w / h
    assert ratio.min() >= 0.75 - 1e-4 and ratio.max() <= 4 / 3 + 1e-4


def test_full_crop_is_identity_and_flip_mirrors():
    x = torch.rand(2, 3, 8, 8)
    one, half = torch.ones(2), torch.full((2,), 0.5)
    same = resized_crop(x, 8, half, half, one, one, torch.tensor([False, True]))
    assert torch.allclose(same[0], x[0], atol=1e-5)
    assert torch.allclose(same[1], x[1].flip(-1), atol=1e-5)


@pytest.mark.parametrize("mode", ["bicubic", "bilinear"])
def test_crop_grid_equals_affine_grid(mode):
    """The plain way: a full affine grid from the crop matrix, as torchvision's resized crop + flip."""
    torch.manual_seed(0)
    x = torch.rand(6, 3, 40, 40)
    cx, cy, w, h = crop_params(6, (0.08, 1.0), (3 / 4, 4 / 3), "cpu")
    flip = torch.rand(6) < 0.5
    theta = torch.zeros(6, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2] = w * torch.where(flip, -1.0, 1.0), cx * 2 - 1
    theta[:, 1, 1], theta[:, 1, 2] = h, cy * 2 - 1
    grid = F.affine_grid(theta, [6, 3, 24, 24], align_corners=False)
    want = F.grid_sample(x, grid, mode=mode, padding_mode="border", align_corners=False).clamp(0, 1)
    assert torch.allclose(resized_crop(x, 24, cx, cy, w, h, flip, mode), want, atol=1e-5)


def test_augment_crops_bicubically_by_default(monkeypatch):
    """Official SiT and MAE resize their crops bicubically; `augment.interpolation=bilinear` is the option."""
    import vitssl.data.augment as aug_mod
    from vitssl.config import load_config

    seen = []
    real = aug_mod.resized_crop
    monkeypatch.setattr(aug_mod, "resized_crop", lambda *a: seen.append(a[-1]) or real(*a))
    for extra, mode in (([], "bicubic"), (["augment.interpolation=bilinear"], "bilinear")):
        cfg = load_config(None, extra)
        Augment(cfg.augment, image_size=16, mean=cfg.data.mean, std=cfg.data.std)(
            torch.randint(0, 256, (2, 3, 16, 16), dtype=torch.uint8))
        assert seen[-1] == mode


def _reference_jitter(x, b, c, s, hue_angle):
    """Sequential brightness -> contrast -> saturation -> hue (YIQ), no intermediate clamps."""
    gray = torch.tensor(GRAY).view(1, 3, 1, 1)
    x = x * b
    m = (x * gray).sum(1, keepdim=True).mean((2, 3), keepdim=True)
    x = c * x + (1 - c) * m
    g = (x * gray).sum(1, keepdim=True)
    x = s * x + (1 - s) * g
    yiq = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
    rot = torch.tensor([[1, 0, 0], [0, math.cos(hue_angle), -math.sin(hue_angle)],
                        [0, math.sin(hue_angle), math.cos(hue_angle)]])
    m3 = torch.linalg.inv(yiq) @ rot @ yiq
    return torch.einsum("ij,bjhw->bihw", m3, x)


def test_colour_matrix_equals_sequential_ops(monkeypatch):
    x = torch.rand(1, 3, 8, 8)
    draws = iter([torch.tensor([0.0]),  # jitter on
                  torch.tensor([0.75]), torch.tensor([0.25]), torch.tensor([1.0]), torch.tensor([0.9]),  # factors
                  torch.tensor([[0.1, 0.2, 0.3, 0.4]]),  # op order 0, 1, 2, 3
                  torch.tensor([1.0])])  # no grayscale
    monkeypatch.setattr(torch, "rand", lambda *a, **k: next(draws))
    a, o = colour_matrix(x, jitter_p=0.8, brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1, grayscale_p=0.2)
    got = torch.einsum("bij,bjhw->bihw", a, x) + o[:, :, None, None]
    # factors: b = 0.6 + 0.8 * 0.75, c = 0.6 + 0.8 * 0.25, s = 0.8 + 0.4, hue = (-0.1 + 0.2 * 0.9) * 2 pi
    want = _reference_jitter(x, 1.2, 0.8, 1.2, 0.08 * 2 * math.pi)
    assert torch.allclose(got, want, atol=1e-5)


def test_grayscale_only():
    x = torch.rand(3, 3, 4, 4)
    a, o = colour_matrix(x, jitter_p=0.0, brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1, grayscale_p=1.0)
    y = torch.einsum("bij,bjhw->bihw", a, x) + o[:, :, None, None]
    assert torch.allclose(y[:, 0], y[:, 1]) and torch.allclose(y[:, 1], y[:, 2])
    assert torch.allclose(y[:, 0], (x * torch.tensor(GRAY).view(1, 3, 1, 1)).sum(1), atol=1e-6)


def _conv_blur(x, sigma):
    """The plain way: reflect padding and a grouped convolution with one kernel per image and channel."""
    b, c, h, w = x.shape
    radius = min(int(math.ceil(3 * float(sigma.max()))), (min(h, w) - 1) // 2)
    k = get_gaussian_kernel1d(2 * radius + 1, sigma[:, None]).repeat_interleave(c, 0)
    y = x.reshape(1, b * c, h, w)
    y = F.conv2d(F.pad(y, (radius, radius, 0, 0), mode="reflect"), k[:, None, None, :], groups=b * c)
    y = F.conv2d(F.pad(y, (0, 0, radius, radius), mode="reflect"), k[:, None, :, None], groups=b * c)
    return y.view(b, c, h, w)


@pytest.mark.parametrize("shape", [(5, 3, 32, 32), (2, 3, 37, 50), (3, 1, 15, 15), (1, 3, 96, 64), (2, 3, 224, 224)])
def test_tiled_blur_equals_convolution(shape):  # whole tiles, ragged last tiles, one tile smaller than 32
    torch.manual_seed(0)
    x, sigma = torch.rand(shape), torch.rand(shape[0]) * 3 + 0.1
    fast = gaussian_blur(x, sigma)
    assert fast.shape == x.shape and fast.is_contiguous()
    assert torch.allclose(fast, _conv_blur(x, sigma), atol=1e-6)


def test_blur_per_image_sigma():
    x = torch.zeros(2, 1, 15, 15)
    x[:, :, 7, 7] = 1
    y = gaussian_blur(x, torch.tensor([0.5, 2.0]))
    assert torch.allclose(y.sum((1, 2, 3)), torch.ones(2), atol=1e-4)  # mass preserved
    assert y[0, 0, 7, 7] > y[1, 0, 7, 7]  # the wider sigma spreads more


@pytest.mark.parametrize("view", [0, 1])
def test_no_augmentation_config_is_plain(view):
    cfg = AugmentConfig(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip_p=0, jitter_p=0, grayscale_p=0,
                        blur_p=(0, 0), solarize_p=(0, 0))
    images = torch.randint(0, 256, (2, 3, 16, 16), dtype=torch.uint8)
    aug = Augment(cfg, image_size=16, mean=MEAN, std=STD)
    assert torch.allclose(aug(images, view), aug.plain(images), atol=1e-5)


def _canvas(photo: torch.Tensor, side: int) -> torch.Tensor:
    """A float (3, h, w) photo -> a (1, 4, side, side) canvas as the decoder stores it."""
    import numpy as np

    from vitssl.data.images import to_canvas

    arr = (photo.permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
    return torch.from_numpy(to_canvas(np.ascontiguousarray(arr), side)).permute(2, 0, 1)[None].float() / 255


@pytest.mark.parametrize("hw", [(16, 24), (24, 16), (20, 20)], ids=["landscape", "portrait", "square"])
def test_a_whole_crop_of_a_canvas_is_the_whole_photo(hw):
    """Crops of a photo kept whole come from its own extent: the crop of all of it (scale 1, its own ratio)
    is the photo resized, whatever its shape, and none of the canvas around it."""
    from vitssl.data.augment import random_crop

    h, w = hw
    photo = (torch.arange(h * w).view(1, h, w).float() / (h * w)).expand(3, h, w) * torch.tensor([1, .5, .25])[:, None,
                                                                                                              None]
    x = _canvas(photo, 24)
    out = random_crop(x, 12, (1.0, 1.0), (w / h, w / h), flip_p=0.0, mode="bilinear")
    want = F.interpolate(x[:, :3, (24 - h) // 2:(24 - h) // 2 + h, (24 - w) // 2:(24 - w) // 2 + w], size=(12, 12),
                         mode="bilinear", align_corners=False)
    assert torch.allclose(out, want, atol=2 / 255)


def test_canvas_crops_keep_the_pixel_ratio_and_reach_every_part_of_the_photo():
    from vitssl.data.augment import photo_box

    photo = torch.zeros(3, 16, 24)
    photo[0, :, :4], photo[2, :, -4:] = 1, 1  # red on the left end, blue on the right end: outside the centre square
    x = _canvas(photo, 24).expand(4000, -1, -1, -1)
    _, (left, top, pw, ph) = photo_box(x)
    assert torch.allclose(torch.stack([left[0], top[0], pw[0], ph[0]]), torch.tensor([0, 4 / 24, 1, 16 / 24]))
    cx, cy, w, h = crop_params(4000, (0.2, 1.0), (3 / 4, 4 / 3), "cpu", aspect=pw / ph)
    ratio = (w * 24) / (h * 16)  # in pixels of the photo
    assert ratio.min() >= 0.75 - 1e-4 and ratio.max() <= 4 / 3 + 1e-4 and (w <= 1).all() and (h <= 1).all()
    aug = Augment(AugmentConfig(crop_scale=(0.08, 1.0), jitter_p=0, grayscale_p=0, blur_p=(0, 0),
                                solarize_p=(0, 0)), image_size=8, mean=(0, 0, 0), std=(1, 1, 1))
    torch.manual_seed(0)
    out = aug(x.clone())
    assert (out[:, 0] > 0.5).any(2).any(1).float().mean() > 0.2  # both ends are seen
    assert (out[:, 2] > 0.5).any(2).any(1).float().mean() > 0.2
    centre = Augment(AugmentConfig(), image_size=16, mean=(0, 0, 0), std=(1, 1, 1)).plain((x[:2] * 255).round())
    assert torch.allclose(centre, photo[:, :, 4:20].expand(2, -1, -1, -1))  # evaluation: the centre crop
