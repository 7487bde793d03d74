"""Config values in and out: TOML files, ``--set key=value`` overrides, and coercion by declared type.

:class:`supjax.config.SweepSpec` declares each field's type; this module turns what a user
writes (a TOML list, a scalar where a list is meant, an integer where a float is meant, a
relative file path) into the one spelling a spec stores, and checks values against the
declared types, so that the spec itself holds no parsing.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from pathlib import Path
from typing import Any

from supjax.errors import ConfigError, ConfigFileError


def read_toml(path: str | Path, overrides=()) -> dict[str, Any]:
    """The table of a TOML file with ``key=value`` overrides applied (not yet validated)."""
    path = Path(path)
    try:
        values = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigFileError(path, "not found; pass the path of a TOML file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ConfigFileError(path, f"is not valid TOML ({err}); fix the syntax") from None
    except OSError as err:
        raise ConfigFileError(path, f"cannot be read ({err.strerror}); pass a readable TOML file") from None
    values.update(parse_overrides(overrides))
    return values


def parse_overrides(items) -> dict[str, Any]:
    """Parse ``key=value`` strings; values are TOML (``widths=[8,16]``, ``lr=0.02``)."""
    out = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError("--set", item, "write overrides as key=value, e.g. --set steps=5000")
        try:
            out[key] = tomllib.loads(f"v = {raw.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            out[key] = raw.strip()  # a bare word, e.g. distribution=linear
    return out


def normalised(spec) -> dict[str, Any]:
    """The fields of a spec whose stored spelling differs from what was written, by declared type:
    a scalar or list for a tuple (``widths = 8`` is ``(8,)``), numpy scalars as Python ones, an
    integer for a float (1 and 1.0 are one model: same keys, same results), ``file:`` paths
    made absolute (a run directory must not depend on where it was started)."""
    out = {}
    for f in dataclasses.fields(spec):
        value, kinds = getattr(spec, f.name), _alternatives(f.type)
        tuple_kind = next((k for k in kinds if k.startswith("tuple[")), None)
        if tuple_kind and not (isinstance(value, int) and "int" in kinds) and value is not None:
            if isinstance(value, (str, int, float)):
                value = (value,)
            try:  # lists, tuples, numpy arrays; anything else is left for check_type to name
                value = tuple(v.item() if hasattr(v, "item") else v for v in value)
            except TypeError:
                continue
            if tuple_kind == "tuple[float, ...]":
                value = tuple(float(v) if _is_number(v) else v for v in value)
        elif "float" in kinds and _is_number(value):
            value = float(value)
        if f.name == "distribution" and isinstance(value, tuple):
            value = tuple(_absolute_file(d) for d in value)
        if value is not getattr(spec, f.name):
            out[f.name] = value
    return out


def check_type(name: str, value: Any, annotation: str) -> None:
    """Raise a one-line :class:`ConfigError` unless ``value`` has the declared type (and is finite)."""
    kinds = _alternatives(annotation)
    if any(_conforms(value, kind) for kind in kinds):
        return
    for kind in kinds:
        if kind.startswith("tuple[") and isinstance(value, tuple):
            entry = kind[6:-6]
            for v in value:
                if isinstance(v, (list, tuple, dict)):
                    raise ConfigError(name, v, "list entries must be numbers or strings, not lists or tables")
                if not _conforms(v, entry):
                    raise ConfigError(name, v, _expected(entry, v))
    kind = next((k for k in kinds if k != "None" and not k.startswith("tuple[")), kinds[0])
    if kind.startswith("tuple["):
        raise ConfigError(name, value, "must be a list")
    raise ConfigError(name, value, _expected(kind, value))


def plain(value):
    """A TOML-writable value: tuples as lists."""
    return list(value) if isinstance(value, tuple) else value


def _alternatives(annotation: str) -> list[str]:
    return [part.strip() for part in str(annotation).split("|")]


def _conforms(value, kind: str) -> bool:
    if kind == "None":
        return value is None
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "float":
        return _is_number(value) and math.isfinite(value)
    if kind == "str":
        return isinstance(value, str)
    if kind.startswith("tuple["):
        return isinstance(value, tuple) and all(_conforms(v, kind[6:-6]) for v in value)
    raise AssertionError(f"unknown declared type {kind}")


def _expected(kind: str, value) -> str:
    if kind == "float" and _is_number(value):
        return "must be finite (not NaN or infinity)"
    return {
        "bool": "must be true or false",
        "int": "must be an integer",
        "float": "must be a number",
        "str": "must be a string",
    }[kind]


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _absolute_file(entry):
    if isinstance(entry, str) and entry.startswith("file:") and entry[5:]:
        return f"file:{Path(entry[5:]).resolve()}"
    return entry
