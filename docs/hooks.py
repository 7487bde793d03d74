"""mkdocs hooks: what the site takes from outside docs/ and from the code, at build time.

* the notebooks (``notebooks/*.ipynb``, rendered by mkdocs-jupyter), the repository's
  figures (``figures/*.png``), ``REPRODUCTION.md`` and ``benchmarks/RESULTS.md`` join the
  site's files as they are in the repository, never copied into docs/;
* a page's ``<!-- include: PATH -->`` line is replaced by that file of the repository
  (``<!-- include-below: PATH -->``: with its headings one level down, under the page's title);
* ``<!-- supjax: config-reference -->`` is replaced by the table of every SweepSpec key, made
  from :func:`supjax.config.reference` (so a new field adds its row);
* the API pages lose the docstrings' Sphinx role prefixes, and their "Example:" sections render
  as code.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from mkdocs.plugins import event_priority
from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parent.parent
INCLUDE = re.compile(r"^<!-- include(-below)?: (\S+) -->$", re.MULTILINE)
CONFIG_REFERENCE = "<!-- supjax: config-reference -->"
SPHINX_ROLE = re.compile(r":(?:func|class|meth|mod|data|attr|obj|exc):(?=<code)")


@event_priority(100)  # before mkdocs-jupyter's on_files, which must see the notebooks
def on_files(files: Files, config) -> Files:
    for path in [*sorted((ROOT / "notebooks").glob("*.ipynb")), *sorted((ROOT / "figures").glob("*.png"))]:
        uri = path.relative_to(ROOT).as_posix()
        if files.get_file_from_path(uri) is None:
            # A file of the repository root, as if it were in docs/ (mkdocs-jupyter reads it from there).
            files.append(File(uri, str(ROOT), config.site_dir, config.use_directory_urls))
    return files


def on_config(config):
    # The docstrings write Google's "Example:" for their doctests; read it as "Examples:", so that
    # griffe renders the ">>>" lines as code instead of Markdown quotes (a private table: skip if it moved).
    try:
        from griffe._internal.docstrings import google

        google._section_kind.setdefault("example", google.DocstringSectionKind.examples)
    except (ImportError, AttributeError):
        pass
    return config


def on_page_content(html: str, page, config, files) -> str:
    # Docstrings name code with Sphinx roles (":func:`x`"); mkdocstrings renders the code, not the role.
    return SPHINX_ROLE.sub("", html)


def on_page_markdown(markdown: str, page, config, files) -> str:
    markdown = INCLUDE.sub(lambda match: _included(match.group(2), below=bool(match.group(1))), markdown)
    return markdown.replace(CONFIG_REFERENCE, config_reference_table())


def _included(path: str, below: bool) -> str:
    """The repository file ``path``; ``below``: under the page's own title, every heading one level down."""
    text = (ROOT / path).read_text()
    if not below:
        return text
    lines, fenced = [], False
    for line in text.splitlines():
        fenced ^= line.lstrip().startswith("```")
        lines.append("#" + line if not fenced and re.match(r"#+ ", line) else line)
    return "\n".join(lines) + "\n"


def config_reference_table() -> str:
    """Every SweepSpec key as a Markdown table row: key, type, default, role, choices and its line."""
    from supjax.config import reference

    def cell(text: str) -> str:  # a pipe inside backticks is no column break; elsewhere it must be escaped
        return text.replace("|", "\\|")

    rows = [
        f"| `{row['key']}` | `{row['type']}` | `{_short(row['default'])}` | {row['role']} | "
        f"{cell(row['choices'])} | {cell(row['doc'])} |"
        for row in reference()
    ]
    header = "| key | type | default | role | choices | what it does |\n| --- | --- | --- | --- | --- | --- |"
    return "\n".join(['<div class="config-reference" markdown>', "", header, *rows, "", "</div>"])


def _short(default: str) -> str:
    """A default as written, but a list's long floats in 4 significant digits (the paper's
    weight decays are ninths): ``[-1.0, -0.7777777777777778, ...]`` -> ``[-1.0, -0.7778, ...]``."""
    try:
        value = ast.literal_eval(default)
    except (ValueError, SyntaxError):
        return default
    if not isinstance(value, list):
        return default
    return "[" + ", ".join(f"{v:.4g}" if isinstance(v, float) and len(repr(v)) > 8 else repr(v) for v in value) + "]"
