"""Declarations: every field of every wing's spec says once what it is, and the rest is derived.

A field is declared with :func:`setting` (its default, its role, one line of documentation, its
choices). The roles (rejax's split between what sets shapes and what varies across a population):

* ``static``: sets shapes or code; each value compiles its own program (the compile cache key);
* ``traced``: a traced array entry, per model or one for the whole run (the copula's correlation, a data
  seed): a new value compiles nothing;
* ``axis``: a grid axis; every combination of the axes is one model (traced per model);
* ``result``: how the work is laid out, but it moves float32 rounding; static too, and an unset one
  is resolved for the backend and kept in the run directory;
* ``driving``: how the work is driven, saved and shown; changes no result, so a resume may change it.

:class:`Spec` is the base of every wing's spec (a frozen dataclass): construction from plain values
and TOML with one-line errors, the type and choice checks from the declarations, then the wing's
table of ``RULES``; :func:`fields_of`, :func:`resume_diff` and :func:`reference` sort fields by role.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from supjax import configfile
from supjax.errors import ConfigError

STATIC, TRACED, AXIS, RESULT, DRIVING = "static", "traced", "axis", "result", "driving"
ROLES = (STATIC, TRACED, AXIS, RESULT, DRIVING)


def setting(
    default: Any, role: str, doc: str, choices: tuple | str = (), check: Callable | None = None, column: Any = None
) -> Any:
    """A spec field: its default, its role, one line of documentation and, for a closed vocabulary,
    its choices: a tuple, or ``"module:NAME"``, the registry in the module that implements them (its
    keys), so that a new choice is one entry there. ``check(value)`` replaces the type check for a
    field whose type is not a plain one (it raises :class:`ConfigError`). A grid axis declares the
    ``column`` it gives the per-model table (:func:`supjax.engine.table.axis_column`)."""
    assert role in ROLES, role
    assert column is None or role == AXIS, "only a grid axis gives the per-model table a column"
    metadata = {"role": role, "doc": doc, "choices": choices, "check": check, "column": column}
    return dataclasses.field(default=default, metadata=metadata)


def choices_of(field: dataclasses.Field) -> tuple:
    """The choices a field declares (looked up in their module where named so)."""
    choices = field.metadata["choices"]
    if isinstance(choices, str):
        module, _, name = choices.partition(":")
        return tuple(getattr(importlib.import_module(module), name))
    return choices


Rule = Callable[[Any, Any], "str | tuple[Any, str] | None"]


class Spec:
    """The base of a wing's spec, a frozen dataclass of :func:`setting` fields.

    A subclass sets ``RULES``: ``(fields, rule(spec, value) -> None, a problem, or (the bad
    entry, a problem))`` pairs, checked in order after the declared types and choices; and, for a
    grid of models, ``DERIVED``: the per-model table's columns computed from a row
    (:mod:`supjax.engine.table`).
    """

    RULES: ClassVar[list[tuple[tuple[str, ...], Rule]]] = []
    # The per-model table's derived columns (supjax.engine.table.derived); the axes declare their own.
    DERIVED: ClassVar[tuple] = ()

    def __post_init__(self):
        for name, value in configfile.normalised(self).items():
            object.__setattr__(self, name, value)

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_dict(cls, values: dict[str, Any]):
        """Build and validate a spec from plain values (a parsed TOML table); an unknown key is one
        line with the closest known one."""
        names = cls.field_names()
        for key in values:
            if key not in names:
                close = difflib.get_close_matches(key, names, n=1)
                hint = f"did you mean '{close[0]}'?" if close else f"known keys: {', '.join(names)}"
                raise ConfigError(key, values[key], f"unknown key; {hint}")
        return cls(**values).validate()

    @classmethod
    def from_toml(cls, path: str | Path, overrides: list[str] = ()):
        """Read a TOML file, apply ``key=value`` overrides (TOML values), validate."""
        return cls.from_dict(configfile.read_toml(path, overrides))

    def replace(self, **changes):
        return dataclasses.replace(self, **changes).validate()

    def to_dict(self) -> dict[str, Any]:
        """Plain values of every field (TOML-writable)."""
        return {name: configfile.plain(getattr(self, name)) for name in self.field_names()}

    def validate(self):
        """Check every field's declared type and choices, then ``RULES``; raise the first problem
        as one :class:`ConfigError` line."""
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.metadata["check"] is not None:
                f.metadata["check"](value)
                continue
            configfile.check_type(f.name, value, f.type)
            choices = choices_of(f)
            for entry in value if isinstance(value, tuple) else (value,):
                if choices and entry is not None and entry not in choices:
                    raise ConfigError(f.name, entry, f"use one of {', '.join(choices)}")
        for fields, rule in self.RULES:
            for name in fields:
                problem = rule(self, getattr(self, name))
                if problem:
                    value, problem = problem if isinstance(problem, tuple) else (getattr(self, name), problem)
                    raise ConfigError(name, value, problem)
        return self


def fields_of(cls, *roles: str) -> tuple[str, ...]:
    """The fields of the spec class ``cls`` with one of ``roles``, in declaration order."""
    return tuple(f.name for f in dataclasses.fields(cls) if f.metadata["role"] in roles)


def result_fields(cls) -> tuple[str, ...]:
    """What two runs must agree on to agree bitwise on one backend: every role but ``driving``."""
    return fields_of(cls, STATIC, TRACED, AXIS, RESULT)


def resolved_fields(cls) -> tuple[str, ...]:
    """The ``result`` fields that a run resolves for its backend when unset (default None)."""
    return tuple(f.name for f in dataclasses.fields(cls) if f.metadata["role"] == RESULT and f.default is None)


def resume_diff(saved, spec, where: str, config: str):
    """The spec to resume with: ``spec`` with its unset resolved fields taken from ``saved``. Refuses,
    naming the keys, a ``spec`` that differs from ``saved`` in a field that changes results
    (``where``: the run directory; ``config``: the name of its saved config file)."""
    cls = type(spec)
    spec = spec.replace(**{k: getattr(saved, k) for k in resolved_fields(cls) if getattr(spec, k) is None})
    differing = [k for k in result_fields(cls) if getattr(spec, k) != getattr(saved, k)]
    if differing:
        keys = ", ".join(f"{k} ({getattr(saved, k)!r} -> {getattr(spec, k)!r})" for k in differing)
        raise ConfigError("--resume", str(where), f"the config differs in {keys}; resume with the saved {config}")
    return spec


def reference(cls) -> list[dict[str, str]]:
    """Every key of the spec class ``cls`` with its type, default, role, choices and one line: the docs' table."""
    return [
        {
            "key": f.name,
            "type": str(f.type),
            "default": repr(configfile.plain(f.default)),
            "role": f.metadata["role"],
            "choices": ", ".join(choices_of(f)),
            "doc": f.metadata["doc"],
        }
        for f in dataclasses.fields(cls)
    ]


