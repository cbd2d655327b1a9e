"""Adaptation compared: static, retrained and online models scored on one stream in time order.

A run's predictions, in the order the generator sent them, carry each record's *family* (its class at
the dataset's finest label level: ``DoS Hulk``, ``PortScan``) and whether its model's training split
held that family. From them:

- :func:`onsets`: where each family first appears in the stream, and whether the model was trained on it;
- :func:`after_first_unseen`: the scores over the records from the first family the model never saw on;
- :func:`recovery`: per family, how many records (and seconds) passed from its first record until the
  model caught most of a run of its records;
- :func:`curve`: macro-F1 over consecutive blocks of the stream, for :func:`figure`;
- :func:`compare`: one row per run, for the table of docs/learning.md's experiment.

Every score is of a prediction made before its label reached any learner (prequential): the detectors
predict first, and a label travels ``--label-delay`` records behind its record.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from kstream.analysis.report import Run
from kstream.data import datasets
from kstream.errors import DataError
from kstream.modeling.quality import score

__all__ = ["stream_records", "onsets", "after_first_unseen", "recovery", "curve", "compare", "figure"]


def stream_records(run: Run) -> pd.DataFrame:
    """The run's scored predictions in the order they were sent, with ``position`` (0 = first sent),
    ``family`` and ``trained`` (whether the model's training split held the family).

    Needs the run's model card (its folder still there) to know the training split, and the data the
    run streamed (``load_run(..., data=...)`` when it moved).
    """
    if run.card is None:
        raise DataError(f"{run.run_dir}: the model's folder is gone, so its training split is unknown; "
                        "train it again with the same settings (kstream train) and load the run again")
    s = run.settings
    ds = datasets.load(s.get("dataset", "cicids2017"), s.get("data"))
    fine = ds.levels[ds.default_level]
    family = pd.Series(fine.to_numpy(), index=ds.ids.to_numpy())
    trained = set(run.card.rows(ds, "train").levels[ds.default_level])
    frame = run.predictions.dropna(subset=["true_label"])
    base = frame["record_id"].astype(str).str.split("#", n=1).str[0]
    order = ["send_ns", "partition", "offset"] if "send_ns" in frame else ["partition", "offset"]
    out = frame.assign(family=base.map(family).to_numpy()).sort_values(order, kind="stable")
    out = out.reset_index(drop=True)
    out["position"] = np.arange(len(out))
    out["trained"] = out["family"].isin(trained)
    return out


def onsets(records: pd.DataFrame) -> pd.DataFrame:
    """One row per family in order of first appearance: ``family``, ``position`` (its first record),
    ``records`` and ``trained``.

    >>> r = pd.DataFrame({"family": ["a", "a", "b", "c", "b"], "trained": [True, True, False, False, False]})
    >>> onsets(r.assign(position=range(5))).to_dict("list")
    {'family': ['a', 'b', 'c'], 'position': [0, 2, 3], 'records': [2, 2, 1], 'trained': [True, False, False]}
    """
    grouped = records.groupby("family", sort=False)
    out = pd.DataFrame({"position": grouped["position"].min(), "records": grouped.size(),
                        "trained": grouped["trained"].first()})
    return out.sort_values("position").rename_axis("family").reset_index()


def first_unseen(records: pd.DataFrame) -> int | None:
    """The position of the first record of a family the model never saw; None when it saw them all.

    >>> first_unseen(pd.DataFrame({"position": [0, 1, 2], "trained": [True, False, False]}))
    1
    """
    unseen = records.loc[~records["trained"].astype(bool), "position"]
    return None if unseen.empty else int(unseen.min())


def after_first_unseen(records: pd.DataFrame, task: str) -> dict[str, Any]:
    """Scores (``rows``, ``accuracy``, ``macro_f1``, and TPR/FAR for binary) over the records from the
    first family the model never saw on, with ``from_position``; ``rows`` 0 when it saw every family.

    >>> r = pd.DataFrame({"position": range(4), "trained": [True, False, True, False],
    ...                   "true_label": ["benign", "attack", "benign", "attack"],
    ...                   "predicted_label": ["benign", "benign", "benign", "attack"]})
    >>> s = after_first_unseen(r, "binary_class")
    >>> s["from_position"], s["rows"], round(s["macro_f1"], 3)
    (1, 3, 0.667)
    """
    start = first_unseen(records)
    if start is None:
        return {"from_position": None, "rows": 0}
    later = records[records["position"] >= start]
    return {"from_position": start, **score(later["true_label"], later["predicted_label"], task=task)}


def recovery(records: pd.DataFrame, run_of: int = 100, caught: float = 0.8) -> pd.DataFrame:
    """Per family: its ``onset`` position, ``recall`` over all its records (the share predicted as its
    class at the run's task: ``attack`` for binary), and ``recovered_after``: how many records of the
    stream passed from its first record to the end of the first ``run_of`` of its records in a row of
    which at least ``caught`` were caught (all its records when it has fewer; NaN when that never
    happened), with the ``recovered_s`` seconds between their sends.

    >>> r = pd.DataFrame({"position": range(6), "family": ["x"] * 6, "trained": [False] * 6,
    ...                   "true_label": ["attack"] * 6, "send_ns": [i * 10**9 for i in range(6)],
    ...                   "predicted_label": ["benign", "benign", "attack", "attack", "attack", "benign"]})
    >>> recovery(r, run_of=2, caught=1.0)[["family", "recall", "recovered_after", "recovered_s"]].to_dict("list")
    {'family': ['x'], 'recall': [0.5], 'recovered_after': [3.0], 'recovered_s': [3.0]}
    """
    rows = []
    for family, own in records.sort_values("position").groupby("family", sort=False):
        hit = (own["predicted_label"].astype(str) == own["true_label"].astype(str)).to_numpy(dtype=float)
        onset = int(own["position"].iloc[0])
        after, seconds = np.nan, np.nan
        n = min(run_of, len(hit))  # a family shorter than run_of is judged on all its records
        share = np.convolve(hit, np.ones(n), "valid") / n  # share caught in each run of n ending at i + n - 1
        done = np.flatnonzero(share >= caught)
        if done.size:
            end = int(done[0]) + n - 1
            after = float(own["position"].iloc[end] - onset)
            if "send_ns" in own:
                seconds = float(own["send_ns"].iloc[end] - own["send_ns"].iloc[0]) / 1e9
        rows.append({"family": family, "onset": onset, "records": len(own), "trained": bool(own["trained"].iloc[0]),
                     "recall": float(hit.mean()), "recovered_after": after, "recovered_s": seconds})
    return pd.DataFrame(rows).sort_values("onset").reset_index(drop=True)


def curve(records: pd.DataFrame, task: str, block: int = 1000) -> pd.DataFrame:
    """Macro-F1 and accuracy over consecutive blocks of ``block`` records in stream order: one row per
    block with ``end`` (the position after its last record). A last block of less than half ``block``
    joins the one before it, so no point stands on a handful of records.

    >>> r = pd.DataFrame({"position": range(7), "true_label": list("abababa"), "predicted_label": list("abbbaba")})
    >>> curve(r, "multi_class", block=3)[["end", "records", "accuracy"]].to_dict("list")
    {'end': [3, 7], 'records': [3, 4], 'accuracy': [0.6666666666666666, 1.0]}
    """
    ordered = records.sort_values("position")
    starts = list(range(0, len(ordered), block))
    if len(starts) > 1 and len(ordered) - starts[-1] < block / 2:
        starts.pop()
    rows = []
    for start, stop in zip(starts, [*starts[1:], len(ordered)]):
        part = ordered.iloc[start:stop]
        s = score(part["true_label"], part["predicted_label"], task=task)
        rows.append({"end": start + len(part), "records": len(part), "accuracy": s["accuracy"],
                     "macro_f1": s["macro_f1"]})
    return pd.DataFrame(rows)


def compare(runs: Mapping[str, Run], run_of: int = 100, caught: float = 0.8) -> pd.DataFrame:
    """One row per run (keyed by its name): how it learned, its label delay, macro-F1 over every record
    and over the records from the first unseen family on, the median records to recover from a family
    it was not trained on (NaN when none recovered) and how many such families never did, the
    retrain attempts and promotions, model versions served, and records/s."""
    rows = []
    for name, run in runs.items():
        s, summary = run.settings, run.summary
        records = stream_records(run)
        task = s.get("task", "binary_class")
        after = after_first_unseen(records, task)
        rec = recovery(records, run_of, caught)
        new = rec[~rec["trained"]]
        retrains = summary.get("retrains") or []
        rows.append({
            "run": name, "learn": summary.get("learn") or s.get("learn") or "static",
            "model": (s.get("learner") or s.get("model")) if summary.get("learn") == "online" else s.get("model"),
            "label_delay": s.get("label_delay", ""), "records": len(records),
            "macro_f1": score(records["true_label"].to_numpy(), records["predicted_label"].to_numpy(),
                              task=task).get("macro_f1"),
            "macro_f1_after_unseen": after.get("macro_f1"),
            "median_recovery": float(new["recovered_after"].median()) if new["recovered_after"].notna().any()
            else np.nan,
            "never_recovered": int(new["recovered_after"].isna().sum()),
            "retrains": len(retrains), "promotions": sum(bool(d.get("promoted")) for d in retrains),
            "versions": len(summary.get("model_ids") or []), "records_per_s": summary.get("throughput_rps"),
        })
    return pd.DataFrame(rows)


def figure(panels: Mapping[str, Mapping[str, pd.DataFrame]], families: pd.DataFrame | None = None,
           title: str = "Prequential macro-F1 in time order", name_min: int = 100) -> Figure:
    """One panel per entry of ``panels`` (e.g. per task and label delay), each with the macro-F1 per
    block (:func:`curve`) of its runs against the records streamed, and a dotted line at each family's
    first record (:func:`onsets`; the families the model never saw with ``name_min`` records or more
    are named on the first panel).

    >>> c = pd.DataFrame({"end": [2, 4], "macro_f1": [1.0, 0.5]})
    >>> f = pd.DataFrame({"family": ["a", "b"], "position": [0, 2], "trained": [True, False]})
    >>> fig = figure({"binary, delay 0": {"static": c, "online": c}}, f)
    >>> len(fig.axes), len(fig.axes[0].lines)
    (1, 4)
    """
    if not panels:
        raise ValueError("figure needs at least one panel of curves")
    fig, axes = plt.subplots(len(panels), 1, figsize=(11, 2.2 + 2.6 * len(panels)), sharex=True, sharey=True,
                             layout="constrained", squeeze=False)
    for i, (ax, (panel, curves)) in enumerate(zip(axes[:, 0], panels.items())):
        for name, frame in curves.items():
            ax.plot(frame["end"], frame["macro_f1"], marker=".", label=name)
        for row in (families.itertuples() if families is not None else ()):
            ax.axvline(row.position, color="0.65" if row.trained else "0.35", linestyle=":", linewidth=1)
            if i == 0 and not row.trained and getattr(row, "records", name_min) >= name_min:
                ax.annotate(str(row.family), (row.position, 1.0), xycoords=("data", "axes fraction"),
                            rotation=90, va="top", ha="right", fontsize=7, color="0.3")
        ax.set(ylabel="macro-F1 per block", ylim=(-0.02, 1.02), title=panel)
        ax.legend(loc="lower right", fontsize=8)
    axes[-1, 0].set_xlabel("records streamed, in time order (dotted: a family's first record)")
    fig.suptitle(title)
    return fig
