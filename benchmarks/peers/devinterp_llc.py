"""devinterp 2.0.1 as the peer of supjax's LLC wing: the same toy models, the same estimator.

    python devinterp_llc.py check                      # one SGLD step: devinterp's update is supjax's
    python devinterp_llc.py agree TOY_RUN [--chains 16] [--models 2 17 35 50] [--seed 0]
    python devinterp_llc.py bench TOY_RUN [--repeats 3] [--shipped-repeats 1]
    python devinterp_llc.py all TOY_RUN [--out JSON]     # the three in turn (llc.sh runs this)

It needs torch, devinterp, jax and supjax in one python: ``benchmarks/peers/.venv-devinterp`` (made by
``llc.sh``, ``--system-site-packages``) has them. Pin it to one core (``taskset -c 0``) to time it.

devinterp's 2.x entry points (``slt.sampling.sample``, ``slt.llc.llc``) take HuggingFace datasets of
token ids and a per-token next-token loss; its inner loop ``slt.sampler.sample_single_chain(ref_model,
dataset, evaluate, param_masks, ...)`` takes any torch Dataset. The peer drives that loop the way
``sample`` does, one chain at a time, with devinterp's own pieces:

* the sampler ``SGMCMC.sgld`` (``sample``'s default ``sampling_method = "sgmcmc_sgld"``) with ``lr``
  (eps), ``nbeta``, ``localization`` (gamma_loc), ``noise_level = 1``, no weight decay, no box:
  ``w <- w - (eps/2) [nbeta grad L_B(w) + gamma_loc (w - w*)] + sqrt(eps) N(0, I)``;
* chain c seeded as ``sample`` seeds it: ``seed = init_seed + c`` (the noise, torch's global RNG) and its
  DataLoader shuffled by a generator seeded ``init_seed + c`` (``sample``'s
  ``match_sampling_input_ids_across_chains = False``; its default True gives every chain the same
  batches, supjax gives each chain its own); model i of a loop with seed s uses ``init_seed = 100 +
  1000 (1000 s + i)``, so the models' chains are independent too;
* ``init_loss`` as ``sample``'s ``_write_init_loss`` computes it: the mean loss at w* over the first
  ``num_init_loss_batches = 32`` batches of the chain's loader (the first 32 batches the chain reads);
* the estimate by devinterp's own ``slt.llc.compute_llc`` on a DataTree laid out as ``sample`` writes
  it (``sampling_loss_micro [chain, step, batch, token_pos]``, ``init_loss [chain, token_pos]``, the
  sampler config's ``n_beta``): ``nbeta (mean over every step of the batch loss - mean init_loss)``,
  burn-in included, the step-0 loss at w* itself.

The toy model is ``y = ReLU(W W^T x + b)`` with supjax's reported loss (the LLC wing's): the squared
error summed over the n features, averaged over the batch; ``evaluate`` returns it per sample (one
"token position"), and the sampler backpropagates its mean. The data: each chain gets its own
torch Dataset of ``draws x batch`` samples ``x = u v``, ``u ~ Bernoulli(p_i)``, ``v ~ U(0, 2)``, drawn
once when the chain starts, so every batch a chain reads is fresh (the DataLoader never cycles).
supjax draws its batches inside the program from the same law.

Where the two differ (neither in expectation): devinterp's ``init_loss`` comes from 32 batches and one
mean over the chains is subtracted from every chain, so compute_llc's ``llc_std`` leaves out its error;
supjax pairs every draw with L(w*) on the same batch, chain by chain (:func:`compare` says how each
standard error is taken). devinterp's ``llc_std`` is ddof 0 (xarray), supjax's summary ``llc_std``
ddof 1 (pandas); :func:`compare` uses ddof 1 for both.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import devinterp
import devinterp.slt.sampler
import numpy as np
import torch
import tqdm
import xarray as xr
from devinterp.optim import SGMCMC
from devinterp.slt.llc import compute_llc
from devinterp.slt.sampler import sample_single_chain
from torch import nn

# devinterp's per-chain progress bar (sampler.trange) off, as in any benchmark: it has no switch for it
devinterp.slt.sampler.trange = functools.partial(tqdm.trange, disable=True)
SHIPPED_GC = devinterp.slt.sampler._gc_and_empty_cache  # gc.collect() as each chain starts and ends

INIT_SEED = 100  # devinterp's default init_seed
NUM_INIT_LOSS_BATCHES = 32  # devinterp's default num_init_loss_batches
# devinterp 2.0.1's defaults (4 chains x 200 draws, batch 32, n beta = B / ln B), with the step size and
# localization calibrated on the benchmark's toy run (devinterp has no default step; its localization
# default 0 lets a chain drift off w*).
SETTING = dict(step_size=1e-3, localization=100.0, chains=4, draws=200, batch_size=32)


# ---- the toy model in torch ------------------------------------------------------------------------


class ToyModel(nn.Module):
    """y = ReLU(x W W^T + b) for a row-vector batch x: [B, n]; W: [n, m], b: [n] (supjax.model.forward)."""

    def __init__(self, W: np.ndarray, b: np.ndarray):
        super().__init__()
        self.W = nn.Parameter(torch.tensor(np.asarray(W, np.float32)))
        self.b = nn.Parameter(torch.tensor(np.asarray(b, np.float32)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu((x @ self.W) @ self.W.T + self.b)


def per_sample_loss(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The squared error summed over the features, per sample: [B] (supjax.model.loss before its batch mean)."""
    return torch.square(model(x) - x).sum(-1)


