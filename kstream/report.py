"""The report of a streaming run: its predictions joined to the truth, figures and a summary page.

A run folder (written by :func:`kstream.app.run`, the ``2.0-stream`` notebook or
``kstream run``) holds ``predictions.sqlite`` and ``summary.json``.
:func:`load_run` reads them back and joins the dataset's labels by record id;
:func:`write_report` draws the figures of :mod:`kstream.plots` into
``<run>/figures/*.png`` and writes ``<run>/report.md``, a one-page summary.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd

from kstream import datasets, modeling, plots
from kstream.config import RUNS_DIR
from kstream.errors import DataError
from kstream.metrics import join_truth
from kstream.sinks import SQLiteStore

__all__ = ["Run", "latest_run", "load_run", "figures", "write_report", "markdown_table"]

log = logging.getLogger(__name__)


@dataclass
class Run:
    """A finished run: its folder, summary and predictions (with ``true_label``)."""

    run_dir: Path
    summary: dict[str, Any]
    predictions: pd.DataFrame

    @property
    def settings(self) -> dict[str, Any]:
        return self.summary.get("settings", {})

    @property
    def title(self) -> str:
        s = self.settings
        level = f" ({s['level']})" if s.get("level") else ""
        return f"{s.get('dataset', '?')} / {s.get('task', '?')}{level} / {s.get('model', '?')}"


def latest_run(root: str | Path = RUNS_DIR) -> Path:
    """The newest run folder (one with a ``summary.json``) under ``root``, searched recursively."""
    found = sorted(Path(root).glob("**/summary.json"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise DataError(f"no run folder under {root}; stream first (2.0-stream notebook or `kstream run`)")
    return found[-1].parent


def load_run(run_dir: str | Path) -> Run:
    """Read a run folder back: summary and predictions joined to the dataset's ground truth."""
    run_dir = Path(run_dir)
    summary_path, store_path = run_dir / "summary.json", run_dir / "predictions.sqlite"
    if not summary_path.exists() or not store_path.exists():
        raise DataError(f"{run_dir} is not a run folder (no summary.json / predictions.sqlite); run a stream first")
    summary = json.loads(summary_path.read_text())
    settings = summary.get("settings", {})
    with SQLiteStore(store_path, settings.get("store_table", "predictions")) as store:
        frame = store.frame(settings.get("topic"))
    ds = datasets.load(settings.get("dataset", "cicids2017"), settings.get("data"), level=settings.get("level") or None)
    frame = join_truth(frame, ds.truth(settings.get("task", "binary_class")))
    return Run(run_dir, summary, frame.reset_index(drop=True))


def figures(run: Run) -> dict[str, plt.Figure]:
    """The report's figures by file name."""
    scored = run.predictions.dropna(subset=["true_label"])
    classes = sorted(set(scored["true_label"]) | set(scored["predicted_label"]))
    return {
        "class_counts": plots.class_counts(scored, title=f"Predicted vs true classes: {run.title}"),
        "latency": plots.latency_histogram(run.predictions, title=f"Produce-to-prediction latency: {run.title}"),
        "confusion_matrix": plots.confusion_matrix(scored, classes, title=f"Confusion matrix (streamed): {run.title}"),
        "throughput": plots.throughput_over_time(
            run.predictions, bin_s=_bin_seconds(run.predictions), title=f"Throughput: {run.title}"
        ),
    }


def _bin_seconds(frame: pd.DataFrame, bins: int = 40) -> float:
    """A round bin width giving about ``bins`` bins over the run (0.1 s at least).

    >>> _bin_seconds(pd.DataFrame({"send_ns": [0], "predicted_ns": [60 * 10**9]}))
    2.0
    """
    span = (frame["predicted_ns"].max() - frame["send_ns"].min()) / 1e9
    steps = [0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 600.0]
    return next((s for s in steps if span / s <= bins), steps[-1])


def write_report(run_dir: str | Path) -> Path:
    """Write ``figures/*.png`` and ``report.md`` into the run folder; returns the report's path."""
    run = load_run(run_dir)
    figs = figures(run)
    paths = plots.save_figures(figs, run.run_dir / "figures")
    for fig in figs.values():
        plt.close(fig)
    s, lat = run.summary, run.summary["latency_ms"]
    scored = run.predictions.dropna(subset=["true_label"])
    scores = modeling.evaluate(
        scored["true_label"], scored["predicted_label"].to_numpy(),
        sorted(set(scored["true_label"]) | set(scored["predicted_label"])), run.settings.get("task", "multi_class"),
    ) if len(scored) else {}
    per_class = pd.DataFrame(scores.get("per_class", {})).T
    lines = [
        f"# Run report: {run.title}",
        "",
        f"Run folder `{run.run_dir}`; model `{s.get('model_id', '?')}`; "
        f"{run.settings.get('detectors', 1)} detector(s) on {run.settings.get('partitions', 1)} partition(s).",
        "",
        "| measure | value |",
        "|---|---|",
        f"| records predicted | {s['records']} (sent {s.get('sent', '?')}, dead-lettered {s.get('dead_lettered', 0)}) |",
        f"| throughput | {s['throughput_rps']:.0f} records/s (first send to last prediction) |",
        f"| latency p50 / p95 / p99 | {lat['p50']:.1f} / {lat['p95']:.1f} / {lat['p99']:.1f} ms |",
    ]
    if scores:
        lines.append(f"| accuracy / macro-F1 | {scores['accuracy']:.4f} / {scores['macro_f1']:.4f} |")
        if "tpr" in scores:
            lines.append(f"| TPR / FAR | {scores['tpr']:.4f} / {scores['far']:.4f} |")
        lines.append(f"| NetML overall score | {scores['netml_overall']:.4f} |")
    lines += ["", "## Per class", "", markdown_table(per_class, index="class"), "", "## Figures", ""]
    lines += [f"![{p.stem}](figures/{p.name})" for p in paths]
    out = run.run_dir / "report.md"
    out.write_text("\n".join(lines) + "\n")
    log.info("wrote %s", out)
    return out


def markdown_table(frame: pd.DataFrame, index: str | None = None) -> str:
    """A data frame as a Markdown table; floats with 4 decimals (large ones as whole numbers).

    ``index`` names a column for the frame's index, which is otherwise left out.

    >>> print(markdown_table(pd.DataFrame({"model": ["dt"], "accuracy": [0.91234], "rps": [1234.5]})))
    | model | accuracy | rps |
    |---|---|---|
    | dt | 0.9123 | 1234 |
    """
    if index is not None:
        frame = frame.rename_axis(index).reset_index()
    if frame.empty:
        return "(no rows)"

    def cell(v: Any) -> str:
        if isinstance(v, float):
            return "" if pd.isna(v) else f"{v:.4f}" if abs(v) < 100 else f"{v:.0f}"
        return "" if v is None else str(v).replace("|", "\\|")

    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)
