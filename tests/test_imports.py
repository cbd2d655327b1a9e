"""The module graph: every module imports on its own, the layers of docs/architecture.md point one way, no loop.

Each module is imported alone in a fresh interpreter (a child forked off one that preloaded the third-party
libraries, never kstream), so an import that only works because another module happened to be imported first
(a hidden cycle) fails here. The layer check reads
every import form: ``import kstream.a.b``, ``from kstream.a import b`` (``b`` a module or a name),
``from kstream import b``, relative imports, and module names given to ``importlib`` as strings.
"""

from __future__ import annotations

import ast
import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
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


#: Third-party packages, top level only, imported once by :func:`importer` before it forks a child per module:
#: most of an interpreter's start-up here (scikit-learn alone pulls in SciPy, 1.5 s), and nothing of kstream.
#: A kstream module that used a subpackage (``sklearn.ensemble``) without importing it still fails: the
#: subpackages are not loaded.
PRELOAD = ["numpy", "pandas", "scipy", "sklearn", "matplotlib", "joblib", "tqdm", "orjson", "kafka", "confluent_kafka",
           "pymongo", "river", "nfstream", "dpkt"]

#: The importer: preloads, then for each module name on stdin forks a child that imports it and answers with one
#: JSON line, "" or the traceback. The parent never imports kstream, so every child starts without it.
IMPORTER = r"""
import json, os, sys, traceback
for name in sys.argv[1:]:
    __import__(name)
assert not [m for m in sys.modules if m == "kstream" or m.startswith("kstream.")], "a preload imported kstream"
print(json.dumps("ready"), flush=True)
for line in sys.stdin:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            __import__(line.strip())
            answer = b""
        except BaseException:
            answer = traceback.format_exc().encode()
        with os.fdopen(write, "wb") as out:
            out.write(answer)
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as got:
        answer = got.read()
    os.waitpid(pid, 0)
    print(json.dumps(answer.decode()), flush=True)
"""


@contextlib.contextmanager
def running_importer(path: str = "") -> Iterator[Callable[[str], str]]:
    """The importer in a process of its own (``path`` prepended to PYTHONPATH); yields ``load(module)``."""
    env = {**os.environ, "MPLBACKEND": "Agg"}
    if path:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (path, env.get("PYTHONPATH", "")) if p)
    proc = subprocess.Popen([sys.executable, "-c", IMPORTER, *PRELOAD], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, env=env)
    assert proc.stdin is not None and proc.stdout is not None
    stdin, stdout = proc.stdin, proc.stdout
    try:
        assert json.loads(stdout.readline()) == "ready"

        def load(module: str) -> str:
            stdin.write(module + "\n")
            stdin.flush()
            return json.loads(stdout.readline())

        yield load
    finally:
        stdin.close()
        proc.wait(30)


@pytest.fixture(scope="module")
def importer():
    """``importer(module)``: the traceback of importing ``module`` alone in a fresh interpreter ("" if it imports),
    from a child forked off one process that preloaded :data:`PRELOAD` (90 interpreters started for 3 s each
    spent most of that importing the same libraries)."""
    with running_importer() as load:
        yield load


@pytest.mark.parametrize("module", MODULES)
def test_every_module_imports_alone_in_a_fresh_interpreter(module, importer):
    problem = importer(module)
    assert not problem, problem


def test_the_importer_starts_each_module_without_the_ones_imported_before(tmp_path):
    probe = tmp_path / "probe"
    probe.mkdir()
    (probe / "__init__.py").write_text("")
    (probe / "first.py").write_text("VALUE = 1\n")
    (probe / "alone.py").write_text("import sys\nassert 'probe.first' not in sys.modules, 'first leaked'\n")
    # works only when probe.first happened to be imported before: the hidden dependency this test is for
    (probe / "leaning.py").write_text("import sys\nVALUE = sys.modules['probe.first'].VALUE\n")
    with running_importer(str(tmp_path)) as load:
        assert load("probe.first") == ""
        assert load("probe.alone") == ""
        assert "KeyError: 'probe.first'" in load("probe.leaning")
        assert "ModuleNotFoundError" in load("probe.missing")
        assert load("kstream.errors") == ""


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
