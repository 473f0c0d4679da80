"""Strict conversion of plain dicts (from YAML) into typed dataclasses.

Every config section is a dataclass; its type hints are the schema. An unknown key, a wrong type or
a value that a section's `check()` rejects raises ConfigError naming the dotted key and what is
allowed, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from typing import Any, Literal, Union

from vitssl.errors import ConfigError


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin in (list, tuple):
        args = typing.get_args(tp)
        if origin is tuple and Ellipsis not in args:
            return f"a list of {len(args)} values ({', '.join(_type_name(a) for a in args)})"
        return f"a list of {_type_name(args[0])}"
    if tp is type(None):
        return "null"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return {int: "an integer", float: "a number", bool: "true/false", str: "a string"}.get(tp, str(tp))


def _fail(key: str, tp: Any, value: Any) -> ConfigError:
    return ConfigError(f"config key '{key}' must be {_type_name(tp)}, got {value!r}")


def coerce(value: Any, tp: Any, key: str) -> Any:
    """Return `value` converted to type `tp`, or raise ConfigError naming `key`."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        if value in typing.get_args(tp):
            return value
        raise _fail(key, tp, value)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None:
            if type(None) in args:
                return None
            raise _fail(key, tp, value)
        for arg in (a for a in args if a is not type(None)):
            try:
                return coerce(value, arg, key)
            except ConfigError:
                continue
        raise _fail(key, tp, value)
    if origin in (list, tuple):
        if isinstance(value, (int, float, str)) and not isinstance(value, bool) and origin is list:
            value = [value]  # `key=5` on the command line for a list of one
        if not isinstance(value, (list, tuple)):
            raise _fail(key, tp, value)
        args = typing.get_args(tp)
        if origin is tuple and Ellipsis not in args:
            if len(value) != len(args):
                raise _fail(key, tp, value)
            return tuple(coerce(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        out = [coerce(v, args[0], f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(out) if origin is tuple else out
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, key)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise _fail(key, tp, value)
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise _fail(key, tp, value)
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads "1e-4" (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        raise _fail(key, tp, value)
    if tp is str:
        if isinstance(value, str):
            return value
        raise _fail(key, tp, value)
    if tp is Any:
        return value
    raise TypeError(f"unsupported schema type {tp!r} for {key}")


def unknown_key_error(prefix: str, name: str, allowed: list[str]) -> ConfigError:
    key = f"{prefix}.{name}" if prefix else name
    close = difflib.get_close_matches(name, allowed, n=1)
    hint = f" (did you mean '{prefix + '.' if prefix else ''}{close[0]}'?)" if close else ""
    return ConfigError(f"unknown config key '{key}'{hint}; allowed here: {', '.join(sorted(allowed))}")


def from_dict(cls: type, data: Any, prefix: str = "") -> Any:
    """Build dataclass `cls` from `data`, strictly; fields missing from `data` keep their defaults."""
    where = prefix or "the config"
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"config key '{where}' must be a mapping of keys to values, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs = {}
    for name, value in data.items():
        key = f"{prefix}.{name}" if prefix else str(name)
        if name not in fields:
            raise unknown_key_error(prefix, str(name), list(fields))
        f = fields[name]
        if isinstance(value, dict) and dataclasses.is_dataclass(hints[name]) \
                and f.default_factory is not dataclasses.MISSING:
            # a partial nested section keeps the defaults this field declares (which may differ from the
            # nested class's own: GMML's fill is noise, SiT's zeros)
            value = {**to_dict(f.default_factory()), **value}
        kwargs[name] = coerce(value, hints[name], key)
    obj = cls(**kwargs)
    check = getattr(obj, "check", None)
    if check is not None:
        check(prefix)
    return obj


def to_dict(obj: Any) -> Any:
    """Plain YAML-able data (tuples become lists)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    return obj


def require(ok: bool, key: str, message: str) -> None:
    """Raise ConfigError for `key` unless `ok`; `message` says what is allowed."""
    if not ok:
        raise ConfigError(f"config key '{key}' {message}")

