"""The field's toy-model variants as ``flax.nnx`` modules, and the ``model`` sweep field.

=============  ==============================  ==========================================
``model``      forward, ``x: [B, n]``          used by
=============  ==============================  ==========================================
``tied``       ReLU(x W W^T + b)               the paper; Elhage et al. 2022 (TMS)
``untied``     ReLU(x W W_decoder^T + b)       devinterp's ``ToyAutoencoder(tied=False)``
``hidden_relu`` ReLU(ReLU(x W) W^T + b)         TMS and ARENA's ``NeuronModel`` (privileged basis)
``untied_hidden_relu`` ReLU(ReLU(x W) W_dec^T + b)  ARENA's ``NeuronComputationModel`` (|x|)
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

import functools
import importlib
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from supjax import model
from supjax.errors import ConfigError


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


class UntiedHiddenReLU(nnx.Module):
    """y = ReLU(ReLU(x W) W_decoder^T + b): ARENA's ``NeuronComputationModel``, which can compute
    |x_i| of signed features (two hidden units of opposite sign per feature; see ``target``)."""

    def __init__(self, n: int, m: int, *, rngs: nnx.Rngs, weight_init: str = "normal", bias_init: str = "normal"):
        self.W, self.b = _init(rngs, n, m, weight_init, bias_init)
        self.W_decoder = nnx.Param(model.init_weight(rngs.params(), (n, m), weight_init))

    def __call__(self, x):
        return jax.nn.relu(jax.nn.relu(x @ self.W) @ self.W_decoder.T + self.b)


class Linear(nnx.Module):
    """y = x W W^T + b: no output ReLU, so interference cannot be filtered (TMS's linear model)."""

    def __init__(self, n: int, m: int, *, rngs: nnx.Rngs, weight_init: str = "normal", bias_init: str = "normal"):
        self.W, self.b = _init(rngs, n, m, weight_init, bias_init)

    def __call__(self, x):
        return (x @ self.W) @ self.W.T + self.b


class Variant(NamedTuple):
    """A model variant and what it can do, registered once in :data:`VARIANTS`."""

    module: type[nnx.Module] | None  # None: a user's module, named "package.module:Class"
    fused_gradient: bool  # the hand-fused squared-error gradient (supjax.model.mse_and_grad) and its init apply
    losses: tuple[str, ...]  # the objectives it trains (keys of supjax.model.LOSSES)


VARIANTS = {
    "tied": Variant(Tied, fused_gradient=True, losses=tuple(model.LOSSES)),
    "untied": Variant(Untied, fused_gradient=False, losses=("mse",)),
    "hidden_relu": Variant(HiddenReLU, fused_gradient=False, losses=("mse",)),
    "untied_hidden_relu": Variant(UntiedHiddenReLU, fused_gradient=False, losses=("mse",)),
    "linear": Variant(Linear, fused_gradient=False, losses=("mse",)),
}
USER_MODULE = Variant(None, fused_gradient=False, losses=("mse",))
BUILT_IN = tuple(VARIANTS)  # the one list of the built-in models


class ModelDef(NamedTuple):
    """A toy model as two pure functions, optax-style (picked once, by :func:`get`).

    * ``init(key, n, m) -> params``: a pure dict with ``W: [n, m]`` (the feature rows);
    * ``loss_and_grad(params, x, importance=None, active=None) -> (loss, grads)``: the
      reported loss of a batch ``x: [B, n]`` (squared error summed over features, averaged
      over the batch, weighted by ``importance: [n]``; or the mean cross-entropy) and the
      gradient of the training objective (the paper's mean squared error, or the
      cross-entropy). ``active`` is the sparse form of x for the products that use it.
    """

    init: Callable[[jax.Array, int, int], dict]
    loss_and_grad: Callable[..., tuple[jax.Array, dict]]


def get(
    name: str,
    *,
    loss: str = "mse",
    target: str = "identity",
    fused_gradient: bool = True,
    batch_tile: int | None = None,
    weight_init: str = "normal",
    bias_init: str = "normal",
    precision: str = "float32",
) -> ModelDef:
    """The :class:`ModelDef` of a ``model`` value: a built-in name or ``"package.module:Class"``.

    The tied model trains the squared error by its hand-fused gradient
    (:func:`supjax.model.mse_and_grad`; ``fused_gradient = False``: autodiff) or either
    cross-entropy loss by autodiff; every other model trains the squared error by autodiff and
    refuses the cross-entropy losses with a :class:`ConfigError`. ``target`` is what the
    squared error compares the output with (:data:`supjax.model.TARGETS`: x, or |x|).
    ``precision = "bfloat16"``: the fused gradient's products take bfloat16 operands with float32
    accumulation (:func:`supjax.model.product`); the autodiff paths rely on
    ``jax.default_matmul_precision``, which the program sets.
    """
    target_of = model.TARGETS[target]
    operands = jnp.bfloat16 if precision == "bfloat16" else None
    variant = VARIANTS.get(name, USER_MODULE)
    tied_init = functools.partial(model.init_params, weight_init=weight_init, bias_init=bias_init)
    if loss not in variant.losses:
        raise ConfigError("loss", loss, f"model '{name}' trains on the squared error only; use loss = 'mse'")
    if not model.LOSSES[loss].squared_error:
        if target != "identity":
            raise ConfigError("target", target, "the cross-entropy's target is the active feature; drop target")

        def cross_entropy(params, x, importance=None, active=None):
            return jax.value_and_grad(model.cross_entropy)(params, x)

        return ModelDef(tied_init, cross_entropy)

    if variant.fused_gradient and fused_gradient:

        def fused(params, x, importance=None, active=None):
            value, grads = model.mse_and_grad(params, x, batch_tile, importance, active, target_of, operands)
            return x.shape[-1] * value, grads

        return ModelDef(tied_init, fused)

    def autodiff(params, x, importance=None, active=None):
        def mse(p):
            return model.output_mean_squared_error(apply(name, p, x), target_of(x), importance)

        value, grads = jax.value_and_grad(mse)(params)
        return x.shape[-1] * value, grads

    def init(key, n, m):
        if variant.fused_gradient:  # exactly the fused path's init
            return tied_init(key, n, m)
        options = {"weight_init": weight_init, "bias_init": bias_init} if name in VARIANTS else {}
        return nnx.to_pure_dict(nnx.state(module_class(name)(n, m, rngs=nnx.Rngs(params=key), **options), nnx.Param))

    return ModelDef(init, autodiff)


# The fields of a spec or Static that define its model (the options of get).
MODEL_FIELDS = ("loss", "target", "fused_gradient", "batch_tile", "weight_init", "bias_init", "precision")


def definition(config) -> ModelDef:
    """:func:`get` with the model fields of a :class:`supjax.config.SweepSpec` or ``program.Static``."""
    return get(config.model, **{name: getattr(config, name) for name in MODEL_FIELDS})


def module_class(name: str) -> type[nnx.Module]:
    """The class of a ``model`` value: a built-in name or ``"package.module:ClassName"``."""
    if name in VARIANTS:
        return VARIANTS[name].module
    path, _, attribute = name.partition(":")
    return getattr(importlib.import_module(path), attribute)


def init(name: str, key: jax.Array, n: int, m: int, weight_init: str = "normal", bias_init: str = "normal") -> dict:
    """Parameters of one model as a pure dict (:attr:`ModelDef.init` of ``name``)."""
    return get(name, weight_init=weight_init, bias_init=bias_init).init(key, n, m)


def apply(name: str, params: dict, x: jax.Array) -> jax.Array:
    """The model's output for ``x: [B, n]``: the module rebuilt from ``params`` (a pure dict)."""
    n, m = params["W"].shape
    graphdef, state = nnx.split(nnx.eval_shape(lambda: module_class(name)(n, m, rngs=nnx.Rngs(0))))
    nnx.replace_by_pure_dict(state, params)  # a fresh abstract state of this trace
    return nnx.merge(graphdef, state)(x)


def check_spec(spec) -> None:
    """The model's rules for a :class:`supjax.config.SweepSpec` (one :class:`ConfigError` line):
    the model exists and builds, accepts the loss and target, and the options apply to it."""
    if not model.LOSSES[spec.loss].squared_error and any(label != "uniform" for label in spec.importance_labels):
        field = "importance" if spec.importance is not None else "importances"
        raise ConfigError(field, getattr(spec, field), "weights the squared error; use it with loss = 'mse'")
    if spec.sparse_products and not (VARIANTS.get(spec.model, USER_MODULE).fused_gradient and spec.fused_gradient):
        raise ConfigError("sparse_products", True, "the sparse products are the tied model's fused gradient; drop them")
    if spec.model not in VARIANTS:
        for name in ("weight_init", "bias_init"):
            if getattr(spec, name) != "normal":
                raise ConfigError(name, getattr(spec, name), "your own module initialises itself; drop it")
        problem = check(spec.model, spec.n, spec.widths[0])  # one width shows whether it builds
        if problem:
            raise ConfigError("model", spec.model, problem)
    definition(spec)  # a model refuses a loss or target itself


def check(name: str, n: int, m: int) -> str | None:
    """Why ``name`` cannot be trained at width m (a sentence), or None. Traces shapes only."""
    if name in VARIANTS:
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
