"""The method contract (vitssl/methods/base.py), checked on every registered method: the built-in ones
and a toy one registered from its own folder (tests/methods/toy)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

import tests.methods.toy  # noqa: F401  (registers the toy method)
from tests.conftest import TINY_MODEL
from vitssl.config import load_config
from vitssl.engine import checkpoint as ckpt
from vitssl.engine.features import pool_tokens
from vitssl.methods import registry
from vitssl.methods.base import Method
from vitssl.models.vit import VisionTransformer

NAMES = registry.names()


def test_the_toy_and_every_built_in_method_are_registered():
    assert {"sit", "gmml", "mae", "randsac", "mocov3", "toy"} <= set(NAMES)


def build(name: str):
    cfg = load_config(None, [f"method.name={name}", *TINY_MODEL, "data.image_size=32"])
    torch.manual_seed(0)
    return registry.get(name).build(cfg), cfg


@pytest.mark.parametrize("name", NAMES)
def test_contract(name, tmp_path):
    cls = registry.get(name)
    assert cls.name == name and cls.summary and dataclasses.is_dataclass(cls.Config)
    method, cfg = build(name)
    assert isinstance(method, Method) and isinstance(method.encoder, VisionTransformer)
    assert type(cfg.method) is cls.Config
    for section, values in cls.recipe.items():  # the recipe sets the shared sections' defaults
        for key, value in values.items():
            got = getattr(getattr(cfg, section), key)
            assert (list(got) if isinstance(got, tuple) else got) == value, f"{section}.{key}"

    images = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    labels = torch.arange(4)
    out = method(images, labels)
    assert out["loss"].ndim == 0 and torch.isfinite(out["loss"])
    out["loss"].backward()
    no_grad = [n for n, p in method.encoder.named_parameters() if p.requires_grad and p.grad is None]
    assert no_grad == [], "the loss must train the whole encoder"
    assert all(isinstance(v, float) for v in method.after_step(1, 10).values())

    method.eval()
    for row, pic in method.pictures(images).items():
        assert pic.shape[:2] == (4, 3) and 0 <= pic.min() and pic.max() <= 1, row
    names = {n for n, _ in method.named_parameters()}
    assert method.no_weight_decay() <= names

    ckpt.save_atomic({"model": method.state_dict()}, tmp_path / "m.pt")  # checkpoint round trip
    again, _ = build(name)
    again.load_state_dict(ckpt.load(tmp_path / "m.pt")["model"])
    again.eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        feats = pool_tokens(again.encoder.forward_features(x), registry.pool_of(name))
        assert torch.equal(feats, pool_tokens(method.encoder.forward_features(x), cls.pool))
    assert feats.shape == (2, method.encoder.embed_dim)


def test_a_class_that_breaks_the_contract_is_refused():
    class NoName(Method):
        def forward(self, images, labels=None):
            return {}

    with pytest.raises(TypeError, match="declares no 'name'.*no 'summary'.*no 'Config'"):
        registry.register(NoName)

    @dataclasses.dataclass
    class Cfg:
        name: str = "positional"

    class Positional(Method):
        name, summary, Config, pool = "positional", "takes positional arguments", Cfg, "max"

        def __init__(self, encoder, cfg, augment):
            super().__init__(encoder=encoder, cfg=cfg, augment=augment)

        def forward(self, images, labels=None):
            return {}

    with pytest.raises(TypeError, match="pool must be one of cls, avg.*keyword-only encoder, cfg, augment"):
        registry.register(Positional)
    assert "positional" not in registry.names()


def test_an_unknown_method_names_the_known_ones():
    from vitssl.errors import ConfigError

    with pytest.raises(ConfigError, match="'method.name' must be one of .*gmml.*mae.*randsac.*sit.*got 'simclr'"):
        load_config(None, ["method.name=simclr"])


def test_a_method_from_another_package_is_found_through_its_entry_point(monkeypatch):
    @dataclasses.dataclass
    class PluginConfig:
        name: str = "plugin"

    class Plugin(Method):
        name, summary, Config = "plugin", "a method another package installs", PluginConfig

        def forward(self, images, labels=None):
            return {"loss": self.encoder.forward_features(images.float()).mean()}

    class EntryPoint:  # what importlib.metadata gives for `[project.entry-points."vitssl.methods"]`
        name, value = "plugin", "plugin_package.method"

        def load(self):
            registry.register(Plugin)

    monkeypatch.setattr(registry, "_plugins_loaded", False)
    monkeypatch.setattr(registry.metadata, "entry_points",
                        lambda group: [EntryPoint()] if group == "vitssl.methods" else [])
    assert registry.get("plugin") is Plugin
    assert load_config(None, ["method.name=plugin"]).method == PluginConfig()


def test_a_method_is_read_by_the_token_its_loss_trains():
    """Frozen features read the CLS token only where a loss trains it (contrastive / self-distillation);
    reconstruction-only methods are read by mean pooling (pure GMML read by CLS lost 2.7 k-NN points)."""
    pools = {n: registry.pool_of(n) for n in ("sit", "mocov3", "dino", "gmml", "mae", "randsac")}
    assert pools == {"sit": "cls", "mocov3": "cls", "dino": "cls", "gmml": "avg", "mae": "avg", "randsac": "avg"}
