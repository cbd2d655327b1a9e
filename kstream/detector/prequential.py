"""Prequential windows: each record scored first, counted once its label is joined, in windows of N labels.

:class:`PrequentialWindows` takes joined labels (rows of :data:`~kstream.stores.protocol.LABEL_FIELDS` whose
join is set, in the order they were joined) and places each in the open window of its labels partition,
setting its ``window``. A window closes when it holds ``size`` labels, and early when a label of another
model version's prediction comes (so every window is scored by one ``model_id``: after a hot-swap the
first window of the new version starts with its first labelled prediction), or when the detector stops.
A closed window is one row of :data:`~kstream.stores.protocol.PREQUENTIAL_FIELDS`, scored by
:func:`kstream.modeling.quality.score` like every other score kstream prints.

Windows are numbered per labels partition: one partition (the default) gives one sequence for the
whole stream. A label's window is stored with the label, so the store alone says which labels a
window counted: after a restart, :meth:`PrequentialWindows.restore` reopens the window its labels left open.

>>> w = PrequentialWindows("flows", size=2, task="binary_class")
>>> rows = [dict(record_id=r, true_label=t, predicted_label=p, model_id="m@1", label_partition=0, joined_ns=i,
...              delay_records=10, delay_s=1.5) for i, (r, t, p) in enumerate([("a", "attack", "attack"),
...              ("b", "benign", "attack"), ("c", "benign", "benign")])]
>>> closed = [window for row in rows for window in w.place(row)]
>>> [row["window"] for row in rows], len(closed)
([0, 0, 1], 1)
>>> row = w.close(closed[0], "records")
>>> row["records"], row["accuracy"], row["tpr"], row["far"], row["recall"], row["model_id"]
(2, 0.5, 1.0, 1.0, {'attack': 1.0, 'benign': 0.0}, 'm@1')
"""

from __future__ import annotations

import collections
import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kstream.modeling.quality import score

__all__ = ["OpenWindow", "PrequentialWindows", "CLOSED_BY"]

#: Why a window closed: it holds ``size`` labels, the next label was of another model version, or the detector stopped.
CLOSED_BY = ("records", "model", "stop")


@dataclass
class OpenWindow:
    """The labels of one window so far: the columns a closed window is scored from."""

    partition: int
    index: int
    model_id: str | None = None
    truth: list[str] = field(default_factory=list)
    predicted: list[str] = field(default_factory=list)
    delay_records: list[float] = field(default_factory=list)
    delay_s: list[float] = field(default_factory=list)
    joined_ns: list[int] = field(default_factory=list)
    closed_by: str = ""  # why it closed (one of CLOSED_BY), once it has

    def __len__(self) -> int:
        return len(self.truth)

    def add(self, row: dict[str, Any]) -> None:
        self.model_id = self.model_id or row["model_id"]
        self.truth.append(str(row["true_label"]))
        self.predicted.append(str(row["predicted_label"]))
        if row.get("delay_records") is not None:
            self.delay_records.append(float(row["delay_records"]))
        if row.get("delay_s") is not None and math.isfinite(row["delay_s"]):
            self.delay_s.append(float(row["delay_s"]))
        if row.get("joined_ns") is not None:
            self.joined_ns.append(int(row["joined_ns"]))


