"""Bad configs, tried at scale: random TOML files either validate or fail with one ConfigError line.

Hypothesis writes TOML configs from every SweepSpec key (and unknown ones) with good values, wrong
types, out-of-range numbers, NaN and infinities, nested lists and tables, huge widths and missing
keys. Each must either validate, or raise one :class:`ConfigError` whose message is one line naming
the field; nothing may raise another exception or compile a program. The number of configs tried
is in ``TRIED`` (``pytest -s`` prints it); ``SUPJAX_FUZZ_EXAMPLES`` sets it (400 by default).
"""

import json
import math
import os

import jax
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from supjax import ConfigError, ConfigFileError, SweepSpec

GOOD = {
    "n": [48, 64, 100],
    "batch_size": [16, 64],
    "steps": [20, 100],
    "log_every": [1, 10],
    "widths": [[4, 8], [2], 6],
    "weight_decays": [[-1.0, 0.5], [0.1], -0.3],
    "importances": [["uniform"], ["uniform", "relative:0.5"], "geometric:0.9"],
    "distribution": [["power"], ["exponential:40", "linear"], "constant:0.05"],
    "alphas": [[1.0, 1.5], 2],
    "activation_densities": [[0.0], [0.0, 0.5]],
    "seeds": [[0, 1], 3],
    "lr": [0.01, 1],
    "warmup_steps": [0, 5],
    "loss": ["mse", "cross_entropy", "soft_cross_entropy"],
    "target": ["identity", "abs"],
    "feature_values": ["uniform_0_2", "uniform_0_1", "uniform_-1_1"],
    "correlation_block": [1, 4],
    "correlation": [0.0, 0.5],
    "exclusive_blocks": [False, True],
    "model": ["tied", "untied", "hidden_relu", "untied_hidden_relu", "linear", "nowhere.at_all:Model"],
    "weight_init": ["normal", "xavier_normal"],
    "bias_init": ["normal", "zeros"],
    "precision": ["float32", "tensorfloat32", "bfloat16"],
    "stream_loop": ["map", "vmap"],
    "batch_tile": [8, 16],
    "snapshot_steps": [3, [10, 20]],
    "importance": ["geometric:0.9"],
}
STRINGS = ["", "power", "power:abc", "file:/nowhere.npy", "constant:2", "exponential:-1", "zipf", "tied", "float16"]
scalars = st.one_of(
    st.integers(-5, 50),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.sampled_from(STRINGS),
    st.text(max_size=6),
)
wild = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text("ab", min_size=1, max_size=2), inner, max_size=2)
    ),
    max_leaves=6,
)
KEYS = [*SweepSpec.field_names(), "stepz", "widht", "n_features"]


@st.composite
def configs(draw) -> dict:
    keys = draw(st.lists(st.sampled_from(KEYS), unique=True, max_size=8))
    config = {"n": 48, "batch_size": 16, "steps": 20, "widths": [4], "warmup_steps": 2} if draw(st.booleans()) else {}
    for key in keys:
        good = key in GOOD and draw(st.integers(0, 2)) > 0
        config[key] = draw(st.sampled_from(GOOD[key])) if good else draw(wild)
    config.pop("progress", None)
    return config


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + "}"


TRIED = {"configs": 0, "valid": 0, "refused": 0}


@pytest.fixture(scope="module")
def compiles():
    events = []

    def listen(event, duration, **kwargs):
        if "compile" in event:
            events.append(event)

    jax.monitoring.register_event_duration_secs_listener(listen)
    jax.jit(lambda x: x + 1)(1.0)  # the listener hears a compile
    assert events, "no compile event heard: the listener cannot see compiles"
    events.clear()
    yield events
    print(f"\nconfig fuzz: {TRIED}")


@settings(
    max_examples=int(os.environ.get("SUPJAX_FUZZ_EXAMPLES", 400)),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(config=configs())
def test_a_random_config_validates_or_fails_in_one_line_naming_its_field(config, tmp_path_factory, compiles):
    path = tmp_path_factory.mktemp("fuzz") / "config.toml"
    text = "".join(f"{key} = {toml_value(value)}\n" for key, value in config.items())
    path.write_text(text)
    TRIED["configs"] += 1
    before = len(compiles)
    try:
        spec = SweepSpec.from_toml(path)
    except ConfigFileError as err:  # a file the writer made unreadable as TOML: its path, in one line
        TRIED["refused"] += 1
        assert "\n" not in str(err) and str(path) in str(err), (text, str(err))
    except ConfigError as err:
        TRIED["refused"] += 1
        message = str(err)
        assert "\n" not in message and f"'{err.field}'" in message, (text, message)
        assert err.field in KEYS, (text, message)
    else:
        TRIED["valid"] += 1
        assert SweepSpec.from_dict(spec.to_dict()) == spec, text  # what a run directory saves reads back
    assert len(compiles) == before, f"validation compiled a program: {compiles[before:]}"
