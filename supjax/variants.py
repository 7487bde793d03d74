"""The field's toy-model variants as ``flax.nnx`` modules, and the ``model`` sweep field.

=============  ==============================  ==========================================
``model``      forward, ``x: [B, n]``          used by
=============  ==============================  ==========================================
``tied``       ReLU(x W W^T + b)               the paper; Elhage et al. 2022 (TMS)
``untied``     ReLU(x W W_decoder^T + b)       devinterp's ``ToyAutoencoder(tied=False)``
``hidden_relu`` ReLU(ReLU(x W) W^T + b)         TMS and ARENA's ``NeuronModel`` (privileged basis)
``linear``     x W W^T + b                     TMS's linear baseline
=============  ==============================  ==========================================

A user's own module is named ``"package.module:ClassName"``: a ``nnx.Module`` built as
``ClassName(n, m, rngs=nnx.Rngs(params=key))`` whose call maps ``[B, n]`` to ``[B, n]`` and
which holds the feature directions as a parameter ``W: [n, m]`` (row i: feature i), which
the analysis measures. Example::

    class Gated(nnx.Module):
        def __init__(self, n, m, *, rngs):
            self.W = nnx.Param(jax.random.normal(rngs.params(), (n, m)) / m**0.5)
            self.b = nnx.Param(jnp.zeros(n))
            self.gate = nnx.Param(jnp.ones(n))

        def __call__(self, x):
            return jax.nn.relu(self.gate * (x @ self.W @ self.W.T) + self.b)

The sweep trains every variant through one functional step: parameters are kept as a
plain dict (what ``nnx.split`` gives, as a pure dict), and the step rebuilds the module
with ``nnx.merge`` inside the jitted program, so no ``nnx.jit`` runs on the hot path.
Every 2-D parameter gets the signed weight decay and the W learning rate; every other
parameter, the bias learning rate and no decay (see :func:`supjax.optim.toy_model_optimizer`).
"""

from __future__ import annotations

import importlib

import jax
import jax.numpy as jnp
from flax import nnx

from supjax import model

BUILT_IN = ("tied", "untied", "hidden_relu", "linear")


def _init(rngs: nnx.Rngs, n: int, m: int, weight_init: str, bias_init: str):
    params = model.init_params(rngs.params(), n, m, weight_init, bias_init)
    return nnx.Param(params["W"]), nnx.Param(params["b"])


# The built-in variants take the init of W and b by keyword (``weight_init``, ``bias_init``:
# see supjax.model.init_weight); the defaults are the paper's, W ~ N(0, 1/m), b ~ N(0, 1).


class Tied(nnx.Module):
    """The paper's model, y = ReLU(x W W^T + b)."""

    def __init__(self, n: int, m: int, *, rngs: nnx.Rngs, weight_init: str = "normal", bias_init: str = "normal"):
        self.W, self.b = _init(rngs, n, m, weight_init, bias_init)

    def __call__(self, x):
        return jax.nn.relu((x @ self.W) @ self.W.T + self.b)


class Untied(nnx.Module):
    """y = ReLU(x W W_decoder^T + b): encoder rows W_i and decoder rows W_decoder_i, drawn alike."""

    def __init__(self, n: int, m: int, *, rngs: nnx.Rngs, weight_init: str = "normal", bias_init: str = "normal"):
        self.W, self.b = _init(rngs, n, m, weight_init, bias_init)
        self.W_decoder = nnx.Param(model.init_weight(rngs.params(), (n, m), weight_init))

    def __call__(self, x):
        return jax.nn.relu((x @ self.W) @ self.W_decoder.T + self.b)


class HiddenReLU(nnx.Module):
    """y = ReLU(ReLU(x W) W^T + b): a ReLU on the m hidden units, which privileges their basis."""

    def __init__(self, n: int, m: int, *, rngs: nnx.Rngs, weight_init: str = "normal", bias_init: str = "normal"):
        self.W, self.b = _init(rngs, n, m, weight_init, bias_init)

    def __call__(self, x):
        return jax.nn.relu(jax.nn.relu(x @ self.W) @ self.W.T + self.b)


