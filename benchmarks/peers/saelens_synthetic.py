"""supjax's SAE wing against SAELens (``sae_lens.synthetic``): TopK SAEs on the same dictionaries.

    taskset -c 0 benchmarks/peers/.venv-saelens/bin/python benchmarks/peers/saelens_synthetic.py \\
        [--steps 2000] [--batch 1024] [--lr 1e-3] [--seeds 1] [--toy-run DIR] [--json FILE] [--quick]

(``bash benchmarks/peers/sae.sh`` makes the venv on first use and runs this.) One process holds both
libraries: the venv has ``--system-site-packages``, so it sees the project's jax and supjax beside
SAELens's torch; only one of them computes at a time, each on the cores ``taskset`` gives.

For every *dictionary* (the true feature directions W: [n, m], and the law of the features: firing
probabilities p: [n] and the value of an active feature) the benchmark trains the grid of TopK SAEs
k in {true L0, 2 true L0} x d in {n, 2n}, one SAE per case, with

* **SAELens**: ``sae_lens.synthetic.train_toy_sae`` on a ``FeatureDictionary`` holding W and an
  ``ActivationGenerator`` with p (magnitude 1, SAELens's default; for U(0, 2) values a
  ``modify_activations`` hook multiplies by 2 u), its ``TopKTrainingSAE`` with its defaults (AuxK
  loss for dead latents, coefficient 1; top-k on pre-activations times decoder norms; decoder rows
  initialised at norm 0.1; gradients clipped to norm 1 by its trainer), Adam at the constant lr;
* **supjax**: ``supjax.sae.run_sae`` on ``supjax.sae.weights_run(W, "file:p.npy")`` with the same k,
  d, lr (constant: ``lr_decay_fraction = 0``), batch and steps, supjax's ``topk`` defaults (unit-norm
  decoder rows, no AuxK, no clipping), once per case alone ("alone") and once with the dictionary's
  whole grid in one program ("grid"; the paper-run toy models of one n share one program).

Both see the same data law: h = x (c W), with c chosen once (numpy, 2^16 samples) so that
E||h|| = sqrt(m) (the normalisation both libraries offer; so supjax runs ``normalise_inputs =
False`` and SAELens ``normalize_activations = "none"``), and both train on batch x steps samples.
They draw their own samples (their own generators) from that law.

Every SAE is then measured by ONE implementation on ONE evaluation set (``--eval-samples`` drawn
with numpy from the same law, the same for both libraries), each library's own encoder and decoder
giving the codes and the reconstruction:

* ``mcc``: the Hungarian matching (``scipy.optimize.linear_sum_assignment``, maximised) of |cos|
  between the true rows W_i and the decoder rows, averaged over the min(n, d) pairs (O'Neill et al.
  2024; ``sae_lens.synthetic.mean_correlation_coefficient`` and ``supjax.sae.evaluate`` compute the
  same: the test checks all three agree);
* ``dead``: latents never active on the evaluation set; ``l0``: active latents per sample;
* ``fvu``: sum ||h - h_hat||^2 / sum ||h - mean h||^2.

Time is wall-clock on the pinned cores, interleaved case by case (SAELens first on even cases,
supjax first on odd ones) so that contention hits both alike: SAELens's ``train_toy_sae`` call
(there is nothing to compile); supjax's ``run_sae`` call, split into compile (jax's compile
events) and train (the rest). Compilation is cold (``SUPJAX_CACHE_DIR=off`` unless set).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("SUPJAX_CACHE_DIR", "off")  # cold compiles: what a first run pays
os.environ.setdefault("TQDM_DISABLE", "1")  # train_toy_sae's progress bar

import numpy as np
import scipy.optimize

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


# ---- the one measurement, for both libraries ----------------------------------------------------


def unit_rows(W: np.ndarray) -> np.ndarray:
    """Rows scaled to unit norm; a (near) zero row stays 0, so its cosines are 0."""
    W = np.asarray(W, np.float64)
    norms = np.linalg.norm(W, axis=1, keepdims=True)
    return np.where(norms > 1e-12, W / np.where(norms > 1e-12, norms, 1.0), 0.0)


def mcc(true_rows: np.ndarray, decoder_rows: np.ndarray) -> float:
    """Mean correlation coefficient: the mean |cos| over the Hungarian matching of true feature
    directions ``[n, m]`` to decoder rows ``[d, m]`` (min(n, d) pairs)."""
    cosine = np.abs(unit_rows(true_rows) @ unit_rows(decoder_rows).T)
    rows, cols = scipy.optimize.linear_sum_assignment(cosine, maximize=True)
    return float(cosine[rows, cols].mean())


def measure(code_and_reconstruction, decoder_rows, true_rows, eval_h) -> dict:
    """MCC, dead latents, L0 and FVU of one SAE. ``code_and_reconstruction(h) -> (f [B, d], h_hat
    [B, m])`` as numpy (the library's own encoder and decoder); ``eval_h``: chunks of h."""
    d = decoder_rows.shape[0]
    alive = np.zeros(d, bool)
    active = samples = 0
    error = 0.0
    total, total_sq, count = 0.0, 0.0, 0
    for h in eval_h:
        f, h_hat = code_and_reconstruction(h)
        fires = f != 0
        alive |= fires.any(axis=0)
        active += int(fires.sum())
        samples += h.shape[0]
        error += float(np.sum((np.asarray(h, np.float64) - h_hat) ** 2))
        total = total + np.sum(h, axis=0, dtype=np.float64)
        total_sq += float(np.sum(np.asarray(h, np.float64) ** 2))
        count += h.shape[0]
    variance = total_sq - float(np.sum(total**2)) / count
    return {
        "mcc": mcc(true_rows, decoder_rows),
        "dead": int(d - alive.sum()),
        "l0": active / samples,
        "fvu": error / variance,
    }


# ---- the dictionaries and the cases -------------------------------------------------------------


@dataclasses.dataclass
class Dictionary:
    """True features: directions ``W: [n, m]`` (rows), firing probabilities ``p: [n]``, values."""

    name: str
    W: np.ndarray
    p: np.ndarray
    values: str  # "unit" (every active feature is 1) or "uniform_0_2" (U(0, 2), the toy models' law)
    source: str  # where W comes from
    group: str = ""  # dictionaries of one group share one supjax program in the "grid" runs
    scale: float = 1.0  # c: the data are x (c W), E||h|| = sqrt(m)

    @property
    def n(self) -> int:
        return self.W.shape[0]

    @property
    def m(self) -> int:
        return self.W.shape[1]

    @property
    def true_l0(self) -> float:
        return float(self.p.sum())

    def ks(self) -> tuple[int, int]:
        k = max(1, round(self.true_l0))
        return (k, 2 * k)

    def sizes(self) -> tuple[int, int]:
        return (self.n, 2 * self.n)


def power_law(n: int, l0: float, alpha: float = 1.0) -> np.ndarray:
    """p_i ∝ i^-alpha, scaled so that sum p = l0 (the expected number of active features)."""
    p = np.arange(1, n + 1, dtype=np.float64) ** -alpha
    p = l0 * p / p.sum()
    assert p.max() <= 1.0, "l0 too large for this n"
    return p


def random_unit(n: int, m: int, seed: int) -> np.ndarray:
    W = np.random.default_rng(seed).standard_normal((n, m))
    return (W / np.linalg.norm(W, axis=1, keepdims=True)).astype(np.float32)


def draw_features(d: Dictionary, count: int, rng: np.random.Generator) -> np.ndarray:
    """x: [count, n] from the dictionary's law (numpy; neither library's sampler)."""
    fires = rng.random((count, d.n), dtype=np.float32) < d.p.astype(np.float32)
    if d.values == "unit":
        return fires.astype(np.float32)
    return fires * rng.uniform(0.0, 2.0, (count, d.n)).astype(np.float32)


def set_scale(d: Dictionary, samples: int = 1 << 16, chunk: int = 8192) -> None:
    """c = sqrt(m) / E||x W|| over ``samples`` draws (seeded), so that E||h|| = sqrt(m)."""
    rng = np.random.default_rng([7, d.n, d.m])
    norms = [np.linalg.norm(draw_features(d, chunk, rng) @ d.W, axis=1) for _ in range(samples // chunk)]
    d.scale = float(np.sqrt(d.m) / np.mean(np.concatenate(norms)))


def eval_set(d: Dictionary, samples: int, chunk: int = 10_000) -> list[np.ndarray]:
    """The evaluation set, h = x (c W) in chunks: the same arrays for both libraries."""
    rng = np.random.default_rng([11, d.n, d.m])
    W = (d.scale * d.W).astype(np.float32)
    out, left = [], samples
    while left > 0:
        size = min(chunk, left)
        out.append(draw_features(d, size, rng) @ W)
        left -= size
    return out


def small_toy_model(n: int = 200, m: int = 16, steps: int = 4000, seed: int = 0) -> np.ndarray:
    """A toy model trained here with supjax (strong regime, gamma = -1, the paper's power law with
    alpha = 1 and U(0, 2) values): its W is a dictionary with the geometry superposition makes."""
    import supjax

    spec = supjax.SweepSpec(n=n, widths=(m,), weight_decays=(-1.0,), alphas=(1.0,), seeds=(seed,), steps=steps,
                            warmup_steps=steps // 10, batch_size=1024, progress=False)  # fmt: skip
    run = supjax.run_sweep(spec)
    return np.asarray(run.weights(0)[0], np.float32)


def dictionaries(args) -> list[Dictionary]:
    """The benchmark's dictionaries (``--quick``: the first one only, at n = 200)."""
    out = [Dictionary("random-200x16", random_unit(200, 16, 1), power_law(200, 2.0), "unit", "random unit rows")]
    if args.quick:
        return out
    toy = small_toy_model()
    out += [
        Dictionary("toy-200x16", toy, power_law(200, 1.0), "uniform_0_2", "supjax toy model (n 200, m 16, gamma -1)"),
        Dictionary("random-500x32", random_unit(500, 32, 2), power_law(500, 3.0), "unit", "random unit rows"),
        Dictionary("random-1000x64", random_unit(1000, 64, 3), power_law(1000, 4.0), "unit", "random unit rows"),
    ]
    if args.toy_run:
        out += paper_toy_models(args.toy_run, args.toy_widths)
    if args.only:
        wanted = args.only.split(",")
        unknown = set(wanted) - {d.name for d in out}
        if unknown:
            raise SystemExit(f"--only: no dictionary {sorted(unknown)}; there are {[d.name for d in out]}")
        out = [d for d in out if d.name in wanted]
    return out


def paper_toy_models(path: str, widths: tuple[int, ...]) -> list[Dictionary]:
    """Toy models of a supjax toy run (the paper-scale run, n = 1000): the most negative weight
    decay (the strong regime), alpha = 1, at each width in ``widths``; one program for all of them."""
    import supjax

    run = supjax.load_run(path)
    gamma = min(r["weight_decay"] for r in run.models)
    out = []
    for m in widths:
        [row] = [r for r in run.models if r["m"] == m and r["weight_decay"] == gamma and r["alpha"] == 1.0]
        W = np.asarray(run.weights(row["index"])[0], np.float32)
        p = np.asarray(run.feature_probabilities(row["index"]), np.float64)
        source = f"toy model {row['index']} of {Path(path).name} (m {m}, gamma {gamma:.3g}, alpha 1)"
        values = run.spec.feature_values if not run.spec.unit_values else "unit"
        out.append(Dictionary(f"paper-toy-{W.shape[0]}x{m}", W, p, values, source, group="paper-toy"))
    return out


# ---- SAELens -------------------------------------------------------------------------------------


def train_saelens(d: Dictionary, k: int, size: int, args, seed: int):
    """One TopK SAE with ``sae_lens.synthetic.train_toy_sae``: (wall seconds, CPU seconds, the SAE)."""
    import torch
    from sae_lens.saes.topk_sae import TopKTrainingSAE, TopKTrainingSAEConfig
    from sae_lens.synthetic import ActivationGenerator, FeatureDictionary, train_toy_sae

    torch.manual_seed(seed)
    features = FeatureDictionary(d.n, d.m, initializer=None)
    with torch.no_grad():
        features.feature_vectors.copy_(torch.from_numpy(d.scale * d.W))
    if d.values == "unit":
        modify = None
    else:  # U(0, 2): SAELens's magnitude 1 times 2u, with its own torch generator

        def modify(acts):
            return acts * (2.0 * torch.rand_like(acts))

    generator = ActivationGenerator(d.n, torch.from_numpy(d.p.astype(np.float32)), modify_activations=modify)
    sae = TopKTrainingSAE(TopKTrainingSAEConfig(d_in=d.m, d_sae=size, k=k))
    started, cpu = time.perf_counter(), time.process_time()
    train_toy_sae(sae, features, generator, training_samples=args.batch * args.steps, batch_size=args.batch,
                  lr=args.lr)  # fmt: skip
    return time.perf_counter() - started, time.process_time() - cpu, sae


def saelens_measure(sae, d: Dictionary, eval_h) -> dict:
    import torch

    sae.eval()

    @torch.no_grad()
    def code(h):
        f = sae.encode(torch.from_numpy(h))
        return f.numpy(), sae.decode(f).numpy()

    return measure(code, sae.W_dec.detach().numpy(), d.W, eval_h)


# ---- supjax --------------------------------------------------------------------------------------


class CompileClock:
    """Seconds jax spent tracing, lowering and compiling while it is entered."""

    EVENTS = ("/jax/core/compile/jaxpr_trace_duration", "/jax/core/compile/jaxpr_to_mlir_module_duration",
              "/jax/core/compile/backend_compile_duration")  # fmt: skip

    def __init__(self):
        import jax.monitoring

        self.seconds = 0.0
        self._on = False
        jax.monitoring.register_event_duration_secs_listener(self._listen)

    def _listen(self, event, duration, **kwargs):
        if self._on and event in self.EVENTS:
            self.seconds += duration

    def __enter__(self):
        self.seconds, self._on = 0.0, True
        return self

    def __exit__(self, *exc):
        self._on = False


CLOCK = None


def probabilities_file(d: Dictionary, work: Path) -> str:
    path = work / f"p-{d.name}.npy"
    work.mkdir(parents=True, exist_ok=True)
    np.save(path, d.p)
    return f"file:{path}"


def train_supjax(ds: list[Dictionary], ks, ratios, args, seeds, work: Path):
    """``run_sae`` on the toy "models" ``ds`` (one n, one p, one law), with the grid ks x ratios x
    seeds: (wall seconds, compile seconds, CPU seconds, the SaeRun)."""
    global CLOCK
    from supjax import sae

    first = ds[0]
    values = {"feature_values": "uniform_0_2", "unit_values": first.values == "unit"}
    if first.values not in ("unit", "uniform_0_2"):
        values["feature_values"] = first.values
    run = sae.weights_run([d.scale * d.W for d in ds], probabilities_file(first, work), **values)
    spec = sae.SaeSpec(architectures=("topk",), ks=tuple(ks), dictionary_ratios=tuple(ratios), lrs=(args.lr,),
                       seeds=tuple(seeds), steps=args.steps, batch_size=args.batch, lr_decay_fraction=0.0,
                       normalise_inputs=False, progress=False)  # fmt: skip
    CLOCK = CLOCK or CompileClock()
    started, cpu = time.perf_counter(), time.process_time()
    with CLOCK:
        result = sae.run_sae(run, spec)
    return time.perf_counter() - started, CLOCK.seconds, time.process_time() - cpu, result


def supjax_measures(result, ds: list[Dictionary], eval_sets: dict) -> dict:
    """{(dictionary name, k, d, seed): measures} of every SAE of a supjax run."""
    import jax

    from supjax.sae import architectures
    from supjax.sae.architectures import SaeHyper

    out = {}
    for group, state in zip(result.index, result.states, strict=True):
        params_all = state["params"]
        D = params_all["W_dec"].shape[-2]
        for (t, s), index in np.ndenumerate(group):
            row = result.saes[index]
            k, size = int(row["sparsity"]), int(row["dictionary_size"])
            topk = architectures.topk(architectures.k_bound([k], D))
            params = {name: np.asarray(v[t, s]) for name, v in params_all.items()}
            hyper = SaeHyper(np.float32(k), np.float32(0.0), (np.arange(D) < size).astype(np.float32))
            d = ds[row["model"]]
            scale = float(row["input_scale"])

            @jax.jit
            def code(h, params=params, hyper=hyper, topk=topk):
                f = topk.encode(params, h, hyper)
                return f, architectures.decode(params, f)

            def run(h, code=code, size=size, scale=scale):
                f, h_hat = code(scale * h)
                return np.asarray(f)[:, :size], np.asarray(h_hat) / scale

            out[d.name, k, size, int(row["seed"])] = measure(run, params["W_dec"][:size], d.W, eval_sets[d.name])
    return out


# ---- the run -------------------------------------------------------------------------------------


def machine() -> dict:
    """The CPU model and the flags that decide a CPU's matmul speed (from /proc/cpuinfo), the cores."""
    cpu, flags = platform.processor() or "unknown", set()
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        cpu = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")), cpu)
        flags = next((set(ln.split(":", 1)[1].split()) for ln in lines if ln.startswith("flags")), set())
    except OSError:
        pass
    wanted = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
    return {"cpu": cpu, "cores": os.cpu_count(), "cores_used": sorted(os.sched_getaffinity(0)),
            "flags": {f: f in flags for f in wanted}, "platform": platform.platform()}  # fmt: skip


def versions() -> dict:
    import jax
    import sae_lens
    import torch

    import supjax

    try:  # the commit of the supjax imported (None when it is not a git checkout, e.g. a git archive)
        where = Path(supjax.__file__).resolve().parents[1]
        if not (where / ".git").exists():
            raise OSError(f"{where} is not a git checkout")
        commit = subprocess.run(["git", "-C", str(where), "rev-parse", "HEAD"], capture_output=True, text=True,
                                check=True).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        commit = None
    return {"sae_lens": sae_lens.__version__, "torch": torch.__version__, "jax": jax.__version__,
            "supjax": supjax.__version__, "supjax_from": str(Path(supjax.__file__).parent), "commit": commit,
            "python": platform.python_version(), "torch_threads": torch.get_num_threads()}  # fmt: skip


def run_benchmark(args) -> dict:
    import torch

    torch.set_num_threads(len(os.sched_getaffinity(0)))
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    ds = dictionaries(args)
    seeds = list(range(args.seeds))
    eval_sets = {}
    for d in ds:
        set_scale(d)
        eval_sets[d.name] = eval_set(d, args.eval_samples)
    rows, number = [], 0
    for d in ds:
        ks, sizes = d.ks(), d.sizes()
        for k in ks:
            for size in sizes:
                for seed in seeds:
                    case = {"dictionary": d.name, "source": d.source, "n": d.n, "m": d.m, "values": d.values,
                            "true_l0": d.true_l0, "k": k, "d": size, "seed": seed, "batch": args.batch,
                            "steps": args.steps, "samples": args.batch * args.steps, "lr": args.lr}  # fmt: skip
                    order = ("saelens", "supjax") if number % 2 == 0 else ("supjax", "saelens")
                    for library in order:
                        if library == "saelens":
                            seconds, cpu, model = train_saelens(d, k, size, args, seed)
                            found = saelens_measure(model, d, eval_sets[d.name])
                            case["saelens"] = {**found, "train_s": seconds, "cpu_s": cpu}
                        else:
                            wall, compile_s, cpu, result = train_supjax([d], [k], [size / d.n], args, [seed], work)
                            found = supjax_measures(result, [d], eval_sets)[d.name, k, size, seed]
                            case["supjax"] = {**found, "wall_s": wall, "compile_s": compile_s,
                                              "train_s": wall - compile_s, "cpu_s": cpu}  # fmt: skip
                    case["time_ratio"] = case["saelens"]["train_s"] / case["supjax"]["wall_s"]
                    case["time_ratio_train"] = case["saelens"]["train_s"] / case["supjax"]["train_s"]
                    case["cpu_ratio"] = case["saelens"]["cpu_s"] / case["supjax"]["cpu_s"]
                    print(one_line(case), flush=True)
                    rows.append(case)
                    number += 1
    grids = []
    for group in dict.fromkeys(d.group or d.name for d in ds):
        members = [d for d in ds if (d.group or d.name) == group]
        ratios = sorted({s / members[0].n for s in members[0].sizes()})
        wall, compile_s, cpu, result = train_supjax(members, members[0].ks(), ratios, args, seeds, work)
        found = supjax_measures(result, members, eval_sets)
        count = len(found)
        grids.append({"dictionaries": [d.name for d in members], "saes": count, "wall_s": wall,
                      "compile_s": compile_s, "cpu_s": cpu, "wall_per_sae_s": wall / count,
                      "train_per_sae_s": (wall - compile_s) / count})  # fmt: skip
        for case in rows:
            key = (case["dictionary"], case["k"], case["d"], case["seed"])
            if key in found:
                case["supjax_grid"] = {
                    **found[key],
                    "wall_per_sae_s": wall / count,
                    "train_per_sae_s": (wall - compile_s) / count,
                    "cpu_per_sae_s": cpu / count,
                }
                case["time_ratio_grid"] = case["saelens"]["train_s"] / case["supjax_grid"]["wall_per_sae_s"]
        print(f"grid {group}: {count} SAEs in one program, {wall:.1f} s ({compile_s:.1f} s compiling)", flush=True)
    return {
        "date": str(datetime.date.today()),
        "workload": "saelens-synthetic-topk",
        "command": f"taskset -c {','.join(map(str, sorted(os.sched_getaffinity(0))))} python {' '.join(sys.argv)}",
        "machine": machine(),
        "versions": versions(),
        "note": args.note,
        "settings": {
            "steps": args.steps,
            "batch": args.batch,
            "lr": args.lr,
            "seeds": args.seeds,
            "eval_samples": args.eval_samples,
            "lr_schedule": "constant",
            "architecture": "topk",
        },
        "cases": rows,
        "grids": grids,
        "summary": summary(rows),
    }


def summary(rows: list[dict]) -> dict:
    gaps = [r["supjax"]["mcc"] - r["saelens"]["mcc"] for r in rows]
    saelens_s = sum(r["saelens"]["train_s"] for r in rows)
    return {
        "cases": len(rows),
        "mcc_supjax_ge_saelens": sum(g >= 0 for g in gaps),
        "min_mcc_gap": min(gaps),
        "mean_mcc_gap": float(np.mean(gaps)),
        "saelens_s_per_sae": saelens_s / len(rows),
        "supjax_alone_wall_s_per_sae": sum(r["supjax"]["wall_s"] for r in rows) / len(rows),
        "supjax_alone_train_s_per_sae": sum(r["supjax"]["train_s"] for r in rows) / len(rows),
        "ratio_alone_wall": saelens_s / sum(r["supjax"]["wall_s"] for r in rows),
        "ratio_alone_train": saelens_s / sum(r["supjax"]["train_s"] for r in rows),
        "min_case_ratio_alone_wall": min(r["time_ratio"] for r in rows),
        "ratio_grid_wall": saelens_s / sum(r["supjax_grid"]["wall_per_sae_s"] for r in rows if "supjax_grid" in r),
        "ratio_alone_cpu": sum(r["saelens"]["cpu_s"] for r in rows) / sum(r["supjax"]["cpu_s"] for r in rows),
        "ratio_grid_cpu": sum(r["saelens"]["cpu_s"] for r in rows)
        / sum(r["supjax_grid"]["cpu_per_sae_s"] for r in rows if "supjax_grid" in r),
        "min_case_ratio_alone_cpu": min(r["cpu_ratio"] for r in rows),
    }


def one_line(case: dict) -> str:
    a, b = case["saelens"], case["supjax"]
    return (
        f"{case['dictionary']} k={case['k']} d={case['d']} seed={case['seed']}: MCC SAELens {a['mcc']:.3f} "
        f"supjax {b['mcc']:.3f}; dead {a['dead']} / {b['dead']}; L0 {a['l0']:.2f} / {b['l0']:.2f}; "
        f"time {a['train_s']:.1f} s / {b['wall_s']:.1f} s ({b['compile_s']:.1f} compiling): "
        f"{case['time_ratio']:.2f}x; "
        f"CPU {a['cpu_s']:.1f} s / {b['cpu_s']:.1f} s: {case['cpu_ratio']:.2f}x"
    )


def markdown(result: dict) -> str:
    """The RESULTS.md table of a result: per case, SAELens / supjax (alone) and the time ratios
    (SAELens's seconds over supjax's: wall with compile, CPU, and wall per SAE of the grid program)."""
    lines = ["| dictionary | n | m | L0 | k | d | MCC | dead | L0 | s | compile s | ratio | CPU ratio | grid ratio |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in result["cases"]:
        a, b = r["saelens"], r["supjax"]
        lines.append(
            f"| {r['dictionary']} | {r['n']} | {r['m']} | {r['true_l0']:.2f} | {r['k']} | {r['d']} "
            f"| {a['mcc']:.3f} / {b['mcc']:.3f} | {a['dead']} / {b['dead']} | {a['l0']:.2f} / {b['l0']:.2f} "
            f"| {a['train_s']:.1f} / {b['wall_s']:.1f} | {b['compile_s']:.1f} | {r['time_ratio']:.2f}x "
            f"| {r['cpu_ratio']:.2f}x | {r.get('time_ratio_grid', float('nan')):.2f}x |"
        )
    return "\n".join(lines)


def arguments(argv=None) -> argparse.Namespace:
    """The command line's options (``argv``: a list, for a caller such as the test)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=2000, help="training steps (samples = batch x steps)")
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam's (constant) learning rate, both libraries")
    parser.add_argument("--seeds", type=int, default=1, help="SAE seeds per case")
    parser.add_argument("--eval-samples", type=int, default=100_000)
    parser.add_argument("--toy-run", help="a supjax toy run at n = 1000 (the paper-scale run): adds its toy models")
    parser.add_argument("--toy-widths", default="25,63", help="the widths of --toy-run's models to use")
    parser.add_argument("--only", help="these dictionaries only (names, comma-separated)")
    parser.add_argument("--quick", action="store_true", help="one dictionary (n = 200): a smoke check")
    parser.add_argument("--work", default="/tmp/saelens-peer", help="scratch files (the p vectors)")
    parser.add_argument("--json", help="write the result here")
    parser.add_argument("--note", default="", help="the state of the machine during the run")
    args = parser.parse_args(argv)
    args.toy_widths = tuple(int(w) for w in args.toy_widths.split(","))
    return args


def main(argv=None) -> dict:
    result = run_benchmark(args := arguments(argv))
    text = json.dumps(result, indent=1)
    if args.json:
        Path(args.json).write_text(text + "\n")
    print(json.dumps(result["summary"], indent=1))
    print(markdown(result))
    return result


if __name__ == "__main__":
    main()
