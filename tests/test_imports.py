"""The module graph: every module imports on its own, and the low-level ones stay low.

Each module is imported alone in a fresh interpreter, so an import that only works because
another module happened to be imported first (a hidden cycle) fails here.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import kstream

PACKAGE = Path(kstream.__file__).parent
MODULES = sorted(
    ".".join(("kstream", *p.relative_to(PACKAGE).with_suffix("").parts)).removesuffix(".__init__")
    for p in PACKAGE.rglob("*.py")
    if p.name != "__main__.py"
)


def _kstream_imports(module: str) -> set[str]:
    """The kstream modules ``module`` imports anywhere in its source (top level or inside functions)."""
    path = PACKAGE.joinpath(*module.split(".")[1:])
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("kstream"):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("kstream"))
    return found


@pytest.mark.parametrize("module", MODULES)
def test_every_module_imports_alone_in_a_fresh_interpreter(module):
    proc = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_config_and_errors_import_nothing_of_kstream_but_errors():
    assert _kstream_imports("kstream.errors") == set()
    assert _kstream_imports("kstream.config") <= {"kstream.errors"}


def test_no_module_imports_in_a_loop():
    graph = {m: {i for i in _kstream_imports(m) if i in MODULES and i != m} for m in MODULES}
    graph = {m: {i for i in deps if i != "kstream"} for m, deps in graph.items()}  # the package face
    done: set[str] = set()

    def visit(node: str, path: tuple[str, ...]) -> None:
        assert node not in path, f"import loop: {' -> '.join((*path[path.index(node):], node))}"
        if node in done:
            return
        for nxt in graph[node]:
            visit(nxt, (*path, node))
        done.add(node)

    for module in MODULES:
        visit(module, ())


def test_no_module_is_longer_than_one_sitting():
    long = {m: n for m in MODULES
            if (n := len((PACKAGE.joinpath(*m.split(".")[1:]).with_suffix(".py")).read_text().splitlines()
                         if not PACKAGE.joinpath(*m.split(".")[1:]).is_dir() else [])) > 500}
    assert not long, f"split these modules: {long}"
