"""The per-model table comes from the declarations: a new traced axis is its declaration and the line that reads it."""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass

import numpy as np

from supjax import layout, program, results
from supjax.config import AXIS, SweepSpec, setting
from supjax.engine import table
from supjax.engine.table import MODEL, axis_column

SMALL = dict(n=32, widths=(4, 8), weight_decays=(-0.5, 0.3), alphas=(1.0, 1.5), seeds=(0, 1), steps=20, warmup_steps=2)


@dataclass(frozen=True)
class WithClip(SweepSpec):
    """A researcher's new per-model traced hyperparameter: one declaration."""

    clips: tuple[float, ...] = setting(
        (1.0,),
        AXIS,
        "gradient clip norms",
        column=axis_column("clip", float, "the gradient clip norm", MODEL, traced=True),
    )


def test_the_toy_tables_schema_is_the_declarations():
    declared = [f for f in SweepSpec.__dataclass_fields__.values() if f.metadata.get("column")]
    names = {f.metadata["column"].name for f in declared}
    assert names == {"m", "importance", "weight_decay", "distribution", "activation_density", "seed"}
    assert results.COLUMNS == ("index", *table.axes(SweepSpec), *(c.name for c in SweepSpec.DERIVED), "diverged_at")
    # the step's per-model hyperparameters are the traced columns, nothing hand-written
    assert (
        program.Hyper._fields
        == (*table.traced(SweepSpec), "importance")
        == ("weight_decay", "lr_w", "lr_b", "importance")
    )


def test_rows_nest_width_then_stream_then_model_and_derive_their_columns():
    spec = SweepSpec(**SMALL, importances=("uniform", "relative:0.5"), lr_width_scaling=True)
    rows = layout.model_table(spec)
    assert len(rows) == spec.num_models == 2 * 2 * 2 * 2 * 2
    assert [r["index"] for r in rows] == list(range(len(rows)))
    # the G axis (importance, weight decay) varies fastest, then the streams, then the width
    first = rows[:4]
    assert [(r["importance"], r["weight_decay"]) for r in first] == [
        ("uniform", -0.5),
        ("uniform", 0.3),
        ("relative:0.5", -0.5),
        ("relative:0.5", 0.3),
    ]
    assert {r["m"] for r in rows[:16]} == {4} and rows[4]["seed"] == 1 and rows[8]["alpha"] == 1.5
    # derived columns from the row: width-scaled learning rates, sum p
    assert rows[-1]["lr_w"] == spec.lr * (8 / 8) ** 0.25 and rows[0]["lr_b"] == 2 / 4
    assert math.isclose(rows[0]["expected_active"], spec.probabilities("power:1.0", 0.0).sum())
    assert table.models_per_stream(spec) == 4 == layout.models_per_stream(spec)


def test_a_new_traced_axis_reaches_the_table_and_the_steps_hyperparameters(tmp_path):
    spec = WithClip(**SMALL, clips=(0.5, 2.0))
    assert spec.num_models == 2 * SweepSpec(**SMALL).num_models
    assert "clip" in table.names(WithClip) and table.traced(WithClip) == ("weight_decay", "clip", "lr_w", "lr_b")
    rows = layout.model_table(spec)
    # declared after weight_decays, at the same level: it varies fastest
    assert [(r["weight_decay"], r["clip"]) for r in rows[:4]] == [(-0.5, 0.5), (-0.5, 2.0), (0.3, 0.5), (0.3, 2.0)]
    plan = layout.plan(spec)
    group = plan.groups[0]
    assert group.shape == (4, 4)  # D = 2 alphas x 2 seeds streams, G = 2 clips x 2 weight decays
    hyper = group.hyper
    assert hyper._fields == ("weight_decay", "clip", "lr_w", "lr_b", "importance")
    by_index = {r["index"]: r for r in rows}
    for k, index in enumerate(group.model_index):
        slot = np.unravel_index(k, group.shape)
        assert hyper.clip[slot] == np.float32(by_index[index]["clip"])
        assert hyper.weight_decay[slot] == np.float32(by_index[index]["weight_decay"])
    # every model of a stream reads it: the G models of one row read one stream
    assert len(set(group.reads)) == 4


def test_the_table_reads_back_typed(tmp_path):
    rows = layout.model_table(SweepSpec(**{**SMALL, "distribution": ("linear", "power")}))
    results._write_models(tmp_path, rows)
    with open(tmp_path / "models.csv", newline="") as f:
        back = [results._typed_row(r) for r in csv.DictReader(f)]
    assert list(back[0]) == list(results.COLUMNS)
    for a, b in zip(rows, back, strict=True):
        assert b["diverged_at"] == -1 and isinstance(b["m"], int) and isinstance(b["seed"], int)
        for key, value in a.items():
            both_nan = isinstance(value, float) and math.isnan(value) and math.isnan(b[key])
            same = value == b[key] or both_nan
            assert same, (key, value, b[key])
    assert any(math.isnan(r["alpha"]) for r in back)  # 'linear' has no exponent
