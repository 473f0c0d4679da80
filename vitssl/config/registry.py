"""Which `method:` sections exist, and each method's recipe for the shared sections.

Config never imports a method: a method registers its section here when it is registered itself
(`vitssl.methods.registry.register`), and a config is built from this table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from vitssl.errors import ConfigError


@dataclass(frozen=True)
class MethodSection:
    name: str
    config_cls: type  # the dataclass of the `method:` section
    recipe: dict = field(default_factory=dict)  # defaults for the shared sections


_SECTIONS: dict[str, MethodSection] = {}


def register_section(section: MethodSection) -> None:
    _SECTIONS[section.name] = section


def section(name: Any) -> MethodSection:
    if name not in _SECTIONS:
        known = ", ".join(sorted(_SECTIONS)) or "(none registered: import vitssl first)"
        raise ConfigError(f"config key 'method.name' must be one of {known}, got {name!r}")
    return _SECTIONS[name]


def names() -> list[str]:
    return sorted(_SECTIONS)
