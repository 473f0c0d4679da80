"""Name -> (config dataclass, builder) for every pre-training method.

The trainer and the CLI only ever see a method through this table, so adding a method never
touches them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from vitssl.errors import ConfigError


@dataclass(frozen=True)
class MethodSpec:
    name: str
    config_cls: type
    build: Callable[..., Any]  # build(cfg: Config) -> Method (an nn.Module)
    summary: str
    defaults: dict = field(default_factory=dict)  # the method's defaults for shared sections, e.g. {'augment': {...}}


_METHODS: dict[str, MethodSpec] = {}


def register(spec: MethodSpec) -> None:
    _METHODS[spec.name] = spec


def get(name: Any) -> MethodSpec:
    import vitssl.methods  # noqa: F401  (registers the built-in methods)

    if name not in _METHODS:
        raise ConfigError(f"config key 'method.name' must be one of {', '.join(sorted(_METHODS))}, got {name!r}")
    return _METHODS[name]


def names() -> list[str]:
    import vitssl.methods  # noqa: F401

    return sorted(_METHODS)
