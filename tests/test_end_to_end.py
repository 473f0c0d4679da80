"""Pre-training on real images (a CIFAR-10 subset from ../shared/data/cifar10): the loss must fall."""

import json

import pytest

from tests.conftest import TINY_MODEL
from vitssl.config import load_config
from vitssl.training.pretrain import pretrain

EXTRA = {"sit": ["method.proj_hidden=256", "method.proj_dim=64", "method.recon_blocks=null"],
         "gmml": ["method.proj_hidden=256", "method.proj_dim=64", "method.recon_blocks=null"],
         "mae": ["method.decoder_dim=64", "method.decoder_depth=2", "method.decoder_heads=2"]}


@pytest.mark.slow
@pytest.mark.parametrize("method", ["sit", "gmml", "mae"])
def test_pretrain_on_cifar_subset_loss_falls(cifar_root, tmp_path, method):
    cfg = load_config(f"{method}_cifar10", TINY_MODEL + EXTRA[method] + [
        f"data.root={cifar_root}", "data.limit=640", "data.num_workers=2", "train.batch_size=32",
        "train.epochs=3", "optim.base_lr=1e-2", "optim.warmup_epochs=0.25", "log.every_steps=1",
        "log.images_every=1", "log.progress=false", f"output_dir={tmp_path / 'run'}"])
    summary = pretrain(cfg)
    assert summary["step"] == 60 and summary["dataset"]["images"] == 640
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    first = sum(r["loss"] for r in rows[:5]) / 5
    last = sum(r["loss"] for r in rows[-5:]) / 5
    assert last < 0.9 * first, (first, last)
    assert (tmp_path / "run" / "images" / "epoch_0003.png").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("config", ["randsac_cifar10", "randsac/blob_11to5"])
def test_randsac_on_cifar_subset_loss_falls_and_encoder_gives_features(cifar_root, tmp_path, config):
    import torch

    from vitssl.engine.checkpoint import load as load_checkpoint
    from vitssl.models.vit import encoder_from_config

    cfg = load_config(config, TINY_MODEL + [
        f"data.root={cifar_root}", "data.limit=640", "data.num_workers=2", "train.batch_size=32",
        "train.epochs=3", "optim.base_lr=1e-2", "optim.warmup_epochs=0.25", "method.decoder_dim=64",
        "method.decoder_depth=2", "method.decoder_heads=2", "log.every_steps=1", "log.images_every=1",
        "log.progress=false", f"output_dir={tmp_path / 'run'}"])
    summary = pretrain(cfg)
    assert summary["step"] == 60
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    first = sum(r["loss"] for r in rows[:5]) / 5
    last = sum(r["loss"] for r in rows[-5:]) / 5
    assert last < 0.9 * first, (first, last)
    assert (tmp_path / "run" / "images" / "epoch_0003.png").is_file()
    # the kept encoder runs with full attention: no mask, no decoder, average-pooled patch tokens
    state = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")["model"]
    encoder = encoder_from_config(cfg.model, cfg.data.image_size)
    encoder.load_encoder_state({k[len("encoder."):]: v for k, v in state.items() if k.startswith("encoder.")})
    images = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        feats = encoder.pool(encoder.forward_features(images), "avg")
    assert feats.shape == (4, 64) and torch.isfinite(feats).all()
