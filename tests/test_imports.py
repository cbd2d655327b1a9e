"""The module graph: every module imports on its own, the layers of docs/architecture.md point one way, no loop.

Each module is imported alone in a fresh interpreter, so an import that only works because
another module happened to be imported first (a hidden cycle) fails here. The layer check reads
every import form: ``import kstream.a.b``, ``from kstream.a import b`` (``b`` a module or a name),
``from kstream import b``, relative imports, and module names given to ``importlib`` as strings.
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

#: The layers, bottom first. A module may import its own unit (a top-level module, or one subpackage)
#: and any unit of a lower layer; never a unit of its own layer or of a higher one.
LAYERS: list[list[str]] = [
    ["kstream.errors"],
    ["kstream", "kstream.paths", "kstream.logs", "kstream.tables", "kstream.retry"],
    ["kstream.data"],
    ["kstream.messages", "kstream.clients"],
    ["kstream.drift"],
    ["kstream.modeling"],
    ["kstream.stores", "kstream.learning"],
    ["kstream.generator", "kstream.servers"],
    ["kstream.settings"],
    ["kstream.detector"],
    ["kstream.analysis"],
    ["kstream.app"],
    ["kstream.sweep"],
    ["kstream.cli"],
]
LAYER_OF = {unit: i for i, units in enumerate(LAYERS) for unit in units}


def unit_of(module: str) -> str:
    """The unit a module belongs to: its subpackage (``kstream.drift`` for ``kstream.drift.monitor``) or itself."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else module


def _source(module: str) -> Path:
    path = PACKAGE.joinpath(*module.split(".")[1:])
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def kstream_imports(module: str) -> set[str]:
    """Every kstream module ``module`` imports, in any form, anywhere in its source."""
    is_package = _source(module).name == "__init__.py"
    found: set[str] = set()

    def add(name: str) -> None:
        # the longest prefix of ``name`` that is a module (``kstream.a.b.func`` -> ``kstream.a.b``)
        parts = name.split(".")
        for n in range(len(parts), 0, -1):
            if ".".join(parts[:n]) in MODULES:
                found.add(".".join(parts[:n]))
                return

    for node in ast.walk(ast.parse(_source(module).read_text())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("kstream"):
                    add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            if not target.startswith("kstream"):
                continue
            for alias in node.names:
                add(f"{target}.{alias.name}")  # a submodule if it is one, else the module holding the name
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and "." in node.value \
                and node.value in MODULES:
            add(node.value)  # importlib.import_module("kstream...."), a table of backends
    found.discard(module)
    return found


def test_the_import_reader_sees_every_form():
    assert kstream_imports("kstream.clients") >= {"kstream.clients.kafka_python", "kstream.clients.confluent"}
    assert "kstream.analysis.plots" in kstream_imports("kstream.analysis.report")  # from kstream.analysis import plots
    assert "kstream.data.datasets" in kstream_imports("kstream.app")  # from kstream.data import datasets


@pytest.mark.parametrize("module", MODULES)
def test_every_module_imports_alone_in_a_fresh_interpreter(module):
    proc = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_every_module_has_a_layer():
    assert not [m for m in MODULES if unit_of(m) not in LAYER_OF], "add the new unit to LAYERS and docs/architecture.md"


def test_imports_point_down_the_layers():
    wrong = []
    for module in MODULES:
        mine = unit_of(module)
        for imported in kstream_imports(module):
            theirs = unit_of(imported)
            if theirs != mine and LAYER_OF[theirs] >= LAYER_OF[mine]:
                wrong.append(f"{module} -> {imported}")
    assert not wrong, "imports against the layers of docs/architecture.md: " + ", ".join(sorted(wrong))


def test_the_layers_are_written_in_the_architecture_doc():
    text = (PACKAGE.parent / "docs" / "architecture.md").read_text()
    for units in LAYERS:
        for unit in units:
            if unit != "kstream":
                assert f"`{unit.removeprefix('kstream.')}" in text, f"docs/architecture.md does not place {unit}"


def test_no_module_imports_in_a_loop():
    graph = {m: kstream_imports(m) - {"kstream"} for m in MODULES}  # the package face re-exports errors only
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