def evaluate(model: nn.Module, batch: dict) -> tuple[torch.Tensor, dict]:
    """devinterp's ``evaluate(model, batch) -> (loss, info)``: the per-sample loss, [B, 1] (one token position)."""
    return per_sample_loss(model, batch["input_ids"])[:, None], {}


class FeatureDataset(torch.utils.data.Dataset):
    """``size`` samples of the toy model's features, drawn once: x_i = u_i v_i, u_i ~ Bernoulli(p_i), v_i ~ U(0, 2).
    Items are dicts with ``input_ids`` because devinterp's sampler reads that key."""

    def __init__(self, p: np.ndarray, size: int, generator: torch.Generator):
        p = torch.tensor(np.asarray(p, np.float32))
        active = torch.rand(size, len(p), generator=generator) < p
        self.x = active * (2.0 * torch.rand(size, len(p), generator=generator))

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict:
        return {"input_ids": self.x[i]}


def default_nbeta(batch_size: int) -> float:
    return batch_size / math.log(batch_size)  # devinterp.utils.default_nbeta(batch_size)


def init_loss(model: nn.Module, dataset: FeatureDataset, batch_size: int, seed: int, batches: int) -> float:
    """``sample``'s ``_write_init_loss`` for one chain: the loss at w* averaged over the first ``batches``
    batches of a DataLoader shuffled as the chain's (drop_last, the same generator seed)."""
    generator = torch.Generator().manual_seed(seed)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True, generator=generator,
                                         drop_last=True)  # fmt: skip
    total = 0.0
    with torch.no_grad():
        for i, batch in enumerate(loader):
            if i == batches:
                break
            total += float(per_sample_loss(model, batch["input_ids"]).mean()) / batches
    return total


