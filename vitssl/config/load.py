"""YAML files + dotted `key=value` overrides -> a validated Config, and back to YAML."""

from __future__ import annotations

import copy
import dataclasses
import os
import sys
import typing
from pathlib import Path
from typing import Any

import yaml

from vitssl.config.registry import section as method_section
from vitssl.config.schema import from_dict, to_dict
from vitssl.config.sections import Config
from vitssl.errors import ConfigError, first_line

DEFAULT_METHOD = "sit"


def build_config(data: dict | None, *, cross_check: bool = True) -> Config:
    """Validate a plain dict (as read from YAML) into a Config. `cross_check=False` skips the method's
    checks against the other sections (e.g. segment sizes against the token grid): for reading defaults."""
    data = copy.deepcopy(data) if data else {}
    if not isinstance(data, dict):
        raise ConfigError(f"a config must be a mapping of sections, got {data!r}")
    method = data.pop("method", None) or {}
    if not isinstance(method, dict):
        raise ConfigError(f"config key 'method' must be a mapping with a 'name', got {method!r}")
    method = dict(method)
    spec = method_section(method.get("name", DEFAULT_METHOD))
    method["name"] = spec.name
    cfg = from_dict(Config, merge(spec.recipe, data))
    cfg.method = from_dict(spec.config_cls, method, "method")
    check = getattr(cfg.method, "check_with", None)
    if check is not None and cross_check:
        check(cfg)
    return cfg


def merge(base: dict, top: dict) -> dict:
    """`top` over `base`, section by section (nested mappings merge, everything else replaces)."""
    out = copy.deepcopy(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _schema_type(data: dict, parts: list[str]) -> Any:
    """The declared type at a dotted path, or None where the schema has no such key."""
    if parts[0] == "method":
        try:
            cls = method_section((data.get("method") or {}).get("name", DEFAULT_METHOD)).config_cls
        except ConfigError:
            return None
        parts = parts[1:]
    else:
        cls = Config
    tp: Any = cls
    for part in parts:
        if not dataclasses.is_dataclass(tp):
            return None
        hints = typing.get_type_hints(tp)
        if part not in hints:
            return None
        tp = hints[part]
    return tp


def _parse_value(raw: str, tp: Any) -> Any:
    """A command-line value: YAML syntax, except that a string field takes the text as written."""
    if tp is str or (typing.get_origin(tp) is typing.Union and str in typing.get_args(tp)):
        return None if raw in ("null", "~", "None") and tp is not str else raw
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw


def _switch_method(data: dict, overrides: list[str]) -> dict:
    """`method.name=OTHER` on the command line starts OTHER from its own defaults: the config file's
    keys of its method section belong to the file's method and are dropped, with a note."""
    names = [item.partition("=")[2].strip() for item in overrides if item.partition("=")[0].strip() == "method.name"]
    section = data.get("method")
    if not names or not isinstance(section, dict):
        return data
    old = section.get("name", DEFAULT_METHOD)
    dropped = sorted(k for k in section if k != "name")
    if names[-1] != old and dropped:
        print(f"note: method.name={names[-1]} replaces the config's method section (method {old}: "
              f"{', '.join(dropped)} not used)", file=sys.stderr)
        data = {**data, "method": {}}
    return data


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Set each `a.b.c=value` in a copy of `data`."""
    data = copy.deepcopy(_switch_method(data, overrides))
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key or any(not p for p in key.split(".")):
            raise ConfigError(f"override '{item}' must look like section.key=value, e.g. train.epochs=10")
        parts = key.split(".")
        value = _parse_value(raw, _schema_type(data, parts))
        node = data
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"override '{item}': '{'.'.join(parts[:i + 1])}' is a value, not a section")
            node = child
        node[parts[-1]] = value
    return data


BUILTIN_DIR = Path(__file__).resolve().parent.parent / "configs"


def builtin_configs() -> list[str]:
    return sorted(p.relative_to(BUILTIN_DIR).with_suffix("").as_posix() for p in BUILTIN_DIR.rglob("*.yaml"))


def resolve_config_path(name: str | os.PathLike, relative_to: Path | None = None) -> Path:
    """A file path (also relative to `relative_to`), or the name of a shipped config ('sit_cifar10',
    'randsac/patch_raster', or the same as 'configs/....yaml')."""
    path = Path(name)
    for candidate in ([relative_to / path] if relative_to is not None else []) + [path]:
        if candidate.is_file():
            return candidate
    rel = Path(*path.parts[1:]) if path.parts[:1] == ("configs",) else path
    builtin = BUILTIN_DIR / (rel if rel.suffix == ".yaml" else rel.with_name(rel.name + ".yaml"))
    if builtin.is_file():
        return builtin
    raise ConfigError(f"config file '{name}' does not exist; give a YAML file or one of the built-in configs: "
                      f"{', '.join(builtin_configs())}")


def read_yaml(path: str | os.PathLike, relative_to: Path | None = None, _seen: tuple = ()) -> dict:
    """A config file, with `base: OTHER` (a path relative to this file, or a shipped config) merged under it."""
    path = resolve_config_path(path, relative_to)
    if path.resolve() in _seen:
        raise ConfigError(f"config file '{path}' includes itself through 'base:'")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or first_line(e)
        raise ConfigError(f"config file '{path}' is not valid YAML{where}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file '{path}' must hold a mapping of sections, got {type(data).__name__}")
    base = data.pop("base", None)
    if base is None:
        return data
    if not isinstance(base, str):
        raise ConfigError(f"config key 'base' in '{path}' must name one config file, got {base!r}")
    return merge(read_yaml(base, path.parent, _seen + (path.resolve(),)), data)


def load_config(path: str | os.PathLike | None = None, overrides: list[str] | None = None) -> Config:
    data = read_yaml(path) if path is not None else {}
    return build_config(apply_overrides(data, overrides or []))


def config_to_dict(cfg: Config) -> dict:
    data = to_dict(cfg)
    data["method"] = to_dict(cfg.method)
    return data


def save_config(cfg: Config, path: str | os.PathLike) -> None:
    text = yaml.safe_dump(config_to_dict(cfg), sort_keys=False)
    tmp = Path(str(path) + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