# ---- rules every wing uses ------------------------------------------------------------------------


def each(check: Rule) -> Rule:
    """A rule for every entry of a grid axis: the first bad entry and why."""

    def rule(spec, values):
        for value in values:
            problem = check(spec, value)
            if problem:
                return value, problem
        return None

    return rule


def positive(spec, v):
    return None if v is None or v > 0 else "must be a positive integer"


def whole_axis(spec, values):
    if not values:
        return [], "the grid axis is empty; give at least one value"
    if len(set(values)) != len(values):
        return list(values), "contains duplicates; list each value once"
    return None


def every_log(spec, v):
    return None if v is None or v % spec.log_every == 0 else f"must be a multiple of log_every = {spec.log_every}"


def divides_steps(spec, v):
    return None if spec.steps % v == 0 else f"must divide steps = {spec.steps}; try 1 or 10"


def snapshots(spec, v):
    """The rule of a ``snapshot_steps`` field: a number of snapshots, or distinct logged steps."""
    if v is None or isinstance(v, int):
        return None if v is None or v >= 1 else "give a number of snapshots >= 1 or a list of steps"
    fix = f"a list of distinct steps, multiples of log_every = {spec.log_every} up to steps = {spec.steps}"
    if not v or len(set(v)) != len(v):
        return list(v), f"must be {fix}"
    return each(lambda s, step: None if 0 < step <= s.steps and step % s.log_every == 0 else f"must be {fix}")(spec, v)


def snapshot_schedule(snapshot_steps, steps: int, log_every: int) -> tuple[int, ...]:
    """The steps whose parameters a run keeps: sorted multiples of ``log_every`` in [log_every,
    steps]. An integer K gives K steps spaced evenly in log from the first logged step to the last
    (fewer where they would round onto one); a list is kept as it is, sorted; None keeps none."""
    if snapshot_steps is None:
        return ()
    if isinstance(snapshot_steps, int):
        windows = np.unique(np.round(np.geomspace(1, steps // log_every, snapshot_steps)).astype(int))
        return tuple(int(w) * log_every for w in windows)
    return tuple(sorted(snapshot_steps))
