"""The documentation site builds with ``mkdocs build --strict`` (a broken link or reference fails
it), its config page has one row per SweepSpec field, generated from the declarations, and the
notebooks and the API reference are rendered."""

import dataclasses
import html
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from supjax import SweepSpec
from supjax.config import reference

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    build = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert build.returncode == 0, build.stderr[-4000:]
    return out


def load_hooks():
    """docs/hooks.py, the site's build hooks, as a module."""
    spec = importlib.util.spec_from_file_location("supjax_docs_hooks", ROOT / "docs" / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def table_after(page: str, anchor: str) -> list[list[str]]:
    """The cells (tags stripped) of every body row of the first table after ``id="anchor"``."""
    start = page.index(f'id="{anchor}"')
    table = page[page.index("<table>", start) : page.index("</table>", start)]
    body = table[table.index("<tbody>") :]
    return [
        [html.unescape(re.sub(r"<[^>]+>", "", cell)).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
        for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)
    ]


@pytest.mark.slow
def test_config_page_has_one_row_per_sweepspec_field(site):
    rows = table_after((site / "sweeps" / "index.html").read_text(), "every-config-key")
    assert [row[0] for row in rows] == [f.name for f in dataclasses.fields(SweepSpec)]
    short = load_hooks()._short  # the paper's weight decays in 4 digits
    expected = [[r["key"], r["type"], short(r["default"]), r["role"], r["choices"], r["doc"]] for r in reference()]
    assert rows == expected
    assert "[-1.0, -0.7778, -0.5556, " in rows[6][2] and rows[0][2] == "1000"


def test_config_table_follows_the_declarations(monkeypatch):
    """The table is made from supjax.config.reference() at build time: a new field is a new row."""
    from supjax import config

    hooks = load_hooks()

    extra = {"key": "new_knob", "type": "int | None", "default": "None", "role": "driving", "choices": "a|b"}
    monkeypatch.setattr(config, "reference", lambda: [{**extra, "doc": "a new field"}])
    assert hooks.config_reference_table().splitlines()[4] == (
        "| `new_knob` | `int | None` | `None` | driving | a\\|b | a new field |"
    )


@pytest.mark.slow
def test_notebooks_and_api_are_rendered(site):
    for notebook in sorted((ROOT / "notebooks").glob("*.ipynb")):
        page = (site / "notebooks" / notebook.stem / "index.html").read_text()
        assert page.count('src="data:image/png;base64,') >= 3, notebook.name  # the committed figures
        assert "SUPJAX_NOTEBOOK_SCALE" in page
    for module in ("config", "sweep", "results", "analysis", "metrics", "fit", "plots", "tms", "llm"):
        page = (site / "api" / module / "index.html").read_text()
        assert f'id="supjax.{module}"' in page, module
    assert 'id="supjax.results.Run"' in (site / "api" / "results" / "index.html").read_text()
    reproducing = (site / "reproducing" / "index.html").read_text()
    assert "Reproducing <em>Superposition Yields Robust Neural Scaling</em>" in reproducing
    assert (site / "figures" / "llm_fit.png").is_file()  # REPRODUCTION.md's figure, beside it
