"""supjax's modules import one another without a circle, and the figure modules import only their style."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "supjax"
PLOTS = ("supjax.plots.style", "supjax.plots.paper", "supjax.plots.tms", "supjax.plots.training", "supjax.plots.run")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _module_level_imports(body):
    """The import statements a module runs when it is imported: its top level, and inside top-level
    ``if`` / ``try`` / ``with`` blocks; not ``if TYPE_CHECKING:`` nor function or class bodies."""
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If):
            test = node.test
            if getattr(test, "id", getattr(test, "attr", None)) != "TYPE_CHECKING":
                yield from _module_level_imports(node.body + node.orelse)
        elif isinstance(node, ast.Try):
            handlers = [n for h in node.handlers for n in h.body]
            yield from _module_level_imports(node.body + handlers + node.orelse + node.finalbody)
        elif isinstance(node, ast.With):
            yield from _module_level_imports(node.body)


def _every_import(body):
    """Every import statement a module can run: at module level and inside functions and classes
    (lazy imports run later, but a circle through them is a circle all the same); not the ones
    under ``if TYPE_CHECKING:``, which never run."""
    for node in body:
        if isinstance(node, ast.If) and getattr(node.test, "id", getattr(node.test, "attr", None)) == "TYPE_CHECKING":
            yield from _every_import(node.orelse)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        else:
            yield from _every_import(list(ast.iter_child_nodes(node)))


def _imported(name: str, path: Path, lazy: bool = False) -> set[str]:
    """The supjax modules ``name`` imports at module level (with ``lazy``, anywhere): ``from supjax
    import data`` is supjax.data (a module), ``from supjax import SweepSpec`` is supjax (the package root)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    body = ast.parse(path.read_text()).body
    for node in _every_import(body) if lazy else _module_level_imports(body):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
            continue
        base = node.module or ""
        if node.level:  # relative: from . import x, from .style import save
            parents = package.split(".")[: len(package.split(".")) - node.level + 1]
            base = ".".join([*parents, base] if base else parents)
        found |= {f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names}
    return {module for module in found if module in MODULES and module != name}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    order, low, stack, on_stack, components = {}, {}, [], set(), []

    def visit(v):
        order[v] = low[v] = len(order)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in order:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], order[w])
        if low[v] == order[v]:
            component = []
            while not component or component[-1] != v:
                component.append(stack.pop())
                on_stack.discard(component[-1])
            if len(component) > 1:
                components.append(sorted(component))

    for v in sorted(graph):
        if v not in order:
            visit(v)
    return components


IMPORTS = {name: _imported(name, path) for name, path in MODULES.items()}
EVERY_IMPORT = {name: _imported(name, path, lazy=True) for name, path in MODULES.items()}


def test_no_supjax_module_imports_itself_through_others():
    """No circle among supjax's imports (the graph of every supjax/**/*.py), lazy ones included:
    an import inside a function that closes a circle hides a layering mistake (the SAE run reader
    importing the evaluation, which imports the layout, which imported the reader). A package's
    ``__init__`` importing its own submodules, which import one another, is not a circle here: the
    edge is to the module named, not to the packages above it that Python loads first.
    """
    assert set(PLOTS) <= set(MODULES), sorted(MODULES)
    assert _cycles(IMPORTS) == []
    assert _cycles(EVERY_IMPORT) == []


def test_the_import_graph_sees_lazy_imports_and_skips_type_checking_ones(tmp_path):
    """The check above could fail: it finds an import inside a function and ignores one under TYPE_CHECKING."""
    module = tmp_path / "example.py"
    module.write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from supjax import sweep\n"
        "def f():\n    from supjax import data\n"
    )
    assert _imported("supjax.example", module, lazy=True) == {"supjax.data"}
    assert _imported("supjax.example", module) == set()
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": set()}) == [["a", "b"]]


def test_the_engine_never_names_a_wing():
    """supjax.engine imports no wing: the toy models, the SAEs and what comes next plug into it."""
    wings = ("supjax.sweep", "supjax.program", "supjax.layout", "supjax.results", "supjax.sae", "supjax.llc")
    for name, modules in EVERY_IMPORT.items():
        if name.startswith("supjax.engine"):
            assert not {m for m in modules if m.startswith(wings)}, f"{name} imports {sorted(modules)}"


def test_the_figure_modules_import_only_the_style_of_their_package():
    for name in PLOTS:
        assert "supjax.plots" not in IMPORTS[name], f"{name} imports the package root supjax.plots"
    for name in ("supjax.plots.paper", "supjax.plots.tms", "supjax.plots.training"):
        siblings = {m for m in IMPORTS[name] if m.startswith("supjax.plots.")}
        assert siblings <= {"supjax.plots.style"}, f"{name} imports {sorted(siblings)}"
    style = ast.parse(MODULES["supjax.plots.style"].read_text()).body
    named = [
        [alias.name for alias in node.names] if isinstance(node, ast.Import) else [node.module]
        for node in _module_level_imports(style)
    ]
    roots = {module.split(".")[0] for modules in named for module in modules}
    assert roots <= {"__future__", "pathlib", "matplotlib", "numpy"}, f"supjax.plots.style imports {sorted(roots)}"


@pytest.mark.slow
@pytest.mark.parametrize("module", PLOTS)
def test_each_figure_module_imports_alone_in_a_fresh_interpreter(module):
    result = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