def devinterp_llc(W, b, p, *, nbeta, step_size, localization, chains, draws, batch_size, seed=0) -> dict:
    """lambda_hat of one toy model by devinterp: ``chains`` chains of ``sample_single_chain`` and
    ``compute_llc``. Returns ``llc_per_chain`` and ``compute_llc``'s other outputs as numpy."""
    model = ToyModel(W, b)
    masks = {name: None for name, _ in model.named_parameters()}  # every parameter, unrestricted
    kwargs = dict(lr=step_size, nbeta=nbeta, localization=localization, noise_level=1.0, weight_decay=0.0,
                  bounding_box_size=None, save_metrics=False)  # fmt: skip
    losses = np.zeros((chains, draws, batch_size, 1), np.float32)
    init = np.zeros((chains, 1), np.float32)

    def record(loss, input_ids, chain, step, micro_step):
        losses[chain, step, :, 0] = loss[:, 0].numpy()

    init_seed = INIT_SEED + 1000 * seed  # sample()'s init_seed: chain c's noise and shuffle seed init_seed + c
    for chain in range(chains):
        data = torch.Generator().manual_seed(1_000_003 * seed + chain)
        dataset = FeatureDataset(p, draws * batch_size, data)
        batches = min(NUM_INIT_LOSS_BATCHES, draws)
        init[chain] = init_loss(model, dataset, batch_size, init_seed + chain, batches)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            sample_single_chain(
                model, dataset, evaluate, masks, num_draws=draws, sampling_method=SGMCMC.sgld,
                sampling_method_kwargs=kwargs, chain=chain, seed=init_seed + chain,
                dataloader_seed=init_seed + chain, batch_size=batch_size, micro_callback=record,
            )  # fmt: skip
    dims = ("chain", "step", "batch_sampling", "token_pos")
    dataset = xr.Dataset(
        {"sampling_loss_micro": (dims, losses), "init_loss": (("chain", "token_pos"), init)},
        attrs={"metadata": {"config": {"sampler": {"n_beta": nbeta}}}},
    )
    result = compute_llc(xr.DataTree(dataset))
    trace = np.asarray(result.loss_trace.values, np.float64)  # [chain, step]: the batch mean loss
    return {
        "llc_per_chain": np.asarray(result.llc_per_chain.values, np.float64),
        # each chain against its own init_loss: the same mean as llc_per_chain's, but the spread includes
        # init_loss's sampling error, which compute_llc's (one init_loss for every chain) leaves out
        "llc_own_init": nbeta * (trace.mean(axis=1) - init[:, 0].astype(np.float64)),
        "init_loss": float(result.init_loss),
        "finite": bool(np.all(np.isfinite(losses))),
    }


def toy_models(run, indices) -> dict[int, tuple]:
    """(W, b, p) of the toy models ``indices`` of a supjax run, as numpy."""
    return {int(i): (*run.weights(i), run.feature_probabilities(i)) for i in indices}


def devinterp_all(models: dict[int, tuple], setting: dict, seed: int = 0, gc: bool = True) -> dict:
    """devinterp looping over ``models`` ({index: (W, b, p)}): per model, lambda_hat per chain
    (``llc_per_chain``, compute_llc's) and against each chain's own init_loss (``llc_own_init``). Model i
    runs with seed ``1000 seed + i``: models get independent data and noise (with one seed for all, every
    model of one law would read the same batches, and their errors would move together).
    ``gc=False`` replaces the sampler's ``gc.collect()`` at each chain's start and end by nothing."""
    devinterp.slt.sampler._gc_and_empty_cache = SHIPPED_GC if gc else (lambda: None)
    try:
        nbeta = default_nbeta(setting["batch_size"])
        out = {}
        for index, (W, b, p) in models.items():
            est = devinterp_llc(W, b, p, nbeta=nbeta, seed=1000 * seed + index, **setting)
            out[index] = {k: est[k] for k in ("llc_per_chain", "llc_own_init")}
        return out
    finally:
        devinterp.slt.sampler._gc_and_empty_cache = SHIPPED_GC


# ---- supjax: the LLC wing ------------------------------------------------------------------------


def llc_spec(setting: dict, **extra):
    from supjax import llc

    return llc.LlcSpec(step_sizes=(setting["step_size"],), localizations=(setting["localization"],),
                       chains=setting["chains"], draws=setting["draws"], batch_size=setting["batch_size"],
                       progress=False, **extra)  # fmt: skip


def supjax_all(run, setting: dict, models=(), seed: int = 0) -> dict[int, np.ndarray]:
    """The LLC wing's one compiled program over the chosen toy models (all of them by default):
    lambda_hat per chain of each."""
    from supjax import llc

    table = llc.run_llc(run, llc_spec(setting, models=tuple(models), seed=seed, data_seed=seed)).table()
    return {int(k): g.sort_values("chain").llc.to_numpy(np.float64) for k, g in table.groupby("model")}


# ---- the checks ------------------------------------------------------------------------------------


