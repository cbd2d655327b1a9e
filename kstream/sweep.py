"""Experiment sweeps: the notebooks run by papermill over a grid of parameters.

Each run of a sweep executes ``1.0-train``, ``2.0-stream`` and ``3.0-report``
in turn with the run's parameters, writing the executed copies, the model, the
predictions, the figures and the report into its own folder. Every parameter
goes to the notebooks that declare it in their ``parameters`` cell; a
parameter that no notebook declares, or a cell that raises, marks the run
failed with the reason, and the sweep goes on with the other runs. The sweep
writes ``summary.csv`` and ``summary.md``: one row per run with its status,
accuracy, macro-F1, throughput and latency percentiles. Models are trained into the
project's ``models/`` (or the models folder the settings name) unless a sweep is given its own.

>>> expand({"model": ["decision-tree", "random-forest"], "rate": [0, 500]})[1]
{'model': 'decision-tree', 'rate': 500}
>>> parse_pairs(["model=decision-tree,random-forest", "records=300"])
{'model': ['decision-tree', 'random-forest'], 'records': [300]}
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import json
import logging
import re
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

from kstream.app import kafka_cluster
from kstream.errors import ConfigError
from kstream.paths import NOTEBOOKS_DIR, RUNS_DIR
from kstream.settings import Settings, parse_assignments, parse_value
from kstream.tables import markdown_table

__all__ = ["NOTEBOOKS", "check_grid", "parse_pairs", "load_grid", "expand", "declared_parameters", "lanes",
           "run_sweep"]

log = logging.getLogger(__name__)

NOTEBOOKS = ("1.0-train.ipynb", "2.0-stream.ipynb", "3.0-report.ipynb")
SUMMARY_COLUMNS = [
    "run", "status", "records", "accuracy", "macro_f1", "throughput_rps", "latency_p50_ms",
    "latency_p95_ms", "latency_p99_ms", "error",
]


def check_grid(grid: Mapping[str, list[Any]], where: str = "the sweep grid") -> dict[str, list[Any]]:
    """``grid`` if every name is an identifier and every value a plain scalar (text, number, true/false).

    Values become Python source in the notebooks' injected parameters cell, so nothing else passes.

    >>> check_grid({"model": ["decision-tree"], "records": [300], "rate": [0.5]})
    {'model': ['decision-tree'], 'records': [300], 'rate': [0.5]}
    >>> check_grid({"model": [b"x"]})  # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
    ...
    kstream.errors.ConfigError: the sweep grid: parameter 'model' has a bytes value; values must be text, numbers or
        true/false
    """
    for name, values in grid.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise ConfigError(f"{where}: {name!r} is not a parameter name")
        for value in values:
            if type(value) not in (str, int, float, bool) or (type(value) is float and value != value):
                raise ConfigError(f"{where}: parameter {name!r} has a {type(value).__name__} value; values must be "
                                  "text, numbers or true/false")
    return {name: list(values) for name, values in grid.items()}


def parse_pairs(pairs: list[str] | None) -> dict[str, list[Any]]:
    """``name=v1,v2`` strings (``kstream sweep --grid``) into a grid; values are JSON when they parse
    (numbers, true), else text."""
    raw = parse_assignments(pairs, "grid axis", "name=value[,value...] (e.g. model=decision-tree,random-forest)")
    return check_grid({name: [parse_value(v) for v in values.split(",")] for name, values in raw.items()},
                      "a --grid axis")


def load_grid(path: str | Path) -> dict[str, list[Any]]:
    """A grid from a YAML file: a mapping of parameter name to a value or a list of values."""
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"cannot read the sweep grid {path}: {err}") from None
    if not isinstance(data, Mapping):
        raise ConfigError(f"the sweep grid {path} must be a mapping of parameter name -> list of values")
    return check_grid({k: (list(v) if isinstance(v, list) else [v]) for k, v in data.items()}, str(path))


def expand(grid: Mapping[str, list[Any]]) -> list[dict[str, Any]]:
    """Every combination of the grid's values, in order (the last name varies fastest)."""
    names = list(grid)
    return [dict(zip(names, combo)) for combo in itertools.product(*(grid[n] for n in names))]


def declared_parameters(notebook: str | Path) -> dict[str, Any]:
    """The parameters a notebook declares in its ``parameters`` cell, with their defaults."""
    import papermill

    return {name: info["default"] for name, info in papermill.inspect_notebook(str(notebook)).items()}


def _run_name(params: Mapping[str, Any]) -> str:
    text = "-".join(f"{k}={v}" for k, v in params.items()) or "defaults"
    return re.sub(r"[^A-Za-z0-9_.=,+-]+", "_", text)[:120]


@contextlib.contextmanager
def _cluster(bootstrap: str) -> Iterator[str]:
    with kafka_cluster(Settings.resolve({"bootstrap": bootstrap or None})) as settings:
        yield settings.bootstrap


#: the parameters that name a model's folder (``<models_dir>/<dataset>/<task>[-<level>]/<model>``)
MODEL_FOLDER = ("dataset", "task", "level", "model")


def lanes(runs: list[dict[str, Any]]) -> list[list[int]]:
    """The runs (by index) grouped so that runs which write the same model folder (the same values of
    :data:`MODEL_FOLDER`; a seed or hyperparameters of their own do not give them another) share a lane:
    a lane's runs go one after another, lanes may go side by side without two runs writing one model.

    >>> lanes([{"model": "a", "rate": 0}, {"model": "b", "rate": 0}, {"model": "a", "seed": 9}])
    [[0, 2], [1]]
    """
    grouped: dict[str, list[int]] = {}
    for i, params in enumerate(runs):
        key = json.dumps({k: v for k, v in params.items() if k in MODEL_FOLDER}, sort_keys=True, default=str)
        grouped.setdefault(key, []).append(i)
    return list(grouped.values())