class PrequentialWindows:
    """Open windows of flows topic ``topic``, one per labels partition, closed at ``size`` labels (see the module)."""

    def __init__(self, topic: str, size: int, task: str) -> None:
        if size < 1:
            raise ValueError(f"a prequential window holds at least one label, not {size}")
        self.topic, self.size, self.task = topic, int(size), task
        self.open: dict[int, OpenWindow] = {}
        self._next: dict[int, int] = collections.defaultdict(int)  # the next window number of each partition

    def place(self, row: dict[str, Any]) -> list[OpenWindow]:
        """Count a joined label (its ``label_partition`` and join fields set) in its partition's open window,
        setting its ``window``; the windows this closed (a full one, or one of another model version)."""
        partition = int(row["label_partition"])
        closed: list[OpenWindow] = []
        window = self.open.get(partition)
        if window is not None and len(window) and window.model_id != row["model_id"]:
            closed.append(self._take(partition, "model"))
            window = None
        if window is None:
            window = self.open[partition] = OpenWindow(partition, self._next[partition])
            self._next[partition] += 1
        row["window"] = window.index
        window.add(row)
        if len(window) >= self.size:
            closed.append(self._take(partition, "records"))
        return closed

    def _take(self, partition: int, why: str) -> OpenWindow:
        window = self.open.pop(partition)
        window.closed_by = why
        return window

    def flush(self) -> list[OpenWindow]:
        """Close every open window that holds a label (the detector stops)."""
        return [self._take(p, "stop") for p in sorted(self.open) if len(self.open[p])]

    def restore(self, partition: int, last_closed: int, rows: list[dict[str, Any]]) -> list[OpenWindow]:
        """Start ``partition`` over from the store: ``last_closed`` is its last stored window (-1: none), ``rows``
        the joined labels counted in later windows, by window. The last of those windows opens again (unless full);
        the others (their rows were stored, their window was not) are returned to be closed now."""
        self.open.pop(partition, None)
        self._next[partition] = last_closed + 1
        groups: dict[int, list[dict[str, Any]]] = {}
        for row in rows:
            groups.setdefault(int(row["window"]), []).append(row)
        closed: list[OpenWindow] = []
        ordered = sorted(groups)
        for n, index in enumerate(ordered):
            window = OpenWindow(partition, index)
            for row in groups[index]:
                window.add(row)
            self._next[partition] = index + 1
            last = n == len(ordered) - 1
            if len(window) >= self.size:
                why = "records"
            elif not last:
                why = "model" if window.model_id != groups[ordered[n + 1]][0]["model_id"] else "stop"
            else:
                self.open[partition] = window
                continue
            window.closed_by = why
            closed.append(window)
        return closed

    def close(self, window: OpenWindow, closed_by: str | None = None, pending: int = 0, expired: int = 0,
              unknown: int = 0, duplicates: int = 0) -> dict[str, Any]:
        """The row of a closed window (:data:`~kstream.stores.protocol.PREQUENTIAL_FIELDS`); ``pending``,
        ``expired``, ``unknown`` and ``duplicates`` are the join's counts when it closed."""
        with warnings.catch_warnings():  # a window of one class is a window, not a mistake
            warnings.simplefilter("ignore", UserWarning)
            scores = score(window.truth, window.predicted, None, self.task)
        present = collections.Counter(window.truth)
        recall = {c: _finite(scores["per_class"][c]["recall"]) for c in sorted(present)}
        delays = np.asarray(window.delay_records, dtype=float)
        seconds = np.asarray(window.delay_s, dtype=float)
        return {
            "topic": self.topic, "partition": window.partition, "window": window.index,
            "model_id": window.model_id or "",
            "start_ns": min(window.joined_ns) if window.joined_ns else None,
            "end_ns": max(window.joined_ns) if window.joined_ns else None,
            "records": len(window),
            "accuracy": _finite(scores["accuracy"]), "macro_f1": _finite(scores["macro_f1"]),
            "tpr": _finite(scores.get("tpr")), "far": _finite(scores.get("far")),
            "recall": recall, "true_counts": {c: int(n) for c, n in sorted(present.items())},
            "delay_records_p50": float(np.median(delays)) if len(delays) else None,
            "delay_records_max": int(delays.max()) if len(delays) else None,
            "delay_s_p50": float(np.median(seconds)) if len(seconds) else None,
            "delay_s_max": float(seconds.max()) if len(seconds) else None,
            "pending": int(pending), "expired": int(expired), "unknown": int(unknown), "duplicates": int(duplicates),
            "closed_by": closed_by or window.closed_by or "records",
        }


def _finite(value: Any) -> float | None:
    """A score as a float, None where it is undefined (NaN: e.g. TPR of a window without attacks)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None