def check_step(n=20, m=5, batch=32, eps=1e-3, nbeta=7.0, gamma=100.0, seed=0) -> dict:
    """One SGLD step from w = w* + delta (so the localization acts) on one batch: devinterp's
    ``SGMCMC.sgld`` against supjax's ``chain_step`` with the LLC wing's loss and gradient. The noise of
    each is regenerated from its own RNG and taken out; what is left, ``w - (eps/2)[nbeta grad L_B(w) +
    gamma (w - w*)]``, and the batch loss must agree to float32 rounding. Returns the largest
    differences, relative to the largest entry."""
    import jax
    import jax.numpy as jnp

    from supjax import variants
    from supjax.llc import sgld

    rng = np.random.default_rng(seed)
    p = np.arange(1, n + 1.0) ** -0.5
    p /= p.sum() / 3
    W_star = rng.normal(0, m**-0.5, (n, m)).astype(np.float32)
    b_star = rng.normal(0, 0.1, n).astype(np.float32)
    W = (W_star + rng.normal(0, 0.05, (n, m))).astype(np.float32)
    b = (b_star + rng.normal(0, 0.05, n)).astype(np.float32)
    x = ((rng.random((batch, n)) < p) * rng.uniform(0, 2, (batch, n))).astype(np.float32)

    # devinterp: the optimizer is made at w* (its localization centre), then the chain stands at w
    model = ToyModel(W_star, b_star)
    opt = SGMCMC.sgld(model.parameters(), lr=eps, nbeta=nbeta, localization=gamma)
    with torch.no_grad():
        model.W.copy_(torch.from_numpy(W))
        model.b.copy_(torch.from_numpy(b))
    loss_t = per_sample_loss(model, torch.from_numpy(x)).mean()
    loss_t.backward()
    opt.step(noise_generator=torch.Generator().manual_seed(seed))
    replay = torch.Generator().manual_seed(seed)  # step() draws W's noise, then b's
    noise_t = [torch.normal(0.0, 1.0, size=a.shape, generator=replay) for a in (W, b)]
    torch_det = [(q.detach() - math.sqrt(eps) * z).numpy() for q, z in zip((model.W, model.b), noise_t, strict=True)]

    # supjax: the wing's loss_and_grad (supjax.llc.program.make_train): the reported loss, n x MSE's gradient
    definition = variants.get("tied", batch_tile=batch)

    def loss_and_grad(w, xb):
        value, grad = definition.loss_and_grad(w, xb)
        return value, jax.tree.map(lambda g: g * xb.shape[-1], grad)

    w_star = {"W": jnp.asarray(W_star), "b": jnp.asarray(b_star)}
    state = sgld.init_chain(w_star)._replace(w={"W": jnp.asarray(W), "b": jnp.asarray(b)})
    key = jax.random.key(seed)
    hyper = sgld.SgldHyper(jnp.float32(nbeta), jnp.float32(gamma), jnp.float32(eps))
    new, stats = sgld.chain_step(loss_and_grad, state, w_star, hyper, jnp.asarray(x), key, 1)
    keys = jax.random.split(key, 2)  # chain_step: one key per leaf, leaves in order W, b
    noise_j = [jax.random.normal(k, a.shape, jnp.float32) for k, a in zip(keys, (W, b), strict=True)]
    jax_det = [np.asarray(new.w[k]) - math.sqrt(eps) * np.asarray(z) for k, z in zip(("W", "b"), noise_j, strict=True)]

    update = [np.max(np.abs(a - w0)) for a, w0 in zip(jax_det, (W, b), strict=True)]
    return {
        "loss": abs(float(stats["losses"]) - float(loss_t.detach())) / abs(float(loss_t.detach())),
        "W": float(np.max(np.abs(torch_det[0] - jax_det[0])) / np.max(np.abs(jax_det[0]))),
        "b": float(np.max(np.abs(torch_det[1] - jax_det[1])) / np.max(np.abs(jax_det[1]))),
        # the same differences relative to the drift (w - the deterministic part), so a tiny step cannot hide one
        "W_update": float(np.max(np.abs(torch_det[0] - jax_det[0])) / update[0]),
        "b_update": float(np.max(np.abs(torch_det[1] - jax_det[1])) / update[1]),
    }


