"""The per-model table, derived from the declarations: its columns, its rows, its traced fields.

A wing's spec declares each grid axis once, with the column it gives the per-model table
(``setting(..., AXIS, ..., column=axis_column(...))``), and lists the columns derived from a row
in ``DERIVED`` (:func:`derived`). Everything else follows from those declarations:

* :func:`columns`: the table's schema (``index``, the axes, the derived columns, ``diverged_at``),
  which a run's ``models.csv`` is written in and read back by (:func:`typed`);
* :func:`rows`: one row per model, every combination of the axes, nested by :data:`LEVELS` (a
  width group, then its data streams, then the models that share a stream) and in declaration
  order within a level;
* :func:`traced`: the columns the one-model step reads, the fields of the program's per-model
  hyperparameters (:func:`hyper_type`);
* :func:`count` and :func:`models_per_stream`.

So a new per-model traced hyperparameter is its declaration in the spec and the line of the step
that reads it. Like the rest of the declarations, this module imports no JAX.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import itertools
import math
from collections.abc import Callable
from typing import Any

# Where a grid axis nests: its own compiled group (a width), a data stream the group's models read,
# or a model among those sharing a stream (the vmapped G axis).
GROUP, STREAM, MODEL = "group", "stream", "model"
LEVELS = (GROUP, STREAM, MODEL)


@dataclasses.dataclass(frozen=True)
class Column:
    """One column of the per-model table."""

    name: str
    type: type  # int, float or str
    doc: str
    level: str | None = None  # an axis's nesting level (LEVELS); None for a derived column
    values: str | None = None  # the spec attribute that lists the axis's values (default: the field)
    derive: Callable[[Any, dict], Any] | None = None  # (spec, row so far) -> a derived column's value
    traced: bool = False  # the one-model step reads it (a field of the per-model hyperparameters)


def axis_column(name: str, type: type, doc: str, level: str, values: str | None = None, traced: bool = False) -> Column:
    """The column a grid axis gives the table (``setting(..., column=...)``): ``values`` names the
    spec attribute that lists the axis's values, when it is not the field itself."""
    assert level in LEVELS, level
    return Column(name, type, doc, level, values, None, traced)


def derived(name: str, type: type, doc: str, derive: Callable[[Any, dict], Any], traced: bool = False) -> Column:
    """A column computed from a row's axes: ``derive(spec, row)``."""
    return Column(name, type, doc, derive=derive, traced=traced)


INDEX = Column("index", int, "the model's row of the table")
DIVERGED_AT = Column("diverged_at", int, "the step the model's loss stopped being finite, -1 if never")


def _axes(cls) -> list[tuple[str, Column]]:
    """(field, column) of every grid axis that gives a column, nested: by level, then declared order."""
    found = [(f.name, f.metadata.get("column")) for f in dataclasses.fields(cls)]
    axes = [(name, c) for name, c in found if c is not None]
    return sorted(axes, key=lambda pair: LEVELS.index(pair[1].level))


def columns(cls) -> tuple[Column, ...]:
    """The table's columns: ``index``, the grid axes (nested), the derived columns, ``diverged_at``."""
    return (INDEX, *(c for _, c in _axes(cls)), *cls.DERIVED, DIVERGED_AT)


def names(cls) -> tuple[str, ...]:
    return tuple(c.name for c in columns(cls))


def traced(cls) -> tuple[str, ...]:
    """The columns the one-model step reads, in table order."""
    return tuple(c.name for c in columns(cls) if c.traced)


@functools.cache  # one type per spec class: jit's cache keys on it
def hyper_type(cls, *extra: str, module: str | None = None) -> type:
    """The per-model hyperparameters the one-model step takes: a named tuple (a pytree) of the traced
    columns (each ``[*group shape]`` in a layout, a scalar in the step), then ``extra`` fields
    (default None); ``module``: the module it is named in."""
    return collections.namedtuple("Hyper", [*traced(cls), *extra], defaults=(None,) * len(extra), module=module)


def axis_values(spec) -> dict[str, tuple]:
    """Every grid axis's column name and values, nested."""
    return {c.name: tuple(getattr(spec, c.values or field)) for field, c in _axes(type(spec))}


def count(spec) -> int:
    """Models in the grid: the product of the axes' lengths."""
    return math.prod(len(v) for v in axis_values(spec).values())


def models_per_stream(spec) -> int:
    """The models that share one data stream: the product of the ``model``-level axes' lengths."""
    levels = {c.name: c.level for _, c in _axes(type(spec))}
    return math.prod(len(v) for name, v in axis_values(spec).items() if levels[name] == MODEL)


def rows(spec) -> list[dict]:
    """One dict per model, in training order (:func:`columns` but ``diverged_at``)."""
    axes = axis_values(spec)
    combinations = itertools.product(*axes.values())
    return [complete(spec, {"index": i, **dict(zip(axes, row, strict=True))}) for i, row in enumerate(combinations)]


def complete(spec, row: dict) -> dict:
    """``row`` (an index and the axes' values) with its derived columns."""
    row = dict(row)
    for column in type(spec).DERIVED:
        row[column.name] = column.derive(spec, row)
    return row


def axes(cls) -> tuple[str, ...]:
    """The grid axes' column names, nested."""
    return tuple(c.name for _, c in _axes(cls))


def level_of(cls, level: str) -> tuple[str, ...]:
    """The columns of the axes at one nesting ``level``, nested."""
    return tuple(c.name for _, c in _axes(cls) if c.level == level)


def typed(cls, row: dict) -> dict:
    """A row read back as text (``csv.DictReader``): every declared column as its type (an empty or
    ``nan`` float as NaN); undeclared keys are kept as they are."""
    out = dict(row)
    for column in columns(cls):
        if column.name not in row:
            continue
        text = row[column.name]
        if column.type is float:
            out[column.name] = math.nan if text in ("", "nan") else float(text)
        elif column.type is int:
            out[column.name] = int(text)
    return out
