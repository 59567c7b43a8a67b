"""The one config loader of movid: a typed dataclass schema, filled from a YAML file and dotted ``--set key=value``
overrides, every value checked against its annotation and every number against its field's bounds; each
error is one line that names the key.

Both configs use it: the build's (``pipeline/config.py``) and the trainer's (``model/config.py``) keep their
dataclasses in their own layer and call ``load_tree`` + ``from_dict`` + ``check_numbers`` from here. It lives
in ``schemas`` because that is the one layer both may import (it imports nothing else of movid): a config is
a schema of the user's input, as the Arrow schemas are of the tables.

A field declares its constraints and its documentation next to itself with ``num`` / ``doc``:
``temperature: float = num(0.7, le=2, doc="sampling temperature")``. Every int/float must be finite and,
unless its field declares ``gt``/``ge``, >= 0 (no count, rate, size or price in movid is negative).
"""

from __future__ import annotations

import dataclasses
import math
import re
import reprlib
import types
import typing
from dataclasses import field
from pathlib import Path

import yaml

__all__ = [
    "ConfigError",
    "MAX_NESTING",
    "check_numbers",
    "field_keys",
    "from_dict",
    "load_tree",
    "num",
    "one_line",
    "quote",
    "safe_yaml",
    "set_dotted",
]

MAX_NESTING = 64  # a config deeper than this is not a movid config (and YAML's parser recurses)
# A YAML 1.2 float that YAML 1.1 (PyYAML) reads as a string: an exponent without a dot, ``1e-3``. Only a field
# typed float accepts it, so a string field keeps the text as written.
_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


class ConfigError(ValueError):
    """A config problem found before any work starts; the message names the key or path."""


def num(default, *, doc: str = "", **bounds):
    """A numeric field with bounds beyond the default ``>= 0`` (``gt``, ``ge``, ``le``), checked on load."""
    return field(default=default, metadata={**bounds, **({"doc": doc} if doc else {})})


def check_numbers(node, prefix: str = "") -> None:
    """Every int/float of the tree under ``node``: finite, and within its field's bounds (``metadata`` gt / ge /
    le; ``ge=0`` when a field declares neither gt nor ge)."""
    for f in dataclasses.fields(node):
        value, key = getattr(node, f.name), f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value):
            check_numbers(value, f"{key}.")
            continue
        values = value if isinstance(value, (list, tuple)) else [value]  # (e.g. optim.betas: each number)
        for v in values:
            if not isinstance(v, bool) and isinstance(v, (int, float)):
                _check_number(v, f.metadata, key)


def _check_number(value: int | float, bounds, key: str) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{key}: must be a finite number, got {value}")
    gt, ge, le = bounds.get("gt"), bounds.get("ge", 0 if "gt" not in bounds else None), bounds.get("le")
    if gt is not None and not value > gt:
        raise ConfigError(f"{key}: must be > {gt}, got {value}")
    if ge is not None and not value >= ge:
        raise ConfigError(f"{key}: must be >= {ge}, got {value}")
    if le is not None and not value <= le:
        raise ConfigError(f"{key}: must be <= {le}, got {value}")


def field_keys(cls, prefix: str = "") -> list[str]:
    """The dotted key of every leaf field of the dataclass ``cls`` (a nested dataclass is a section)."""
    hints = typing.get_type_hints(cls)
    keys = []
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            keys += field_keys(tp, f"{prefix}{f.name}.")
        else:
            keys.append(f"{prefix}{f.name}")
    return keys


def _coerce_union(value, tp, key: str):
    args = typing.get_args(tp)
    if value is None and type(None) in args:
        return None
    errors = []
    for arg in args:
        if arg is type(None):
            continue
        try:
            return _coerce(value, arg, key)
        except ConfigError as exc:
            errors.append(str(exc))
    raise ConfigError(errors[0] if errors else f"{key}: invalid value {value!r}")


def _coerce_scalar(value, tp, key: str):
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is bool and isinstance(value, bool):
        return value
    if tp is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if tp is float and number:
        return float(value)
    if tp is float and isinstance(value, str) and _FLOAT.fullmatch(value.strip()):
        return float(value)
    if tp is str and (isinstance(value, str) or number):
        return value if isinstance(value, str) else str(value)
    expected = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(tp)
    if expected is None:
        raise ConfigError(f"{key}: unsupported config type {tp}")
    raise ConfigError(f"{key}: expected {expected}, got {quote(value)}")


