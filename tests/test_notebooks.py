"""The notebooks (``notebooks/*.ipynb``) run top to bottom at the smoke scale, as committed they
read on a code host, and supjax behaves in a Jupyter kernel: a ``Run`` shows itself as HTML, and
a sweep stopped by the kernel's interrupt resumes to the numbers of a run that never stopped."""

import json
import textwrap
import time
from pathlib import Path

import nbformat
import numpy as np
import pytest

import supjax
from supjax import SweepSpec

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))
# What a committed notebook may weigh: its figures as modest PNGs, no progress bars.
MAX_NOTEBOOK_BYTES = 450_000


def test_every_notebook_is_linked_from_the_readme_and_the_docs_site():
    """A notebook nobody can find is lost: the README links each, and the site's navigation lists each."""
    root = NOTEBOOKS[0].parent.parent
    readme, site = (root / "README.md").read_text(), (root / "mkdocs.yml").read_text()
    assert len(NOTEBOOKS) >= 3
    for path in NOTEBOOKS:
        assert f"](notebooks/{path.name})" in readme, f"README.md does not link {path.name}"
        assert f": notebooks/{path.name}" in site, f"mkdocs.yml's nav does not list {path.name}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_notebook_reads_as_a_story(path):
    """Install line, runtime and scale first; outputs of a full run, figures included, no errors,
    no placeholders; small enough for a code host; the last cell asserts the paper's number."""
    assert path.stat().st_size < MAX_NOTEBOOK_BYTES, f"{path.name}: {path.stat().st_size} bytes"
    nb = nbformat.read(path, as_version=4)
    intro = nb.cells[0]
    assert intro.cell_type == "markdown" and intro.source.startswith("# ")
    assert 'pip install -e ".[docs]"' in intro.source and "**Runtime**" in intro.source
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert "SUPJAX_NOTEBOOK_SCALE" in code[0].source
    assert "assert " in code[-1].source
    assert all(cell.execution_count for cell in code), f"{path.name}: commit it executed (full scale)"
    outputs = [output for cell in code for output in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert not [o for o in outputs if o.output_type == "stream" and o.name == "stderr"], "stderr in the outputs"
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 3, "figures missing"
    text = json.dumps(nb)
    for placeholder in ("RUNTIME_FULL", "SAE_SECTION", "TODO"):
        assert placeholder not in text
    assert "smoke" not in "".join(o.get("text", "") for o in outputs), "outputs of a smoke run committed"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_at_smoke_scale(path, tmp_path, monkeypatch):
    """Every cell runs without error in a fresh kernel, the notebook's closing assert included."""
    from nbclient import NotebookClient

    monkeypatch.setenv("SUPJAX_NOTEBOOK_SCALE", "smoke")
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # the notebooks' run directories
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    last = [cell for cell in nb.cells if cell.cell_type == "code"][-1]
    assert not [o for o in last.outputs if o.output_type == "error"]


def test_run_shows_itself_as_html(tmp_path):
    spec = SweepSpec(n=8, batch_size=16, widths=(2, 4), weight_decays=(-1.0, 1.0), alphas=(1.0, 1.5), steps=20)
    rows = [
        {"index": i, "m": m, "weight_decay": g, "distribution": d, "alpha": a, "seed": 0, "diverged_at": -1}
        for i, (m, g, (d, a)) in enumerate(
            (m, g, da) for m in (2, 4) for g in (-1.0, 1.0) for da in (("power:1.0", 1.0), ("power:1.5", 1.5))
        )
    ]
    losses = np.arange(len(rows) * spec.num_logs, dtype=np.float32).reshape(len(rows), -1)
    losses[7] = np.nan  # m = 4, gamma = 1, alpha = 1.5 diverged: its cell is the other alpha's loss
    rows[7]["diverged_at"] = 10
    run = supjax.Run(spec, rows, losses, {}, {}, {"seconds": 12.0, "device": "cpu"}, tmp_path / "a<b")
    html = run._repr_html_()
    assert "8 models, n = 8, 20 steps" in html and "trained in 12 s on cpu" in html
    assert "a&lt;b" in html and "<b>1 diverged</b>" in html
    assert "<td>widths m</td><td>2, 4</td>" in html and "<td>distributions</td><td>power:1.0, power:1.5</td>" in html
    assert "seeds" not in html  # one seed: not an axis of this grid
    final = losses.mean(axis=1)  # the last 100 steps: both windows of this 20-step run
    assert f"<tr><td>m = 2</td><td>{(final[0] + final[1]) / 2:.4g}</td><td>{(final[2] + final[3]) / 2:.4g}</td>" in html
    assert f"<tr><td>m = 4</td><td>{(final[4] + final[5]) / 2:.4g}</td><td>{final[6]:.4g}</td></tr>" in html
    assert "in memory" in supjax.Run(spec, rows, losses, {}, {})._repr_html_()


# The kernel side of the interrupt test: a sweep long enough to be stopped in the middle, with
# frequent chunk ends (where a stop is answered) and checkpoints.
KERNEL_SETUP = """
import supjax
spec = supjax.SweepSpec(n=64, batch_size=128, widths=(4, 8), weight_decays=(-1.0, 1.0), steps=1000,
                        warmup_steps=100, log_every=10, chunk_steps=50, checkpoint_every=100, progress=False)
"""


@pytest.mark.slow
def test_kernel_interrupt_stops_a_sweep_that_resumes_bitwise(tmp_path):
    """The notebook's stop button (SIGINT to the kernel) stops a sweep at a chunk end with
    :class:`supjax.Interrupted`; ``resume=True`` in the same kernel finishes it, equal bitwise
    to an uninterrupted run."""
    from jupyter_client.manager import start_new_kernel

    stopped, reference = tmp_path / "stopped", tmp_path / "reference"
    km, kc = start_new_kernel(kernel_name="python3", cwd=str(tmp_path))
    try:

        def execute(code: str, timeout: float = 300) -> dict:
            reply = kc.execute_interactive(textwrap.dedent(code), timeout=timeout, output_hook=lambda msg: None)
            return reply["content"]

        assert execute(KERNEL_SETUP)["status"] == "ok"
        msg_id = kc.execute(
            f"try:\n    supjax.run_sweep(spec, out={str(stopped)!r})\n"
            f"except supjax.Interrupted as err:\n    stop = err\n"
        )
        progress = stopped / "progress.json"
        deadline = time.monotonic() + 240
        while not (progress.is_file() and json.loads(progress.read_text())["step"] >= 100):
            assert time.monotonic() < deadline, "the sweep never got going"
            time.sleep(0.05)
        km.interrupt_kernel()
        reply = kc.get_shell_msg(timeout=120)
        assert reply["parent_header"]["msg_id"] == msg_id and reply["content"]["status"] == "ok", reply["content"]
        assert execute("assert 0 < stop.step < spec.steps and stop.exit_code == 130, stop")["status"] == "ok"
        assert execute(f"run = supjax.run_sweep(spec, out={str(stopped)!r}, resume=True)")["status"] == "ok"
        assert execute(f"supjax.run_sweep(spec, out={str(reference)!r})")["status"] == "ok"
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    resumed, uninterrupted = supjax.load_run(stopped), supjax.load_run(reference)
    np.testing.assert_array_equal(resumed.losses, uninterrupted.losses)
    for m, group in uninterrupted.params.items():
        for name, value in group.items():
            np.testing.assert_array_equal(resumed.params[m][name], value, err_msg=f"m = {m}, {name}")
