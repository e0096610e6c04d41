"""Typed config dataclasses from YAML/dicts, validated at the edge with messages naming the key.

Used by both ``builder`` and ``train`` so that every config error reads the same way:
``config error: injection.theta_e_arcsec: low must be > 0 (got -1.0)``.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """An invalid or unknown configuration value; ``key`` is the dotted path of the offender."""

    def __init__(self, key: str, message: str):
        self.key = key
        super().__init__(f"{key}: {message}" if key else message)


def check(cond: bool, key: str, message: str) -> None:
    """Raise :class:`ConfigError` for ``key`` unless ``cond`` holds."""
    if not cond:
        raise ConfigError(key, message)


def check_between(value: float, key: str, lo: float, hi: float, why: str = "") -> None:
    """Validate a scalar in the closed interval ``[lo, hi]``; ``why`` is added to the message."""
    reason = f"{why}; " if why else ""
    check(lo <= value <= hi, key, f"must be in [{lo:g}, {hi:g}] ({reason}got {value})")


def check_range(pair: Any, key: str, lo: float | None = None, hi: float | None = None) -> None:
    """Validate a ``[low, high]`` pair: two finite numbers, low <= high, inside [lo, hi]."""
    check(
        isinstance(pair, list | tuple) and len(pair) == 2,
        key,
        f"expected [low, high], got {pair!r}",
    )
    a, b = (float(x) for x in pair)
    check(a <= b, key, f"low must be <= high (got {list(pair)})")
    if lo is not None:
        check(a >= lo, key, f"low must be >= {lo} (got {a})")
    if hi is not None:
        check(b <= hi, key, f"high must be <= {hi} (got {b})")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise ConfigError(key, f"expected a mapping, got {type(value).__name__}")
        return from_mapping(tp, value, key)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _coerce(value, args[0], key)
    if origin in (tuple, list):
        if not isinstance(value, list | tuple):
            raise ConfigError(key, f"expected a list, got {value!r}")
        args = typing.get_args(tp)
        inner = args[0] if args else Any
        if origin is tuple and len(args) > 1 and args[1] is not Ellipsis:
            if len(value) != len(args):
                raise ConfigError(
                    key, f"expected a list of {len(args)} values, got {len(value)}: {value!r}"
                )
        out = [_coerce(v, inner, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(out) if origin is tuple else out
    if origin is dict or tp is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(key, f"expected a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(key, f"expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
            raise ConfigError(key, f"expected an integer, got {value!r}")
        return int(value)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ConfigError(key, f"expected a number, got {value!r}")
        try:
            return float(value)
        except ValueError:
            raise ConfigError(key, f"expected a number, got {value!r}") from None
    if tp is str:
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise ConfigError(key, f"expected a string, got {value!r}")
        return str(value)
    return value


SECTIONS_FIELD = "sections"
"""Name of the dict field that holds a class's registered sections (see :func:`from_mapping`)."""


def _sections(cls: type) -> dict[str, type]:
    """``cls.config_sections()`` (name -> dataclass), or {} for a plain config class."""
    hook = getattr(cls, "config_sections", None)
    return dict(hook()) if callable(hook) else {}


def from_mapping(cls: type[T], data: Mapping[str, Any], prefix: str = "") -> T:
    """Build dataclass ``cls`` from ``data``; unknown keys and wrong types raise ConfigError.

    The one rule of every config level: nested dataclass fields are built recursively, missing
    keys take the dataclass default, unknown keys are refused, and ``validate(prefix)`` is called
    once, right after construction, if the class defines it; errors name the dotted key.

    A class whose set of sub-sections comes from a registry (e.g. one section per parent-input
    kind) defines a ``config_sections()`` classmethod returning ``{name: dataclass}`` and a
    ``sections`` dict field: each name is then a valid key, built like a nested field (absent
    ones from their defaults) and stored in ``obj.sections[name]``; :func:`to_dict` writes them
    back as ordinary keys.
    """
    hints = typing.get_type_hints(cls)
    sections = _sections(cls)
    names = {f.name for f in dataclasses.fields(cls)} - ({SECTIONS_FIELD} if sections else set())
    unknown = sorted(set(data) - names - set(sections))
    if unknown:
        where = f"{prefix}.{unknown[0]}" if prefix else unknown[0]
        valid = ", ".join(sorted(names | set(sections)))
        raise ConfigError(where, f"unknown key (valid keys: {valid})")
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        if name in sections:
            continue
        key = f"{prefix}.{name}" if prefix else name
        kwargs[name] = _coerce(value, hints[name], key)
    if sections:
        kwargs[SECTIONS_FIELD] = {
            name: _coerce(data.get(name, {}), tp, f"{prefix}.{name}" if prefix else name)
            for name, tp in sections.items()
        }
    obj = cls(**kwargs)
    validate = getattr(obj, "validate", None)
    if callable(validate):
        validate(prefix)
    return obj


def to_dict(obj: Any) -> Any:
    """Dataclass -> plain JSON/YAML-serialisable dict (tuples become lists)."""
    if dataclasses.is_dataclass(obj):
        sections = _sections(type(obj))
        out = {
            f.name: to_dict(getattr(obj, f.name))
            for f in dataclasses.fields(obj)
            if not (sections and f.name == SECTIONS_FIELD)
        }
        if sections:
            out.update({k: to_dict(v) for k, v in getattr(obj, SECTIONS_FIELD).items()})
        return out
    if isinstance(obj, list | tuple):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; a missing file or bad YAML raises ConfigError naming the file."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError("", f"config file not found: {p}")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as exc:
        raise ConfigError(
            "", f"config file {p} is not UTF-8 text ({exc.reason} at byte {exc.start})"
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError("", f"cannot parse YAML {p}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError("", f"config file {p} must hold a mapping at top level")
    return data


def dotted(key: str, value: Any) -> dict[str, Any]:
    """``dotted("a.b", 1)`` -> ``{"a": {"b": 1}}``."""
    node: Any = value
    for part in reversed(key.split(".")):
        node = {part: node}
    return node


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """``["optim.lr=1e-3", "model.meta_fields=[psfsize_r]"]`` -> nested mapping (YAML values).

    The parser of every ``--set KEY=VALUE`` flag (``train run``, ``builder make-shards`` ...).
    """
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        check(bool(sep) and bool(key), pair, "override must look like KEY=VALUE")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(key, f"cannot parse value {text!r} ({exc})") from None
        out = merge(out, dotted(key, value))
    return out


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Recursive dict merge: values in ``override`` win; nested mappings merge."""
    out = dict(base)
    for k, v in override.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = merge(out[k], v)
        else:
            out[k] = v
    return out
