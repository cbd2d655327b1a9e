"""The documentation names only what the code has, and documents every setting.

The documents are README.md, every ``docs/*.md``, models/README.md and datasets/README.md, read as
text. A test fails when they name

- a ``--flag`` that no command of ``kstream.cli.build_parser()`` takes (flags of the benchmark
  scripts count on a line that mentions ``bench``; flags of other tools are listed in
  :data:`OTHER_TOOLS_FLAGS`, with the tool);
- an environment name (``KSTREAM_*``, or one of the original ``docker.env`` names in
  :data:`LEGACY_NAMES`) that kstream does not read;
- a ``kstream/...`` path, a ``tests/`` or ``benchmarks/`` file, a ``kstream.x.y`` name or a test
  function that does not exist;
- a relative link, or its ``#anchor``, that does not resolve;

and when a field of :class:`kstream.settings.Settings` has no row in the table of
docs/configuration.md, or its row lacks one of the field's flags or environment names, or when
an environment name kstream reads is missing from that page; also when a ``kstream <command>`` in
code is no command, a notebook parameter is missing from docs/notebooks.md, or a model card field
from models/README.md.

Every name comes from the code, so the checks follow renames: flags from the parser's actions,
the environment names of each setting from the lookups :meth:`Settings.resolve` makes (recorded
by a mapping that notes every name asked for), the others from the package's own
``environ.get("KSTREAM_...")`` calls. ``python tests/test_docs.py`` prints the configuration
table as the code has it, keeping the descriptions the page already holds, for pasting into
docs/configuration.md after a setting is added or renamed.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import importlib
import json
import re
import sys
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
if __name__ == "__main__":  # run as a script from anywhere: import this checkout's kstream
    sys.path.insert(0, str(ROOT))

from kstream import cli  # noqa: E402 - after the path above
from kstream.errors import ConfigError  # noqa: E402
from kstream.settings import Settings  # noqa: E402

PACKAGE = ROOT / "kstream"
CONFIGURATION = ROOT / "docs" / "configuration.md"

#: The environment names of the original docker.env; the docs may name them only if Settings reads them.
LEGACY_NAMES = ("DATASET", "MODEL", "TASK_TYPE", "MODELS_CHECKPOINT", "KAFKA_BROKER_URL", "DB_URL", "DB_NAME",
                "DATABASE")

#: Flags of other tools the docs may show, with the tool they belong to.
OTHER_TOOLS_FLAGS = {
    "--no-browser": "jupyter lab (make lab LAB_ARGS=...)",
    "--allow-root": "jupyter lab (the Makefile adds it as root)",
    "--rm": "docker compose run",
    "--eval": "mongosh (docs/docker.md)",
}

#: A value for each setting whose default reads as "not given" on the command line (None or empty),
#: so that giving it shows which environment names the setting reads. A new such setting needs one here.
SAMPLE_VALUES: dict[str, Any] = {
    "level": "label", "seed": 42, "split_mode": "grouped", "label_column": "Label", "bootstrap": "127.0.0.1:9092",
    "store": "sqlite", "store_url": "runs/docs-test.sqlite", "store_table": "predictions",
    "store_database": "kstream", "alerts": "attack_rate > 0.5", "partitions": 1, "client": "kafka-python",
    "value_format": "json", "train_until": "2017-07-06", "order": "shuffle", "label_delay": "1000",
    "learn": "online", "learner": "sgd-classifier", "learn_dir": "runs/learner",
}

#: Settings given on the command line by a flag whose destination is not the field's own name.
FLAG_DESTINATIONS = {"kafka_options": "kafka_option"}

FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9]*(?:-[a-z0-9]+)*(?![\w>-])")
ENV_NAME = re.compile(r"(?<![\w$])KSTREAM_[A-Z0-9_]*[A-Z0-9_](?:<[A-Z]+>)?")
LEGACY = re.compile(r"(?<![\w./-])(" + "|".join(LEGACY_NAMES) + r")(?![\w.-])")
PATH = re.compile(r"(?<![\w./~$-])(kstream/[\w./-]*|(?:tests|benchmarks)/[\w./-]+\.py)")
DOTTED = re.compile(r"(?<![\w./-])kstream(?:\.[A-Za-z_]\w*)+")
#: A test function in backticks: ``test_`` and at least three more words (a card field like ``test_rows`` is not one).
TEST_NAME = re.compile(r"`(?:[\w/.]+::)?(test_[a-z0-9]+_[a-z0-9]+_\w*?)(\.\.\.)?(?:\[[^\]]*\])?`")
COMMAND_SPAN = re.compile(r"`(kstream [^`]*)`")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
ROW = re.compile(r"^\|\s*`(\w+)`\s*\|")


# --- what the docs say ------------------------------------------------------------------------------------


def doc_files() -> list[Path]:
    """The documents these tests read: the README, docs/*.md and the READMEs of models/ and datasets/."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "models" / "README.md",
            ROOT / "datasets" / "README.md"]


def lines_of(files: list[Path] | None = None) -> Iterator[tuple[str, int, str]]:
    """(document, line number, text) of every line of ``files`` (default: :func:`doc_files`)."""
    for path in files or doc_files():
        for number, line in enumerate(path.read_text().splitlines(), 1):
            yield path.relative_to(ROOT).as_posix(), number, line


# --- what the code has ------------------------------------------------------------------------------------


def parser_actions(parser: argparse.ArgumentParser | None = None) -> Iterator[argparse.Action]:
    """Every action of the ``kstream`` parser and of each of its subcommands, at any depth."""
    parser = parser or cli.build_parser()
    for action in parser._actions:
        yield action
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):  # aliases map to the same parser
                yield from parser_actions(sub)


@cache
def kstream_flags() -> frozenset[str]:
    """Every long option of every ``kstream`` command."""
    return frozenset(s for a in parser_actions() for s in a.option_strings if s.startswith("--"))


@cache
def kstream_commands() -> dict[str, frozenset[str]]:
    """Each ``kstream`` subcommand -> its own subcommands (``broker`` -> ``start``, ``stop``, ...)."""
    found: dict[str, frozenset[str]] = {}
    for action in cli.build_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found[name] = frozenset(n for a in sub._actions if isinstance(a, argparse._SubParsersAction)
                                        for n in a.choices)
    return found


@cache
def bench_flags() -> frozenset[str]:
    """The long options the benchmark scripts declare (``add_argument("--x", ...)`` in benchmarks/*.py)."""
    found = set()
    for path in (ROOT / "benchmarks").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "add_argument":
                found.update(a.value for a in node.args
                             if isinstance(a, ast.Constant) and str(a.value).startswith("--"))
    return frozenset(found)


def flags_of(field: str) -> list[str]:
    """The option strings that set the Settings field ``field`` (its destination), in a stable order."""
    dest = FLAG_DESTINATIONS.get(field, field)
    found = {s: None for a in parser_actions() if a.dest == dest for s in a.option_strings}
    return sorted(found, key=lambda s: (s.startswith("--"), s))


class Recording(Mapping[str, str]):
    """An environment that notes every name looked up in it."""

    def __init__(self, values: Mapping[str, str] | None = None) -> None:
        self.values, self.asked = dict(values or {}), []

    def __getitem__(self, key: str) -> str:
        self.asked.append(key)
        return self.values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.values)

    def __len__(self) -> int:
        return len(self.values)


def _asked(cli_values: Mapping[str, Any]) -> list[str]:
    env = Recording()
    Settings.resolve(dict(cli_values), env=env)
    return list(dict.fromkeys(env.asked))


@cache
def settings_env_names() -> dict[str, list[str]]:
    """Settings field -> the environment names :meth:`Settings.resolve` reads for it, first that wins first.

    A field given on the command line is not looked up in the environment, so a field's names are
    those asked for when nothing is given and not asked for when the field is.
    """
    everything = _asked({})
    names: dict[str, list[str]] = {}
    for f in dataclasses.fields(Settings):
        value = SAMPLE_VALUES.get(f.name, f.default)
        if value is None or value == "" or value is dataclasses.MISSING:
            if f.name == "kafka_options":
                names[f.name] = []
                continue
            raise AssertionError(f"Settings.{f.name} is new: give it a sample value in SAMPLE_VALUES of {__file__}")
        rest = set(_asked({f.name: value}))
        names[f.name] = [n for n in everything if n not in rest]
    return names


@cache
def option_prefixes() -> dict[str, str]:
    """Environment prefixes Settings reads as a family (``KSTREAM_KAFKA_<OPTION>``) -> the field they fill."""
    found = {}
    base = Settings.resolve({}, env={})
    probe = Settings.resolve({}, env={"KSTREAM_KAFKA_LINGER_MS": "5"})
    for f in dataclasses.fields(Settings):
        if getattr(probe, f.name) != getattr(base, f.name):
            found["KSTREAM_KAFKA_"] = f.name
    return found


@cache
def package_env_names() -> frozenset[str]:
    """``KSTREAM_*`` names the package reads itself: ``<mapping>.get("KSTREAM_X")``, ``getenv``, ``environ["..."]``."""
    found = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            key = None
            if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in ("get",
                                                                                                          "getenv"):
                key = node.args[0] if node.args else None
            elif isinstance(node, ast.Subscript) and "environ" in ast.unparse(node.value):
                key = node.slice
            if isinstance(key, ast.Constant) and str(key.value).startswith("KSTREAM_"):
                found.add(key.value)
    return frozenset(found)


@cache
def env_names_read() -> frozenset[str]:
    """Every environment name kstream reads: the settings' and the package's own."""
    return frozenset(n for names in settings_env_names().values() for n in names) | package_env_names()


@cache
def defined_tests() -> frozenset[str]:
    """The names of every test function in tests/."""
    return frozenset(node.name for path in (ROOT / "tests").glob("test_*.py")
                     for node in ast.walk(ast.parse(path.read_text()))
                     if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"))


def resolves(dotted: str) -> bool:
    """Whether ``dotted`` names a kstream module, or a name inside one.

    >>> resolves("kstream.settings.Settings"), resolves("kstream.settings.Nothing"), resolves("kstream.sinks")
    (True, False, False)
    """
    parts = dotted.split(".")
    for n in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:n]))
        except ModuleNotFoundError:
            continue
        for name in parts[n:]:
            if not hasattr(obj, name):
                return False
            obj = getattr(obj, name)
        return True
    return False


def slug(heading: str) -> str:
    """The anchor a Markdown heading gets: lower case, punctuation dropped, spaces to hyphens.

    >>> slug("Across sources: the `improved` re-extraction")
    'across-sources-the-improved-re-extraction'
    """
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The anchors of a Markdown file's headings (a repeated heading gets ``-1``, ``-2``, ...)."""
    seen: dict[str, int] = {}
    out = set()
    in_code = False
    for line in path.read_text().splitlines():
        if line.startswith("```"):
            in_code = not in_code
        if in_code or not line.startswith("#"):
            continue
        base = slug(line.lstrip("#"))
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


# --- the checks: each returns what is wrong, as "document:line: ..." lines -----------------------------------


def unknown_flags(lines: Iterator[tuple[str, int, str]]) -> list[str]:
    """Flags no kstream command takes (nor a benchmark script, on a line about benchmarks or the soak, nor another
    tool)."""
    wrong = []
    for doc, number, line in lines:
        for flag in FLAG.findall(line):
            about_scripts = "bench" in line or "soak" in line
            if flag in kstream_flags() or flag in OTHER_TOOLS_FLAGS or (about_scripts and flag in bench_flags()):
                continue
            wrong.append(f"{doc}:{number}: {flag} is not a flag of any kstream command")
    return wrong


def unknown_commands(lines: Iterator[tuple[str, int, str]]) -> list[str]:
    """``kstream <command> [<action>]`` in code (a `span`, or a line of a code block) that the parser lacks."""
    wrong, in_code, current = [], False, ""
    for doc, number, line in lines:
        if doc != current:  # a new document starts outside any code block
            in_code, current = False, doc
        if line.startswith("```"):
            in_code = not in_code
            continue
        spans = COMMAND_SPAN.findall(line) + ([line.strip()] if in_code and line.strip().startswith("kstream ") else [])
        for span in spans:
            words = span.split()
            if len(words) < 2 or not re.fullmatch(r"[a-z]+", words[1]):
                continue
            command, action = words[1], (words[2] if len(words) > 2 else "")
            if command not in kstream_commands():
                wrong.append(f"{doc}:{number}: kstream {command} is not a kstream command")
            elif kstream_commands()[command] and re.fullmatch(r"[a-z]+", action) and \
                    action not in kstream_commands()[command]:
                wrong.append(f"{doc}:{number}: kstream {command} {action} is not a kstream command")
    return wrong


def unknown_env_names(lines: Iterator[tuple[str, int, str]]) -> list[str]:
    """Environment names kstream does not read."""
    wrong = []
    for doc, number, line in lines:
        for name in ENV_NAME.findall(line) + LEGACY.findall(line):
            if name in env_names_read() or any(name.startswith(p) and name != p.rstrip("_")
                                               for p in option_prefixes()):
                continue
            wrong.append(f"{doc}:{number}: {name} is not an environment name kstream reads")
    return wrong


def missing_paths(lines: Iterator[tuple[str, int, str]]) -> list[str]:
    """Paths under kstream/, tests/ and benchmarks/ that do not exist."""
    wrong = []
    for doc, number, line in lines:
        for path in PATH.findall(line):
            path = path.rstrip(".")
            if not (ROOT / path).exists() or (path.endswith("/") and not (ROOT / path).is_dir()):
                wrong.append(f"{doc}:{number}: {path} does not exist")
    return wrong


def missing_names(lines: Iterator[tuple[str, int, str]]) -> list[str]:
    """``kstream.x.y`` names that are no module or attribute, and test functions that do not exist."""
    wrong = []
    for doc, number, line in lines:
        wrong += [f"{doc}:{number}: {name} does not exist" for name in DOTTED.findall(line) if not resolves(name)]
        for name, cut in TEST_NAME.findall(line):
            if not (any(t.startswith(name) for t in defined_tests()) if cut else name in defined_tests()):
                wrong.append(f"{doc}:{number}: no test is called {name}{cut}")
    return wrong


def _shown(path: Path) -> str:
    return path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else path.name


def broken_links(files: list[Path]) -> list[str]:
    """Relative links whose file, folder or heading anchor does not exist."""
    wrong = []
    for path in files:
        in_code = False
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if line.startswith("```"):
                in_code = not in_code
            if in_code:
                continue
            for target in LINK.findall(line):
                if re.match(r"[a-z]+:", target):  # https:, mailto:
                    continue
                file, _, anchor = target.partition("#")
                goal = (path.parent / file).resolve() if file else path
                where = f"{_shown(path)}:{number}: {target}"
                if not goal.exists():
                    wrong.append(f"{where}: {file} does not exist")
                elif anchor and goal.suffix == ".md" and anchor not in anchors(goal):
                    wrong.append(f"{where}: {goal.name} has no heading #{anchor}")
    return wrong


def configuration_rows(text: str) -> dict[str, str]:
    """Setting name -> its row: the table rows that start with `name` in the "## Settings" section."""
    section = text.partition("\n## Settings\n")[2].split("\n## ", 1)[0]
    return {m.group(1): line for line in section.splitlines() if (m := ROW.match(line))}


def configuration_gaps(text: str) -> list[str]:
    """Settings without a row, rows lacking a flag or environment name, rows of no setting, names not on the page."""
    rows = configuration_rows(text)
    prefix_of = {field: prefix for prefix, field in option_prefixes().items()}
    wrong = []
    for f in dataclasses.fields(Settings):
        row = rows.get(f.name)
        if row is None:
            wrong.append(f"setting {f.name} has no row; add:\n{table_row(f.name)}")
            continue
        wanted = [*flags_of(f.name), *settings_env_names()[f.name]]
        if f.name in prefix_of:
            wanted.append(prefix_of[f.name])
        wrong += [f"the row of {f.name} lacks `{name}`" for name in wanted if f"`{name}" not in row]
    names = {f.name for f in dataclasses.fields(Settings)}
    wrong += [f"row `{name}` is not a setting (renamed or removed?)" for name in rows if name not in names]
    wrong += [f"{name} is read by kstream but not on this page" for name in sorted(package_env_names())
              if name not in text]
    return wrong


# --- the configuration table, regenerated --------------------------------------------------------------------


def _default(field: dataclasses.Field) -> str:
    value = field.default_factory() if field.default is dataclasses.MISSING else field.default  # type: ignore[misc]
    if isinstance(value, Path):
        value = value.relative_to(ROOT).as_posix() + "/" if value.is_relative_to(ROOT) else str(value)
    return f"`{value}`" if value not in ("", None, {}) else "(none)"


def table_row(name: str, old: str | None = None) -> str:
    """The row of setting ``name`` as the code has it; the default and meaning cells of ``old`` are kept."""
    field = next(f for f in dataclasses.fields(Settings) if f.name == name)
    flags = ", ".join(f"`{s}`" for s in flags_of(name))
    env = list(settings_env_names()[name]) + [f"{p}<OPTION>" for p, f in option_prefixes().items() if f == name]
    cells = [f"`{name}`", flags, ", ".join(f"`{n}`" for n in env), _default(field), "TODO: what it is"]
    if old:
        kept = [c.strip() for c in old.strip().strip("|").split("|")]
        if len(kept) == len(cells):
            cells[3:] = kept[3:]
    return "| " + " | ".join(cells) + " |"


def configuration_table() -> str:
    """The whole settings table of docs/configuration.md, regenerated from the code."""
    rows = configuration_rows(CONFIGURATION.read_text()) if CONFIGURATION.exists() else {}
    head = "| setting | flag | environment (first set wins) | default | what it is |\n|---|---|---|---|---|"
    return "\n".join([head, *(table_row(f.name, rows.get(f.name)) for f in dataclasses.fields(Settings))])


# --- the tests ---------------------------------------------------------------------------------------------------


def _report(wrong: list[str]) -> str:
    return "\n".join(wrong)


def test_every_flag_in_the_docs_is_a_flag_of_kstream():
    wrong = unknown_flags(lines_of())
    assert not wrong, _report(wrong)


def test_every_kstream_command_in_the_docs_exists():
    wrong = unknown_commands(lines_of())
    assert not wrong, _report(wrong)


def test_every_environment_name_in_the_docs_is_read_by_kstream():
    wrong = unknown_env_names(lines_of())
    assert not wrong, _report(wrong)


def test_every_path_module_and_test_named_in_the_docs_exists():
    lines = list(lines_of())
    wrong = missing_paths(iter(lines)) + missing_names(iter(lines))
    assert not wrong, _report(wrong)


def test_every_relative_link_resolves():
    wrong = broken_links(doc_files())
    assert not wrong, _report(wrong)


def test_every_setting_is_in_the_configuration_table_with_its_flags_and_environment_names():
    wrong = configuration_gaps(CONFIGURATION.read_text())
    assert not wrong, "docs/configuration.md:\n" + _report(wrong) + "\n(python tests/test_docs.py prints the table)"


#: A value other than the default for each setting, to show that an environment name is really read.
OTHER_VALUES = {"dataset": "nsl-kdd", "task": "multi_class", "model": "decision-tree", "models_dir": "/elsewhere",
                "store": "mongodb", "drift": "1", "client": "confluent", "value_format": "vector",
                "split_mode": "random",
                "drift_window_s": "2", "drift_psi": "0.3", "drift_share": "0.3", "alerts": "attack_rate > 0.5",
                "level": "label"}


def test_each_recorded_environment_name_sets_its_setting():
    names = settings_env_names()
    assert names["bootstrap"] == ["KSTREAM_BOOTSTRAP", "KAFKA_BROKER_URL"] and names["dataset"][-1] == "DATASET"
    assert option_prefixes() == {"KSTREAM_KAFKA_": "kafka_options"}
    default = Settings.resolve({}, env={})
    for field, env in names.items():
        for name in env:
            try:
                resolved = Settings.resolve({}, env={name: OTHER_VALUES.get(field, "7")})
            except ConfigError:  # refused: so it was read (nothing set resolves fine)
                continue
            assert getattr(resolved, field) != getattr(default, field), f"{name} does not set {field}"


def notebook_parameters(notebook: Path) -> list[str]:
    """The names a notebook's cell tagged ``parameters`` assigns, in order."""
    cells = json.loads(notebook.read_text())["cells"]
    cell = next(c for c in cells if "parameters" in c.get("metadata", {}).get("tags", []))
    tree = ast.parse("".join(cell["source"]))
    return [n.target.id if isinstance(n, ast.AnnAssign) else n.targets[0].id
            for n in tree.body if isinstance(n, (ast.AnnAssign, ast.Assign))]


def test_every_notebook_parameter_is_in_the_notebooks_table():
    rows = {line.split("|")[1].strip(" `"): line for line in (ROOT / "docs" / "notebooks.md").read_text().splitlines()
            if line.startswith("| `")}
    wrong = []
    for notebook in sorted((ROOT / "notebooks").glob("*.ipynb")):
        row = rows.get(notebook.stem)
        if row is None:
            wrong.append(f"docs/notebooks.md has no row for {notebook.stem}")
            continue
        wrong += [f"the row of {notebook.stem} lacks `{name}`" for name in notebook_parameters(notebook)
                  if f"`{name}`" not in row]
    assert not wrong, _report(wrong)


def test_every_model_card_field_is_in_the_models_readme():
    from kstream.modeling.artifacts import ModelCard

    text = (ROOT / "models" / "README.md").read_text()
    missing = [f.name for f in dataclasses.fields(ModelCard) if f"`{f.name}`" not in text]
    assert not missing, f"models/README.md does not describe the card fields {missing}"


def fake_doc(tmp_path: Path, text: str) -> Path:
    """A Markdown file ``doc.md`` holding ``text``, outside the checkout."""
    path = tmp_path / "doc.md"
    path.write_text(text)
    return path


@pytest.mark.parametrize("line, check", [
    ("run `kstream detect --no-such-flag`", unknown_flags),
    ("`kstream run --mongo`", unknown_flags),
    ("`kstream generate --limit 100`", unknown_flags),  # an old name, renamed --records
    ("`kstream deploy`", unknown_commands),
    ("`kstream broker restart`", unknown_commands),
    ("set `KSTREAM_NO_SUCH_NAME=1`", unknown_env_names),
    ("`KSTREAM_KAFKA` without an option", unknown_env_names),
    ("read `kstream/sinks.py`", missing_paths),
    ("the folder `kstream/sources/`", missing_paths),
    ("see `tests/test_no_such_module.py`", missing_paths),
    ("`kstream.sinks.PREDICTION_FIELDS`", missing_names),
    ("`kstream.settings.NO_SUCH_NAME`", missing_names),
    ("`test_no_such_test`", missing_names),
    ("`test_no_such_prefix_...[case]`", missing_names),
])
def test_each_check_catches_what_it_is_for(line, check):
    assert check(iter([("doc.md", 1, line)])), f"{check.__name__} missed {line!r}"


@pytest.mark.parametrize("line, check", [
    ("`kstream detect --idle-timeout 30`; `make lab LAB_ARGS=--no-browser`", unknown_flags),
    ("`kstream broker start --sasl`, `kstream run -t multi_class`, `kstream <command>`", unknown_commands),
    ("`benchmarks/bench_detector.py --mongo`", unknown_flags),
    ("`KSTREAM_KAFKA_SASL_USERNAME`, `KSTREAM_KAFKA_<OPTION>`, `DB_URL`, `KSTREAM_HOME`", unknown_env_names),
    ("`kstream/settings.py`, `kstream/data/formats/`, `tests/conftest.py`", missing_paths),
    ("`kstream.modeling.artifacts.save`, `test_every_relative_link_resolves`", missing_names),
])
def test_each_check_passes_what_exists(line, check):
    assert not check(iter([("doc.md", 1, line)]))


def test_the_link_check_catches_a_missing_file_and_a_missing_heading(tmp_path):
    doc = fake_doc(tmp_path, "# Title\n\n[a](doc.md#title) [b](nowhere.md) [c](doc.md#nothing) [d](https://x.example)\n"
                             "```\n[e](ignored.md)\n```\n")
    wrong = broken_links([doc])
    assert len(wrong) == 2 and "nowhere.md" in wrong[0] and "#nothing" in wrong[1], wrong


def test_the_configuration_check_catches_a_missing_row_a_missing_name_and_a_stale_row():
    text = CONFIGURATION.read_text()
    rows = configuration_rows(text)
    without_dataset = text.replace(rows["dataset"] + "\n", "")
    assert any(w.startswith("setting dataset has no row") for w in configuration_gaps(without_dataset))
    without_legacy = text.replace(rows["task"], rows["task"].replace("`TASK_TYPE`", "`KSTREAM_TASK`"))
    assert "the row of task lacks `TASK_TYPE`" in configuration_gaps(without_legacy)
    without_flag = text.replace(rows["batch_size"], rows["batch_size"].replace("`--batch-size`", ""))
    assert "the row of batch_size lacks `--batch-size`" in configuration_gaps(without_flag)
    stale = text.replace(rows["dataset"], rows["dataset"] + "\n| `no_such_setting` | | | | |")
    assert any("no_such_setting" in w for w in configuration_gaps(stale))
    assert any("KSTREAM_HOME" in w for w in configuration_gaps(text.replace("KSTREAM_HOME", "KSTREAM_H0ME")))


if __name__ == "__main__":
    print(configuration_table())
