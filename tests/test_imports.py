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


def _imported(name: str, path: Path) -> set[str]:
    """The supjax modules ``name`` imports at module level: ``from supjax import data`` is
    supjax.data (a module), ``from supjax import SweepSpec`` is supjax (the package root)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in _module_level_imports(ast.parse(path.read_text()).body):
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


def test_no_supjax_module_imports_itself_through_others():
    """No circle among supjax's module-level imports (the graph of every supjax/**/*.py).

    Imports inside functions are left out: they run after every module has loaded, and some
    are lazy on purpose (supjax.config imports supjax.data inside its methods, which imports
    ConfigError from supjax.config at the top). A package's ``__init__`` importing its own
    submodules, which import one another, is not a circle here: the edge is to the module
    named, not to the packages above it that Python loads first.
    """
    assert set(PLOTS) <= set(MODULES), sorted(MODULES)
    assert _cycles(IMPORTS) == []


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
