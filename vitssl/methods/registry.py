"""Name -> method class, for every pre-training method; the contract is checked on registration.

The built-in methods register when `vitssl` is imported; a method installed by another package
registers through the `vitssl.methods` entry-point group (`name = "package.module"`, the module
calls `register`). Training, evaluation and the CLI see a method only through this table.
"""

from __future__ import annotations

import dataclasses
import inspect
import sys
from importlib import metadata

from vitssl.config.registry import MethodSection, register_section
from vitssl.errors import ConfigError
from vitssl.methods.base import POOLS, Method

_METHODS: dict[str, type[Method]] = {}
_plugins_loaded = False


def _contract_errors(cls) -> list[str]:
    """What `cls` lacks of the contract in vitssl.methods.base (empty when it keeps it)."""
    if not (isinstance(cls, type) and issubclass(cls, Method)):
        return [f"{cls!r} is not a subclass of vitssl.methods.base.Method"]
    errors = []
    for attr in ("name", "summary", "Config"):
        if not getattr(cls, attr, None):
            errors.append(f"declares no {attr!r}")
    config = getattr(cls, "Config", None)
    if config is not None and not dataclasses.is_dataclass(config):
        errors.append("its Config is not a dataclass")
    elif config is not None and getattr(config, "name", None) != getattr(cls, "name", None):
        errors.append(f"its Config's default name is {getattr(config, 'name', None)!r}, not {cls.name!r}")
    if cls.pool not in POOLS:
        errors.append(f"pool must be one of {', '.join(POOLS)}, got {cls.pool!r}")
    if not isinstance(cls.recipe, dict):
        errors.append("recipe must be a dict of shared sections")
    params = inspect.signature(cls.__init__).parameters
    if any(params.get(k) is None or params[k].kind is not inspect.Parameter.KEYWORD_ONLY
           for k in ("encoder", "cfg", "augment")):
        errors.append("its __init__ must take keyword-only encoder, cfg, augment")
    if cls.forward is Method.forward:
        errors.append("implements no forward")
    return errors


def register(cls: type[Method]) -> type[Method]:
    """Register a method class (usable as a decorator); raises TypeError when it breaks the contract."""
    errors = _contract_errors(cls)
    if errors:
        raise TypeError(f"method {getattr(cls, 'name', cls)!r} breaks the method contract: {'; '.join(errors)}")
    _METHODS[cls.name] = cls
    register_section(MethodSection(cls.name, cls.Config, dict(cls.recipe)))
    return cls


def _load_plugins() -> None:
    """Import the modules of the `vitssl.methods` entry points once (each registers its method)."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for ep in metadata.entry_points(group="vitssl.methods"):
        try:
            ep.load()
        except Exception as e:  # a broken plugin must not stop the built-in methods
            print(f"warning: method plugin {ep.name!r} ({ep.value}) failed to load: {e}", file=sys.stderr)


def get(name) -> type[Method]:
    if name not in _METHODS:
        _load_plugins()
    if name not in _METHODS:
        raise ConfigError(f"config key 'method.name' must be one of {', '.join(sorted(_METHODS))}, got {name!r}")
    return _METHODS[name]


def names() -> list[str]:
    _load_plugins()
    return sorted(_METHODS)


def pool_of(name) -> str:
    """How an encoder pre-trained by method `name` is read ('cls' or 'avg'); 'avg' for an encoder no
    registered method made (random init, supervised, imported weights)."""
    if name not in _METHODS:
        _load_plugins()
    return _METHODS[name].pool if name in _METHODS else "avg"
