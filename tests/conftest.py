"""Shared fixtures: small real data from ../shared/data/cifar10, a private dataset cache, tiny configs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
CIFAR = ROOT.parent / "shared" / "data" / "cifar10"

TINY_MODEL = ["model.patch_size=4", "model.embed_dim=64", "model.depth=2", "model.num_heads=2"]


@pytest.fixture(autouse=True)
def _isolated(tmp_path_factory, monkeypatch):
    """Each test gets its own dataset cache and a fixed seed; torch uses the 2 cores as in CI."""
    monkeypatch.setenv("VITSSL_CACHE", str(tmp_path_factory.mktemp("cache")))
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def cifar_root() -> Path:
    if not (CIFAR / "train").is_dir():
        pytest.skip(f"CIFAR-10 image folder not found at {CIFAR}")
    return CIFAR


@pytest.fixture
def cifar_small(cifar_root, tmp_path) -> Path:
    """A copy of 8 images per class from train and 4 from test: a class-folder tree with splits."""
    for split, n in (("train", 8), ("test", 4)):
        for cls in sorted(p.name for p in (cifar_root / split).iterdir()):
            dst = tmp_path / "cifar_small" / split / cls
            dst.mkdir(parents=True)
            for f in sorted((cifar_root / split / cls).iterdir())[:n]:
                shutil.copy(f, dst / f.name)
    return tmp_path / "cifar_small"


def tiny_overrides(tmp_path: Path, *extra: str) -> list[str]:
    """A config small enough that a training step takes a few milliseconds."""
    return TINY_MODEL + ["method.proj_hidden=64", "method.proj_dim=32", "data.synthetic_train=64",
                         "data.synthetic_test=32", "train.batch_size=16", "train.epochs=2", "optim.warmup_epochs=0",
                         "log.every_steps=1", "log.images_every=1", "log.progress=false", "log.tensorboard=false",
                         f"output_dir={tmp_path / 'run'}", "data.num_workers=0", *extra]