def compare(ours: dict[int, np.ndarray], theirs: dict[int, dict], run) -> list[dict]:
    """Per toy model: both estimates' chain mean and std (ddof 1), and z, the difference of the means over
    their combined standard error. supjax's chains are independent and each is paired with L(w*) on its
    own batches: its standard error is std / sqrt(chains). devinterp's compute_llc subtracts one init_loss
    (the mean over chains) from every chain, so its chains' spread leaves out that init_loss's own error:
    its standard error is the spread of each chain against its own init_loss (the same mean) / sqrt(chains).
    ``z_spread`` uses compute_llc's spread instead (what comparing llc_std would do)."""
    rows = []
    for index in sorted(ours):
        a, b, own = ours[index], theirs[index]["llc_per_chain"], theirs[index]["llc_own_init"]
        se_a, se_b = np.std(a, ddof=1) / math.sqrt(len(a)), np.std(own, ddof=1) / math.sqrt(len(own))
        se, naive = math.hypot(se_a, se_b), math.hypot(se_a, np.std(b, ddof=1) / math.sqrt(len(b)))
        row = run.models[index]
        rows.append({
            "model": index, "m": int(row["m"]), "weight_decay": float(row["weight_decay"]), "seed": int(row["seed"]),
            "chains": len(a), "supjax_mean": float(np.mean(a)), "supjax_std": float(np.std(a, ddof=1)),
            "supjax_se": float(se_a), "devinterp_mean": float(np.mean(b)), "devinterp_std": float(np.std(b, ddof=1)),
            "devinterp_se": float(se_b), "combined_se": float(se), "z": float((np.mean(a) - np.mean(b)) / se),
            "z_spread": float((np.mean(a) - np.mean(b)) / naive),
        })  # fmt: skip
    return rows


def agreement_summary(rows: list[dict]) -> dict:
    z = np.array([r["z"] for r in rows])
    ratio = np.array([r["supjax_mean"] / r["devinterp_mean"] for r in rows])
    return {
        "models": len(rows),
        "mean_z": float(np.mean(z)),
        "rms_z": float(np.sqrt(np.mean(z**2))),  # about 1 when the two estimate one lambda with honest spreads
        "max_abs_z": float(np.max(np.abs(z))),
        "within_2se": float(np.mean(np.abs(z) <= 2)),
        "within_3se": float(np.mean(np.abs(z) <= 3)),
        "mean_ratio_supjax_over_devinterp": float(np.mean(ratio)),
        "rms_z_spread": float(np.sqrt(np.mean(np.array([r["z_spread"] for r in rows]) ** 2))),
    }


def agree(toy, setting: dict, models, chains: int, seed: int = 0) -> dict:
    """More chains at a few toy models: both estimates, per model, and their z-scores."""
    from supjax import load_run

    run = load_run(toy)
    setting = {**setting, "chains": chains}
    ours = supjax_all(run, setting, models=models, seed=seed)
    theirs = devinterp_all(toy_models(run, models), setting, seed=seed, gc=False)  # gc.collect changes no number
    rows = compare(ours, theirs, run)
    return {"setting": setting, "seed": seed, "rows": rows, "summary": agreement_summary(rows)}


# ---- the benchmark ---------------------------------------------------------------------------------


def machine() -> dict:
    cpu, flags = None, []
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and cpu is None:
                cpu = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = line.split(":", 1)[1].split()
    except OSError:
        pass
    wanted = ("avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")
    affinity = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {"cpu": cpu or platform.processor() or "unknown", "cores": os.cpu_count(), "pinned_to": affinity,
            "platform": platform.platform(), "flags": {f: f in flags for f in wanted}}  # fmt: skip


def versions() -> dict:
    import jax

    import supjax

    return {"python": platform.python_version(), "jax": jax.__version__, "jaxlib": __import__("jaxlib").__version__,
            "supjax": getattr(supjax, "__version__", "editable"), "torch": torch.__version__,
            "devinterp": getattr(devinterp, "__version__", None) or _dist_version("devinterp"),
            "torch_threads": torch.get_num_threads()}  # fmt: skip