class Linear(nnx.Module):
    """y = x W W^T + b: no output ReLU, so interference cannot be filtered (TMS's linear model)."""

    def __init__(self, n: int, m: int, *, rngs: nnx.Rngs, weight_init: str = "normal", bias_init: str = "normal"):
        self.W, self.b = _init(rngs, n, m, weight_init, bias_init)

    def __call__(self, x):
        return (x @ self.W) @ self.W.T + self.b


CLASSES = {"tied": Tied, "untied": Untied, "hidden_relu": HiddenReLU, "linear": Linear}


def module_class(name: str) -> type[nnx.Module]:
    """The class of a ``model`` value: a built-in name or ``"package.module:ClassName"``."""
    if name in CLASSES:
        return CLASSES[name]
    path, _, attribute = name.partition(":")
    return getattr(importlib.import_module(path), attribute)


def init(name: str, key: jax.Array, n: int, m: int, weight_init: str = "normal", bias_init: str = "normal") -> dict:
    """Parameters of one model as a pure dict. The tied model draws exactly
    :func:`supjax.model.init_params` (the fused path's init), so both paths start alike.
    ``weight_init`` and ``bias_init`` reach the built-in variants; a user's module
    initialises itself (the config refuses other values for it)."""
    if name == "tied":
        return model.init_params(key, n, m, weight_init, bias_init)
    options = {"weight_init": weight_init, "bias_init": bias_init} if name in CLASSES else {}
    state = nnx.state(module_class(name)(n, m, rngs=nnx.Rngs(params=key), **options), nnx.Param)
    return nnx.to_pure_dict(state)


def apply(name: str, params: dict, x: jax.Array) -> jax.Array:
    """The model's output for ``x: [B, n]``: the module rebuilt from ``params`` (a pure dict)."""
    n, m = params["W"].shape
    graphdef, state = nnx.split(nnx.eval_shape(lambda: module_class(name)(n, m, rngs=nnx.Rngs(0))))
    nnx.replace_by_pure_dict(state, params)  # a fresh abstract state of this trace
    return nnx.merge(graphdef, state)(x)


def check(name: str, n: int, m: int) -> str | None:
    """Why ``name`` cannot be trained at width m (a sentence), or None. Traces shapes only."""
    if name in CLASSES:
        return None
    path, sep, attribute = name.partition(":")
    if not sep or not path or not attribute:
        return f"use one of {', '.join(BUILT_IN)}, or 'package.module:ClassName' for your own nnx.Module"
    try:
        cls = module_class(name)
    except ImportError as err:
        return f"cannot import {path} ({err}); put the package on PYTHONPATH or fix the name"
    except AttributeError:
        return f"{path} has no {attribute}; name an nnx.Module class in it"
    if not (isinstance(cls, type) and issubclass(cls, nnx.Module)):
        return f"{attribute} is not an nnx.Module class"

    def failed(stage: str, err: Exception) -> str:
        reason = (str(err).strip().splitlines() or [""])[0][:200]
        return f"{stage} failed at n = {n}, m = {m}: {type(err).__name__}: {reason}"

    try:
        params = nnx.to_pure_dict(nnx.state(nnx.eval_shape(lambda: cls(n, m, rngs=nnx.Rngs(0))), nnx.Param))
    except Exception as err:  # a user's module may fail in any way; say how, in one line
        return failed(f"{attribute}(n, m, rngs=nnx.Rngs(...))", err)
    if getattr(params.get("W"), "shape", None) != (n, m):
        return f"{attribute} needs a parameter W of shape [n, m] = [{n}, {m}] (the feature directions)"
    try:
        out = jax.eval_shape(lambda p, x: apply(name, p, x), params, jax.ShapeDtypeStruct((2, n), jnp.float32))
    except Exception as err:
        return failed(f"calling {attribute} on x: [2, n]", err)
    if out.shape != (2, n):
        return f"{attribute} maps [B, n] to {list(out.shape)} at B = 2, n = {n}; it must return [B, n]"
    return None