def _execute(books: list[Path], declared: dict[str, dict[str, Any]], params: dict[str, Any],
             fixed: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    """One run: every notebook in turn into ``run_dir``; its status, scores or error."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    book = books[0]
    try:
        for book in books:
            take = {k: v for k, v in {**params, **fixed}.items() if k in declared[book.name]}
            papermill.execute_notebook(
                str(book), str(run_dir / book.name), parameters=take, progress_bar=False,
                kernel_name="python3", cwd=str(run_dir),
            )
    except PapermillExecutionError as err:
        return {"status": "failed", "error": f"{book.name} cell {err.exec_count}: {err.ename}: {err.evalue}"}
    except Exception as err:  # noqa: BLE001 - any failure of one run is reported, the sweep goes on
        return {"status": "failed", "error": f"{book.name}: {type(err).__name__}: {err}"}
    return {"status": "ok", **_scores(run_dir)}


def run_sweep(
    grid: Mapping[str, list[Any]],
    out_dir: str | Path | None = None,
    bootstrap: str = "",
    models_dir: str | Path | None = None,
    notebooks_dir: str | Path = NOTEBOOKS_DIR,
    progress: bool = True,
    jobs: int = 1,
) -> pd.DataFrame:
    """Run the notebooks for every combination of ``grid``; returns (and writes) the summary table.

    One Kafka cluster serves the whole sweep: ``bootstrap``, the running local
    broker, or a temporary one. ``models_dir`` defaults to the models folder of the settings
    (the project's ``models/``, or ``KSTREAM_MODELS_DIR``), where ``kstream run`` and ``kstream train``
    look too; each run's ``1.0-train`` writes its model there, replacing one of the same dataset, task
    and model. Give a sweep a folder of its own (``<out_dir>/models``, say) to keep the models apart.

    ``jobs`` runs go at once (each notebook is a kernel process of its own), except runs that write the same
    model folder, which go one after another (:func:`lanes`). Runs side by side share the machine's cores, so their
    throughput and latency are lower than alone: sweep those with ``jobs=1``.
    """
    if jobs < 1:
        raise ConfigError(f"a sweep runs at least 1 job at once, not {jobs}")
    grid = check_grid(grid)
    out = (Path(out_dir) if out_dir else RUNS_DIR / f"sweep-{dt.datetime.now():%Y%m%d-%H%M%S}").resolve()
    out.mkdir(parents=True, exist_ok=True)
    # absolute: the notebooks run in their run folder
    models = Path(models_dir or Settings.resolve({}).models_dir).resolve()
    books = [Path(notebooks_dir) / name for name in NOTEBOOKS]
    declared = {book.name: declared_parameters(book) for book in books}
    known = set().union(*declared.values())
    runs = expand(grid) if grid else [{}]
    rows: list[dict[str, Any]] = [{"run": _run_name(params), **params} for params in runs]
    with _cluster(bootstrap) as address, tqdm(total=len(runs), desc="sweep", unit="run",
                                              disable=not progress) as bar:

        def lane(indices: list[int]) -> None:  # runs training one model, in turn
            for i in indices:
                run_dir = out / rows[i]["run"]
                run_dir.mkdir(parents=True, exist_ok=True)
                unknown = sorted(set(runs[i]) - known)
                if unknown:
                    rows[i].update(status="failed", error=f"unknown parameter {unknown[0]!r}; the notebooks take: "
                                   f"{', '.join(sorted(known - {'run_dir', 'models_dir', 'bootstrap'}))}")
                else:
                    fixed = {"run_dir": str(run_dir), "models_dir": str(models), "bootstrap": address}
                    rows[i].update(_execute(books, declared, runs[i], fixed, run_dir))
                bar.update()

        # threads are enough: each notebook runs in a kernel process of its own
        with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="kstream-sweep") as pool:
            for done in [pool.submit(lane, indices) for indices in lanes(runs)]:
                done.result()
    table = pd.DataFrame(rows)
    for column in SUMMARY_COLUMNS:
        if column not in table:
            table[column] = None
    table = table[[*SUMMARY_COLUMNS[:2], *[c for c in table.columns if c not in SUMMARY_COLUMNS], *SUMMARY_COLUMNS[2:]]]
    table.to_csv(out / "summary.csv", index=False)
    (out / "summary.md").write_text(markdown_table(table) + "\n")
    table.attrs["out_dir"] = str(out)
    failed = table[table["status"] != "ok"]
    for _, r in failed.iterrows():
        log.error("run %s failed: %s", r["run"], r["error"])
    return table


def _scores(run_dir: Path) -> dict[str, Any]:
    summary = json.loads((run_dir / "summary.json").read_text())
    lat = summary["latency_ms"]
    return {
        "records": summary["records"],
        "accuracy": summary.get("accuracy"),
        "macro_f1": summary.get("macro_f1"),
        "throughput_rps": summary["throughput_rps"],
        "latency_p50_ms": lat["p50"],
        "latency_p95_ms": lat["p95"],
        "latency_p99_ms": lat["p99"],
        "report": str(run_dir / "report.md"),
        "error": "",
        **({"drift_windows": summary["drift"]["windows"], "drifted_windows": summary["drift"]["drifted"],
            "alerts_raised": summary["drift"]["alerts"]} if summary.get("drift") else {}),
        "learn": summary.get("learn", "static"),  # a run's learning mode, whether or not the grid varied it
        **({"labels_learned": summary["learner"]["learned"]} if summary.get("learner") else {}),
    }