def _dist_version(name: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def worker(models_npz: str, setting_json: str, out_json: str) -> None:
    """The devinterp side of the benchmark, in a process of its own that imports no jax: the models from
    ``models_npz``, the setting (and ``seed``, ``gc``) from ``setting_json``; writes the loop's seconds
    (imports and the model file excluded) and lambda_hat per chain."""
    torch.set_num_threads(1)
    with np.load(models_npz) as f:
        indices = sorted({int(k.split("_")[1]) for k in f.files})
        models = {i: (f[f"W_{i}"], f[f"b_{i}"], f[f"p_{i}"]) for i in indices}
    options = json.loads(Path(setting_json).read_text())
    setting = {k: options[k] for k in SETTING}
    started = time.perf_counter()
    llc = devinterp_all(models, setting, seed=options["seed"], gc=options["gc"])
    seconds = time.perf_counter() - started
    llc = {str(k): {name: v.tolist() for name, v in est.items()} for k, est in llc.items()}
    Path(out_json).write_text(json.dumps({"seconds": seconds, "llc": llc}))


def run_worker(models_npz: Path, setting: dict, seed: int, gc: bool, scratch: Path) -> tuple[float, dict]:
    """One devinterp loop over every model in a fresh process (this python, this CPU affinity)."""
    options, out = scratch / "setting.json", scratch / "devinterp.json"
    options.write_text(json.dumps({**setting, "seed": seed, "gc": gc}))
    subprocess.run([sys.executable, __file__, "_worker", str(models_npz), str(options), str(out)], check=True)
    result = json.loads(out.read_text())
    llc = {int(k): {name: np.asarray(v) for name, v in est.items()} for k, est in result["llc"].items()}
    return result["seconds"], llc


def pool(estimates: list[dict]) -> dict:
    """Chains of several independent runs, per model: {index: array} or {index: {name: array}}."""
    first = estimates[0]
    if isinstance(next(iter(first.values())), dict):
        return {i: {k: np.concatenate([e[i][k] for e in estimates]) for k in first[i]} for i in first}
    return {i: np.concatenate([e[i] for e in estimates]) for i in first}


def bench(toy, setting: dict, repeats: int, shipped_repeats: int) -> dict:
    """Every toy model's LLC: the LLC wing's one program in this process (cold: its first call, trace and
    compile included, the persistent compilation cache off; warm: later calls, no compile) against
    devinterp looping over the models, each loop in a fresh process that imports no jax. Interleaved
    (supjax, devinterp, supjax, devinterp, ...) so a busy machine slows both alike. devinterp runs as
    shipped (its sampler calls ``gc.collect()`` as each chain starts and ends: a second a call with
    devinterp's imports loaded on this CPU) and with that call made a no-op (its SGLD loop alone).
    Every run has its own seeds, so the agreement pools every run's chains per model."""
    from supjax import load_run

    run = load_run(toy)
    indices = list(range(len(run.models)))
    models = toy_models(run, indices)
    started = time.perf_counter()
    ours = [supjax_all(run, setting, seed=0)]
    cold = time.perf_counter() - started
    print(f"supjax cold (trace, compile, run): {cold:.2f} s", flush=True)
    supjax_warm, loops, theirs = [], {"no_gc": [], "shipped": []}, []
    plan = [kind for k in range(max(repeats, shipped_repeats))
            for kind, count in (("no_gc", repeats), ("shipped", shipped_repeats)) if k < count]  # fmt: skip
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        arrays = {f"{name}_{i}": a for i, (W, b, p) in models.items() for name, a in zip("Wbp", (W, b, p), strict=True)}
        np.savez(scratch / "models.npz", **arrays)
        for k, kind in enumerate(plan):
            started = time.perf_counter()
            ours.append(supjax_all(run, setting, seed=k + 1))
            supjax_warm.append(time.perf_counter() - started)
            seconds, llc = run_worker(scratch / "models.npz", setting, k, kind == "shipped", scratch)
            loops[kind].append(seconds)
            theirs.append(llc)
            print(f"round {k}: supjax warm {supjax_warm[-1]:.2f} s, devinterp ({kind}) {seconds:.2f} s", flush=True)
    rows = compare(pool(ours), pool(theirs), run)
    # the mean relative difference over the models, run by run: what is left of any shared fluctuation
    shifts = [float(np.mean([np.mean(a[i]) / np.mean(b[i]["llc_per_chain"]) - 1 for i in indices]))
              for a, b in zip(ours[1:], theirs, strict=True)]  # fmt: skip
    steps = len(indices) * setting["chains"] * setting["draws"]
    warm = float(np.median(supjax_warm))
    out = {
        "models": len(indices),
        "parameters_per_model": sorted({sum(int(np.size(a)) for a in run.weights(i)) for i in indices}),
        "sgld_steps": steps,
        "supjax_cold_seconds": cold,
        "supjax_warm_seconds": supjax_warm,
        "supjax_warm_median": warm,
        "supjax_chain_steps_per_s": steps / warm,
    }
    for kind, times in loops.items():
        if times:
            loop = float(np.median(times))
            out[f"devinterp_{kind}_seconds"] = times
            out[f"devinterp_{kind}_median"] = loop
            out[f"devinterp_{kind}_chain_steps_per_s"] = steps / loop
            out[f"ratio_{kind}_warm"] = loop / warm
            out[f"ratio_{kind}_cold"] = loop / cold
    out["agreement_all_models"] = {
        "chains": {"supjax": len(ours) * setting["chains"], "devinterp": len(theirs) * setting["chains"]},
        "mean_relative_difference_by_run": shifts,
        "summary": agreement_summary(rows),
        "rows": rows,
    }
    return out


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_worker"]:
        worker(*argv[1:4])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=("check", "agree", "bench", "all"))
    parser.add_argument("toy", nargs="?", help="a toy run directory (supjax sweep --out)")
    parser.add_argument("--models", type=int, nargs="*", default=[2, 17, 35, 50], help="toy models for agree")
    parser.add_argument("--chains", type=int, default=16, help="chains per model for agree")
    parser.add_argument("--seed", type=int, default=0, help="seed of both sides' chains for agree")
    parser.add_argument("--repeats", type=int, default=3, help="timed loops of devinterp without its gc.collect")
    parser.add_argument("--shipped-repeats", type=int, default=1, help="timed loops of devinterp as shipped")
    parser.add_argument("--out", help="write the JSON here")
    args = parser.parse_args(argv)
    if args.mode != "check" and not args.toy:
        parser.error(f"{args.mode} needs a toy run directory")
    os.environ["SUPJAX_CACHE_DIR"] = "off"  # before supjax compiles anything: its cold time is a real compile
    torch.set_num_threads(1)
    nbeta = default_nbeta(SETTING["batch_size"])
    result = {"date": time.strftime("%Y-%m-%d"), "what": "LLC of toy models: supjax's LLC wing against devinterp 2.0.1",
              "machine": machine(), "versions": versions(), "toy_run": args.toy,
              "setting": {**SETTING, "nbeta": nbeta, "burn_in": 0, "loss": "squared error summed over features, "
                          "mean over the batch (supjax's reported loss)"}}  # fmt: skip
    failed = False
    if args.mode in ("check", "all"):
        step = check_step()
        result["update_check"] = step
        print("update check (relative differences):", json.dumps(step), flush=True)
        failed |= max(step.values()) > 1e-4
    if args.mode in ("agree", "all"):
        result["agreement"] = agree(args.toy, SETTING, args.models, args.chains, args.seed)
        for row in result["agreement"]["rows"]:
            print(
                "model {model} (m={m}, gamma={weight_decay}): supjax {supjax_mean:.3f} +- {supjax_std:.3f}, "
                "devinterp {devinterp_mean:.3f} +- {devinterp_std:.3f} ({chains} chains), z = {z:+.2f} "
                "(se {supjax_se:.3f}, {devinterp_se:.3f})".format(**row)
            )
        print("agreement:", json.dumps(result["agreement"]["summary"]), flush=True)
    if args.mode in ("bench", "all"):
        result["benchmark"] = b = bench(args.toy, SETTING, args.repeats, args.shipped_repeats)
        line = f"{b['models']}-model LLC: supjax cold {b['supjax_cold_seconds']:.2f} s, "
        line += f"warm {b['supjax_warm_median']:.2f} s"
        for kind in ("no_gc", "shipped"):
            if f"devinterp_{kind}_median" in b:
                line += (f"; devinterp ({kind}) {b[f'devinterp_{kind}_median']:.2f} s = {b[f'ratio_{kind}_warm']:.1f}x "
                         f"warm, {b[f'ratio_{kind}_cold']:.1f}x cold")  # fmt: skip
        print(line)
        agreement = b["agreement_all_models"]
        print(f"agreement over every model ({agreement['chains']} chains, pooled over the runs):",
              json.dumps(agreement["summary"]), "mean (supjax / devinterp - 1) by run:",
              [round(v, 3) for v in agreement["mean_relative_difference_by_run"]])  # fmt: skip
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
        print("wrote", args.out)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
