"""The report of a streaming run: its predictions joined to the truth, figures and a summary page.

A run folder (written by :func:`kstream.app.run`, the ``2.0-stream`` notebook or
``kstream run``) holds ``predictions.sqlite`` and ``summary.json``.
:func:`load_run` reads them back (with the drift windows of a run that monitored drift, and the
prequential windows of a run that streamed labels) and joins the dataset's labels by record id;
:func:`write_report` draws the figures of :mod:`kstream.analysis.plots` into
``<run>/figures/*.png`` and writes ``<run>/report.md``, a one-page summary. The ``3.0-report``
notebook and ``kstream report`` (through :func:`kstream.app.report`) call them.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd

from kstream.analysis import plots
from kstream.analysis.summaries import join_truth
from kstream.data import datasets, leakage
from kstream.errors import ConfigError, DataError, ModelError
from kstream.generator import parse_label_delay
from kstream.modeling.artifacts import ModelCard, read_train_vectors
from kstream.modeling.quality import score, scores_with_leakage
from kstream.paths import RUNS_DIR
from kstream.settings import Settings
from kstream.stores import sqlite
from kstream.stores.sqlite import Store
from kstream.tables import markdown_table

__all__ = ["Run", "latest_run", "load_run", "figures", "write_report"]

log = logging.getLogger(__name__)


@dataclass
class Run:
    """A finished run: its folder, summary, predictions (with ``true_label``, and
    ``seen_in_training`` when the model's training vectors are known) and the model's card (None
    when its folder is gone)."""

    run_dir: Path
    summary: dict[str, Any]
    predictions: pd.DataFrame
    card: ModelCard | None = None
    windows: pd.DataFrame | None = None  # drift windows of a run with drift monitoring, else None
    prequential: pd.DataFrame | None = None  # prequential windows of a run that joined labels, else None

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


def load_run(run_dir: str | Path, data: str | Path | None = None, seed: int | None = None) -> Run:
    """Read a run folder back: summary and predictions joined to the dataset's ground truth.

    ``data`` is the data file the run streamed when it has moved (default: as the run recorded
    it). When the run streamed the data its model was trained on, the records that were
    training rows of the split ``seed`` (default: the run's) are counted in
    ``summary["training_rows_streamed"]``; a held-out run has none. When the model's folder is
    still there, each prediction says whether its record's feature vector was a training row's
    (``seen_in_training``), for any data.
    """
    run_dir = Path(run_dir)
    summary_path = run_dir / "summary.json"
    if not summary_path.exists():
        raise DataError(f"{run_dir} is not a run folder (no summary.json); run a stream first")
    summary = json.loads(summary_path.read_text())
    settings = summary.get("settings", {})
    with _open_store(run_dir, settings) as store:
        frame = store.frame(settings.get("topic"))
        windows = store.windows(settings.get("topic")) if settings.get("drift") else None
        prequential = store.prequential(settings.get("topic")) if settings.get("labels") else None
    ds = datasets.load(settings.get("dataset", "cicids2017"), data or settings.get("data"),
                       level=settings.get("level") or None)
    frame = join_truth(frame, ds.truth(settings.get("task", "binary_class")))
    card, vectors = _model_card(summary)
    seed = seed if seed is not None else settings.get("seed")
    base = frame["record_id"].astype(str).str.split("#", n=1).str[0]
    if seed is not None and ds.source == summary.get("model_data_source"):
        if card is not None:
            train = dataclasses.replace(card, seed=int(seed)).rows(ds, "train")
        else:  # the model is gone: the run's split (a run whose summary names no split mode split at random)
            mode = settings.get("split_mode") or "random"
            until = (settings.get("train_until") or "") if mode == "temporal" else ""
            train = ds.subset("train", seed=int(seed), mode=mode, until=until)
        summary["training_rows_streamed"] = int(base.isin(set(train.ids)).sum())
        if vectors is None and card is not None:  # a model saved before train-vectors.npy: re-derive them
            vectors = leakage.distinct(leakage.vector_hashes(train.features, card.features))
    if vectors is not None and card is not None:
        hashes = pd.Series(leakage.vector_hashes(ds.features, card.features), index=ds.ids.to_numpy())
        known = base.isin(hashes.index).to_numpy()
        frame["vector_hash"] = base.map(hashes).where(known, 0).to_numpy(dtype="uint64")
        frame["seen_in_training"] = leakage.seen_in(frame["vector_hash"].to_numpy(), vectors) & known
    return Run(run_dir, summary, frame.reset_index(drop=True), card, windows, prequential)


def _model_card(summary: dict[str, Any]) -> tuple[ModelCard | None, Any]:
    """The card of the run's model and its training vectors, if its folder is still there."""
    folder = Path(summary.get("model_dir") or "")
    if not summary.get("model_dir") or not (folder / "model.json").exists():
        return None, None
    try:
        card = ModelCard.read(folder / "model.json")
        return card, read_train_vectors(folder, card)
    except ModelError as err:
        log.warning("leaving the model's training vectors out of the report: %s", err)
        return None, None


def _open_store(run_dir: Path, settings: dict[str, Any]) -> Store:
    """The store a run wrote to: its folder's SQLite file, or the MongoDB database it names (the
    password, masked in summary.json, comes from DB_URL / KSTREAM_STORE_URL)."""
    kind, table = settings.get("store", "sqlite"), settings.get("store_table", "predictions")
    if kind == "sqlite":
        here = run_dir / "predictions.sqlite"
        url = str(here) if here.exists() else settings.get("store_url", "")
        if not url or not sqlite.sqlite_path_from_url(url).exists():
            raise DataError(f"{run_dir} has no predictions.sqlite (and its store {url or '?'} is gone)")
        return sqlite.open_store("sqlite", url, table)
    url = settings.get("store_url", "")
    if ":***@" in url:
        url = Settings.resolve({}).store_url
        if not url:
            raise ConfigError("the run's MongoDB store URL holds a password kstream never saves; set DB_URL (or "
                              "KSTREAM_STORE_URL) to the store's URL to read the run")
    return sqlite.open_store(kind, url, table, database=settings.get("store_database", "kstream"))


def figures(run: Run) -> dict[str, plt.Figure]:
    """The report's figures by file name (a run without ground truth, such as flows from packets,
    has no confusion matrix, and its class counts are the predicted ones only)."""
    scored = run.predictions.dropna(subset=["true_label"])
    out = {
        "class_counts": plots.class_counts(scored if len(scored) else run.predictions,
                                           title=f"Predicted vs true classes: {run.title}"),
        "latency": plots.latency_histogram(run.predictions, title=f"Produce-to-prediction latency: {run.title}"),
    }
    if len(scored):
        classes = sorted(set(scored["true_label"]) | set(scored["predicted_label"]))
        out["confusion_matrix"] = plots.confusion_matrix(scored, classes,
                                                         title=f"Confusion matrix (streamed): {run.title}")
    out["throughput"] = plots.throughput_over_time(run.predictions, bin_s=_bin_seconds(run.predictions),
                                                   title=f"Throughput: {run.title}")
    if run.windows is not None and len(run.windows):
        out["drift"] = plots.drift_windows(run.windows, run.settings.get("drift_share"),
                                           title=f"Drift per window: {run.title}")
    if run.prequential is not None and len(run.prequential):
        out["prequential"] = plots.prequential_windows(run.prequential, title=f"Prequential scores: {run.title}")
    if run.card is not None and run.card.learning_curve:
        out["learning_curve"] = plots.learning_curve(run.card.learning_curve, run.card.metrics.get("ceiling"),
                                                     title=f"Held-out scores by training rows: {run.title}")
    return out


def _bin_seconds(frame: pd.DataFrame, bins: int = 40) -> float:
    """A round bin width giving about ``bins`` bins over the run (0.1 s at least).

    >>> _bin_seconds(pd.DataFrame({"send_ns": [0], "predicted_ns": [60 * 10**9]}))
    2.0
    """
    span = (frame["predicted_ns"].max() - frame["send_ns"].min()) / 1e9
    steps = [0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 600.0]
    return next((s for s in steps if span / s <= bins), steps[-1])


def _leakage_lines(scores: dict[str, Any]) -> list[str]:
    """Report table rows: records whose vector was a training row's, the unseen ones' scores, the ceiling.

    >>> _leakage_lines({"seen_in_training": None})
    ["| records whose feature vector a training row had | unknown (the model's folder is gone) |"]
    """
    if scores.get("seen_in_training") is None:
        return ["| records whose feature vector a training row had | unknown (the model's folder is gone) |"]
    lines = [f"| records whose feature vector a training row had | {scores['seen_in_training']} |"]
    unseen = scores.get("unseen") or {}
    if unseen.get("rows") and scores["seen_in_training"]:
        lines.append(f"| accuracy / macro-F1 on the {unseen['rows']} records of unseen vectors | "
                     f"{unseen['accuracy']:.4f} / {unseen['macro_f1']:.4f} |")
    lines.append(f"| ceiling: the best accuracy these labels allow | {scores['ceiling']:.4f} "
                 f"({scores['multi_label_rows']} records on vectors labelled more than one way) |")
    return lines


def _drift_lines(run: Run) -> list[str]:
    """The report's drift section: windows, verdicts, alerts and the features that drifted most often
    (nothing for a run without drift monitoring)."""
    w = run.windows
    if w is None:
        return []
    s = run.settings
    lines = ["", "## Drift", "", f"Windows of {s.get('drift_window', '?')} records"
             + (f" or {s['drift_window_s']:g} s" if s.get("drift_window_s") else "")
             + f"; a window drifts when {s.get('drift_share', '?')} of the features (or the scores) have PSI > "
             f"{s.get('drift_psi', '?')}, or the change detector fires on its attack rate or mean score. "
             "Windows under 200 records are not judged."]
    if not len(w):
        return lines + ["", "No window closed (too few records)."]
    judged, drifted = w[w["judged"]], w[w["drifted"]]
    alerts = [a for rules in w["alerts"] for a in rules]
    counts = pd.Series([f for names in judged["drifting"] for f in names], dtype="object").value_counts()
    lines += ["", "| measure | value |", "|---|---|",
              f"| windows (judged) | {len(w)} ({len(judged)}) |",
              f"| drifted windows | {len(drifted)}"
              + (f", the first ending {_seconds(w, drifted.index[0])}" if len(drifted) else "") + " |",
              "| largest feature PSI of a judged window (median) | "
              + (f"{judged['max_psi'].max():.3f} ({judged['max_psi'].median():.3f}) |" if len(judged) else "- |"),
              f"| alerts | {len(alerts)}"
              + (": " + ", ".join(f"{n} x {r}" for r, n in pd.Series(alerts).value_counts().items()) if alerts else "")
              + " |"]
    if len(counts):
        lines.append("| features drifting most often | " + ", ".join(f"{f} ({n})" for f, n in counts.iloc[:5].items())
                     + " |")
    return lines


def _prequential_lines(run: Run) -> list[str]:
    """The report's prequential section: the windows' scores, the label delay seen, what waited or expired,
    and a word on class balance (nothing for a run that joined no labels)."""
    q = run.prequential
    if q is None:
        return []
    s = run.settings
    delay = parse_label_delay(s.get("label_delay") or None)
    lines = ["", "## Prequential scores", "",
             "Each record was scored as it streamed; its label followed "
             + (f"{delay} after it" if delay is not None else "later, from a labeller of its own")
             + f" and was joined to the prediction by record id. Windows of {s.get('prequential_window', '?')} "
             "labelled records, in the order the labels came (a window closes early where the model version "
             "changes, and when the detectors stop)."]
    if not len(q):
        return lines + ["", "No window closed (no label was joined)."]
    q = q.sort_values("end_ns", kind="stable") if q["end_ns"].notna().all() else q
    accuracy, f1 = q["accuracy"].astype(float), q["macro_f1"].astype(float)
    lines += ["", "| measure | value |", "|---|---|",
              f"| windows (labelled records) | {len(q)} ({int(q['records'].sum())}) |",
              f"| accuracy: first / last / lowest | {accuracy.iloc[0]:.4f} / {accuracy.iloc[-1]:.4f} / "
              f"{accuracy.min():.4f} |",
              f"| macro-F1: first / last / lowest | {f1.iloc[0]:.4f} / {f1.iloc[-1]:.4f} / {f1.min():.4f} |"]
    if "tpr" in q and q["tpr"].notna().any():
        lines.append(f"| TPR / FAR, mean over windows | {q['tpr'].astype(float).mean():.4f} / "
                     f"{q['far'].astype(float).mean():.4f} |")
    if q["delay_records_p50"].notna().any():
        lines.append(f"| label delay seen: records p50 (max) | {q['delay_records_p50'].astype(float).median():.0f} "
                     f"({q['delay_records_max'].astype(float).max():.0f}) |")
    if q["delay_s_p50"].notna().any():
        lines.append(f"| label delay seen: seconds p50 (max) | {q['delay_s_p50'].astype(float).median():.2f} "
                     f"({q['delay_s_max'].astype(float).max():.2f}) |")
    lines += [f"| predictions waiting for a label at the end | {int(q['pending'].iloc[-1])} |",
              f"| expired predictions / unknown labels / duplicate labels | {int(q['expired'].sum())} / "
              f"{int(q['unknown'].sum())} / {int(q['duplicates'].sum())} |",
              f"| model versions | {', '.join(dict.fromkeys(q['model_id'].astype(str)))} |"]
    shares = [c.get("attack", 0) / max(1, sum(c.values())) for c in q["true_counts"] if isinstance(c, dict)]
    if shares and any("attack" in c or "benign" in c for c in q["true_counts"] if isinstance(c, dict)):
        lines += ["", f"Class balance: attacks are {min(shares):.1%} to {max(shares):.1%} of a window's labels. "
                  "Accuracy follows the majority class: on a window mostly of one class (a quiet, mostly benign hour) "
                  "it stays high whatever the model does on the other, so read it beside macro-F1 and TPR/FAR (a "
                  "window without attacks has no TPR, one without benign flows no FAR)."]
    else:
        lines += ["", "Class balance: accuracy follows the classes a window holds most of; macro-F1 weighs every "
                  "class a window holds alike, so read the two together, and per-class recall for the rare ones."]
    return lines


def _learning_lines(run: Run) -> list[str]:
    """The report's section on a model that adapted (``--learn retrain`` or ``online``); nothing for a static one."""
    s, summary = run.settings, run.summary
    mode = summary.get("learn") or s.get("learn") or "static"
    if mode == "static":
        return []
    lines = ["", "## Learning", ""]
    learner = summary.get("learner")
    if mode == "online":
        lines.append(f"The online learner `{s.get('learner', '?')}` learned each label beside the detectors and "
                     f"handed them a new version every {s.get('learn_every', '?')} labels.")
        if learner:
            skipped = ", ".join(f"{n} {why}" for why, n in (learner.get("skipped") or {}).items()) or "none"
            lines += ["", "| measure | value |", "|---|---|", f"| labels learned | {learner['learned']} |",
                      f"| versions saved | {learner['versions']} |", f"| labels skipped | {skipped} |"]
        return lines
    retrains = summary.get("retrains") or []
    lines.append(f"Retraining on `{s.get('retrain_trigger', '?')}`: a challenger trained on the last "
                 f"{s.get('retrain_window', '?')} labelled flows before the last {s.get('retrain_holdout', '?')}"
                 + (" and the original training split" if s.get("retrain_with_training") else "")
                 + f", promoted only when its macro-F1 on those last flows beat the serving model's by "
                 f"{s.get('retrain_margin', '?')}.")
    if not retrains:
        return lines + ["", "No attempt was made (the trigger never fired)."]
    table = pd.DataFrame([{
        "attempt": d["attempt"], "reason": str(d["reason"])[:80],
        "trained on": d["window_records"] + (d.get("training_rows") or 0),
        "champion F1": "-" if d["champion_f1"] is None else f"{d['champion_f1']:.4f}",
        "challenger F1": "-" if d["challenger_f1"] is None else f"{d['challenger_f1']:.4f}",
        "promoted": "yes" if d["promoted"] else "no", "seconds": f"{d['seconds']:.2f}", "error": d["error"] or ""}
        for d in retrains])
    return lines + ["", markdown_table(table)]


def _seconds(windows: pd.DataFrame, at: int) -> str:
    """When window ``at`` ended, in seconds after the first window started."""
    return f"{(windows.loc[at, 'end_ns'] - windows['start_ns'].min()) / 1e9:.1f} s into the run"


def write_report(run: Run | str | Path, figs: dict[str, plt.Figure] | None = None) -> Path:
    """Write ``figures/*.png`` and ``report.md`` into the run folder; returns the report's path.

    ``run`` is a loaded :class:`Run` or a run folder; ``figs`` are its figures when already drawn
    (as a notebook that shows them has), so nothing is drawn twice.
    """
    run = run if isinstance(run, Run) else load_run(run)
    drawn_here = figs is None
    figs = figures(run) if figs is None else figs
    paths = plots.save_figures(figs, run.run_dir / "figures")
    if drawn_here:
        for fig in figs.values():
            plt.close(fig)
    s, lat = run.summary, run.summary["latency_ms"]
    scored = run.predictions.dropna(subset=["true_label"])
    task = run.settings.get("task", "multi_class")
    if "seen_in_training" in scored:
        scores = scores_with_leakage(scored["true_label"], scored["predicted_label"], None, task,
                                     scored["vector_hash"].to_numpy(dtype="uint64"),
                                     scored["seen_in_training"].to_numpy(dtype=bool))
    else:
        scores = score(scored["true_label"], scored["predicted_label"], task=task)
    per_class = pd.DataFrame(scores.get("per_class", {})).T
    split = run.settings.get("split_mode") or "random"
    if split == "temporal":
        split += f" split: trained on the flows before {run.settings.get('train_until') or '?'}"
    else:
        split += " split"
    order = f"; records sent in {run.settings['order']} order" if run.settings.get("order") else ""
    lines = [
        f"# Run report: {run.title}",
        "",
        f"Run folder `{run.run_dir}`; model `{s.get('model_id', '?')}`; "
        f"{run.settings.get('detectors', 1)} detector(s) on {run.settings.get('partitions', 1)} partition(s); "
        f"data `{run.settings.get('data') or 'bundled sample'}`, split seed {run.settings.get('seed', '?')} "
        f"({split}){order}.",
        "",
        *([run.card.split_note, ""] if run.card is not None and run.card.split_note else []),
        "| measure | value |",
        "|---|---|",
        f"| records predicted | {s['records']} (sent {s.get('sent', '?')}, "
        f"dead-lettered {s.get('dead_lettered', 0)}) |",
        f"| throughput | {s['throughput_rps']:.0f} records/s (first send to last prediction) |",
        f"| latency p50 / p95 / p99 | {lat['p50']:.1f} / {lat['p95']:.1f} / {lat['p99']:.1f} ms |",
    ]
    if "training_rows_streamed" in s:
        lines.append(f"| streamed records that were training rows | {s['training_rows_streamed']} |")
    if scores.get("rows"):
        lines.append(f"| accuracy / macro-F1 | {scores['accuracy']:.4f} / {scores['macro_f1']:.4f} |")
        if "tpr" in scores:
            lines.append(f"| TPR / FAR | {scores['tpr']:.4f} / {scores['far']:.4f} |")
        lines.append(f"| NetML overall score | {scores['netml_overall']:.4f} |")
        lines += _leakage_lines(scores)
    lines += ["", "## Per class", "", markdown_table(per_class, index="class")]
    lines += _drift_lines(run)
    lines += _prequential_lines(run)
    lines += _learning_lines(run)
    lines += ["", "## Figures", ""]
    lines += [f"![{p.stem}](figures/{p.name})" for p in paths]
    citation = datasets.spec(run.settings.get("dataset", "cicids2017")).citation
    lines += ["", "## Data", "", f"Cite the data as: {citation}."]
    out = run.run_dir / "report.md"
    out.write_text("\n".join(lines) + "\n")
    log.info("wrote %s", out)
    return out
