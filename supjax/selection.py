"""Toy models of a run picked by index or by their grid values: what the SAE and LLC wings read.

A spec that reads a toy run declares ``models`` (indices; empty: every model) and ``select`` (a
table of models.csv columns and the values to keep, e.g. ``select = {m = [16], weight_decay =
[-1.0]}``); :func:`selected` applies both, and each problem is one :class:`ConfigError` line.
"""

from __future__ import annotations

import math
from typing import Any

from supjax.engine import spec as declared
from supjax.engine.spec import each
from supjax.errors import ConfigError

# The models.csv columns a selection may name.
SELECTABLE = ("m", "weight_decay", "alpha", "distribution", "activation_density", "seed", "importance")


def check(selection) -> None:
    """A ``select`` table's problems, as one :class:`ConfigError` line (None: every model)."""
    if selection is None:
        return
    if not isinstance(selection, dict):
        raise ConfigError("select", selection, "must be a table of models.csv columns, e.g. select = {m = [16]}")
    for key, values in selection.items():
        if key not in SELECTABLE:
            raise ConfigError(f"select.{key}", values, f"not a grid column; use {', '.join(SELECTABLE)}")
        if not isinstance(values, tuple) or not values:
            raise ConfigError(f"select.{key}", values, "give a non-empty list of values")
        for value in values:
            if not isinstance(value, (str, int, float)) or isinstance(value, bool):
                raise ConfigError(f"select.{key}", value, "list entries must be numbers or strings")


def normalised(selection: dict) -> dict:
    """A ``select`` table as tuples of values (a scalar is one value; numbers as floats but m and seed)."""
    out = {}
    for key, values in selection.items():
        if isinstance(values, (str, int, float)):
            values = [values]
        if isinstance(values, (list, tuple)):
            values = tuple(float(v) if isinstance(v, int) and key not in ("m", "seed") else v for v in values)
        out[key] = values
    return out


def _plain_value(value):
    return value.item() if hasattr(value, "item") else value


def _same(a, b) -> bool:
    if isinstance(a, str) or isinstance(b, str):
        return str(a) == str(b)
    if math.isnan(float(a)) and math.isnan(float(b)):
        return True
    return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)


def selected(models: list[dict], indices: tuple[int, ...], select: dict | None) -> list[int]:
    """The indices of the toy models (rows of a run's models.csv) picked by ``indices`` and ``select``."""
    chosen = [row["index"] for row in models]
    if indices:
        known = set(chosen)
        for index in indices:
            if index not in known:
                raise ConfigError("models", index, f"the run has models 0 to {len(models) - 1}; pick among them")
        chosen = [i for i in chosen if i in set(indices)]
    for column, wanted in (select or {}).items():
        values = sorted({_plain_value(row[column]) for row in models}, key=str)
        for value in wanted:
            if not any(_same(value, v) for v in values):
                raise ConfigError(f"select.{column}", value, f"no model has it; the run has {values}")
        chosen = [i for i in chosen if any(_same(models[i][column], v) for v in wanted)]
    if not chosen:
        raise ConfigError("select", select, "selects no model together with models; widen it")
    return chosen


def models_rule(spec, values):
    if len(set(values)) != len(values):
        return list(values), "contains duplicates; list each index once"
    return each(lambda s, v: None if v >= 0 else "a model index is >= 0")(spec, values)


class ReadsToyRun(declared.Spec):
    """The base of a spec that reads the toy models of a run (the SAEs, the LLC): its ``models`` and
    ``select`` fields, ``select.KEY = [...]`` keys in TOML, and :meth:`selected`."""

    def __post_init__(self):
        super().__post_init__()
        if isinstance(self.select, dict):
            object.__setattr__(self, "select", normalised(self.select))

    @classmethod
    def from_dict(cls, values: dict[str, Any]):
        """Build and validate a spec from plain values; ``select.KEY = [...]`` is ``select = {KEY = [...]}``."""
        values = dict(values)
        for key in [k for k in values if k.startswith("select.")]:
            chosen = values.get("select") or {}
            if not isinstance(chosen, dict):
                raise ConfigError("select", chosen, "must be a table, e.g. select = {m = [16]}")
            values["select"] = {**chosen, key.removeprefix("select."): values.pop(key)}
        return super().from_dict(values)

    def to_dict(self) -> dict[str, Any]:
        values = super().to_dict()
        if self.select is not None:
            values["select"] = {k: list(v) for k, v in self.select.items()}
        return values

    def selected(self, models: list[dict]) -> list[int]:
        """The indices of the toy models (rows of a run's models.csv) this spec reads."""
        return selected(models, self.models, self.select)