def _coerce(value, tp, key: str):
    """Check/convert a YAML value to the annotated type ``tp``; raise ConfigError naming ``key``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return _coerce_union(value, tp, key)
    if origin in (list, tuple):  # tuple[T, ...]: a YAML list, kept immutable
        if not isinstance(value, (list, tuple)) or (origin is list and not isinstance(value, list)):
            raise ConfigError(f"{key}: expected a list, got {quote(value)}")
        item_tp = typing.get_args(tp)[0]
        return origin(_coerce(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value))
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {quote(value)}")
        return from_dict(tp, value, key)
    return _coerce_scalar(value, tp, key)


def from_dict(cls, data: dict, prefix: str = ""):
    """An instance of the dataclass ``cls`` from a parsed YAML mapping; unknown keys and mistyped values are
    ConfigErrors naming the key."""
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    for k in data:
        if k not in known:
            where = f"{prefix}.{k}" if prefix else str(k)
            where = where if where.isprintable() else repr(where)[1:-1]
            raise ConfigError(f"{where[:120]}: unknown config key (known here: {', '.join(sorted(known))})")
    kwargs = {k: _coerce(v, hints[k], f"{prefix}.{k}" if prefix else k) for k, v in data.items()}
    return cls(**kwargs)


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother = 3, 60, 60


def quote(value) -> str:
    """A value for an error message, on one line and short, whatever its size or nesting (reprlib's limits)."""
    return _REPR.repr(value)


def one_line(exc: BaseException, limit: int = 300) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _depth(value, limit: int) -> int:
    """Nesting depth of a parsed YAML value, without recursing (a hostile file may nest thousands deep) and
    visiting each container once (YAML aliases can share one list exponentially many times)."""
    deepest, stack, seen = 0, [(value, 1)], set()
    while stack:
        v, d = stack.pop()
        if isinstance(v, (dict, list)) and id(v) not in seen:
            seen.add(id(v))
            deepest = max(deepest, d)
            if deepest > limit:
                return deepest
            stack += [(x, d + 1) for x in (v.values() if isinstance(v, dict) else v)]
    return deepest


def safe_yaml(text: str, where: str):
    """``yaml.safe_load`` (no Python tags, no code), every failure a one-line ConfigError naming ``where``."""
    try:
        value = yaml.safe_load(text)
    except RecursionError:
        raise ConfigError(f"{where}: nested too deeply to be a movid config") from None
    except (yaml.YAMLError, ValueError, TypeError, OverflowError) as exc:  # (ValueError: e.g. a 5,000-digit int)
        raise ConfigError(f"{where}: not valid YAML: {one_line(exc)}") from None
    if _depth(value, MAX_NESTING) > MAX_NESTING:
        raise ConfigError(f"{where}: nested more than {MAX_NESTING} levels deep; not a movid config")
    return value


def set_dotted(tree: dict, dotted: str, raw: str) -> None:
    """``tree[a][b][c] = value`` for ``a.b.c``; the value parsed by the same safe YAML loader as files (ints,
    floats, bools, null and lists get their natural types)."""
    keys = dotted.split(".")
    node = tree
    for k in keys[:-1]:
        node = node.setdefault(k, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{dotted}: {k!r} is not a section")
    node[keys[-1]] = safe_yaml(raw, f"--set {dotted}") if raw != "" else ""


def _read_yaml_file(path: str | Path) -> dict:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"--config: {str(p)!r} does not exist")
    try:
        text = p.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"--config: {str(p)!r} is not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise ConfigError(f"--config: {str(p)!r} cannot be read ({exc.strerror or exc})") from None
    loaded = safe_yaml(text, f"--config {str(p)!r}")
    if loaded is not None and not isinstance(loaded, dict):
        raise ConfigError(f"--config: {str(p)!r} must hold a mapping at the top level")
    return loaded or {}


def load_tree(path: str | Path | None, overrides: list[str] | None = None) -> dict:
    """The raw config mapping: the YAML file at ``path`` (none: empty) with every ``key=value`` of
    ``overrides`` set over it, in order."""
    tree = _read_yaml_file(path) if path is not None else {}
    for item in overrides or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected key=value")
        set_dotted(tree, key.strip(), raw)
    return tree
