"""Watching a run as it happens: what the detectors have written so far, as a status line or a figure.

Nothing here sits in a detector's loop. :class:`StoreWatch` reads what the detectors wrote to the
results store (the predictions, the drift windows and the prequential windows of the run's topic) from the caller's
thread, at most about once a second and less often when reading and drawing take longer (their
share of the time stays under a fifth), and hands a :class:`LiveState` to whoever shows it:
:func:`kstream.app.run` calls its ``on_progress`` with it from the main thread, the ``2.0-stream``
notebook redraws :func:`kstream.analysis.plots.live_view` into one display handle (:class:`NotebookView`),
and ``kstream run`` writes :meth:`LiveState.status_line` beside its progress bar. ``kstream
detect``, a process of its own, tallies the batches it has handled instead (:class:`BatchTally`).

>>> import pandas as pd
>>> frame = pd.DataFrame({"predicted_label": ["attack"] * 3 + ["benign"], "latency_ms": [2.0, 4.0, 8.0, 50.0],
...                       "predicted_ns": [0, 10**9, 2 * 10**9, 2 * 10**9]})
>>> LiveState(frame, dead_lettered=1).status_line()
'4 predicted | 2 rec/s | p99 48.7 ms | attack 3, benign 1 | 1 dead-lettered'
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from kstream.stores.protocol import Store

__all__ = ["LiveState", "StoreWatch", "BatchTally", "NotebookView", "status_line"]

log = logging.getLogger(__name__)

#: Records/s in a status line are counted over this many trailing seconds.
RATE_SPAN_S = 5.0


def status_line(records: int, rate: float, p99_ms: float | None, classes: Iterable[tuple[str, int]],
                dead_lettered: int, windows: int | None = None, drifted: int = 0, alerts: int = 0,
                models: Sequence[str] = (),
                prequential: tuple[int, dict[str, Any] | None, int] | None = None,
                retrains: tuple[int, int, int] | None = None) -> str:
    """One line: records, records/s, p99 latency, the largest classes, dead letters, drift, the model
    versions ``models`` (in the order they served) once there is more than one, the prequential
    scores (``prequential``: windows closed, the latest window's row, predictions waiting for a label) and the
    retraining decisions (``retrains``: attempts, promoted, failed).

    >>> print(status_line(1200, 850.4, 31.25, [("attack", 1000), ("benign", 200)], 0, windows=2, drifted=1,
    ...                   alerts=1, models=["m@0123", "m@4567"]))  # doctest: +NORMALIZE_WHITESPACE
    1,200 predicted | 850 rec/s | p99 31.2 ms | attack 1,000, benign 200 | 0 dead-lettered |
    drift 1/2 windows, 1 alert | 2 models, now @4567
    >>> print(status_line(1200, 850.4, 31.25, [("attack", 1000), ("benign", 200)], 0, windows=2, drifted=1,
    ...                   alerts=1, prequential=(3, {"accuracy": 0.97, "macro_f1": 0.9}, 1000))
    ...       )  # doctest: +NORMALIZE_WHITESPACE
    1,200 predicted | 850 rec/s | p99 31.2 ms | attack 1,000, benign 200 | 0 dead-lettered |
    drift 1/2 windows, 1 alert | prequential 3 windows, last acc 0.970 F1 0.900, 1,000 waiting for a label
    >>> status_line(10, 1.0, None, [], 0, retrains=(3, 1, 1)).rpartition(" | ")[2]
    'retrain 3 attempts, 1 promoted, 1 failed'
    """
    top = sorted(classes, key=lambda kv: (-kv[1], kv[0]))
    shown = ", ".join(f"{name} {count:,}" for name, count in top[:3])
    shown += f" +{len(top) - 3} more" if len(top) > 3 else ""
    parts = [f"{records:,} predicted", f"{rate:,.0f} rec/s",
             f"p99 {p99_ms:.1f} ms" if p99_ms is not None and np.isfinite(p99_ms) else "p99 -",
             shown or "no classes yet", f"{dead_lettered:,} dead-lettered"]
    if windows is not None:
        parts.append(f"drift {drifted}/{windows} windows, {alerts} alert{'s' if alerts != 1 else ''}")
    if len(models) > 1:
        parts.append(f"{len(models)} models, now @{str(models[-1]).rpartition('@')[2]}")
    if prequential is not None:
        closed, last, waiting = prequential
        scores = (f", last acc {last['accuracy']:.3f} F1 {last['macro_f1']:.3f}"
                  if last and last.get("accuracy") is not None else "")
        plural = "s" if closed != 1 else ""
        parts.append(f"prequential {closed} window{plural}{scores}, {waiting:,} waiting for a label")
    if retrains is not None:
        attempts, promoted, failed = retrains
        parts.append(f"retrain {attempts} attempt{'s' if attempts != 1 else ''}, {promoted} promoted, {failed} failed")
    return " | ".join(parts)


@dataclass
class LiveState:
    """What a run has written so far: its predictions (a store frame: ``predicted_label``,
    ``latency_ms``, ``predicted_ns``), its drift windows (None when drift is not monitored), dead
    letters, records sent (None when unknown), seconds since watching began, and its prequential
    windows (None when no label is joined)."""

    predictions: pd.DataFrame
    windows: pd.DataFrame | None = None
    dead_lettered: int = 0
    sent: int | None = None
    elapsed_s: float = 0.0
    prequential: pd.DataFrame | None = None
    retrains: pd.DataFrame | None = None  # the retraining decisions of a run that retrains, else None

    @property
    def alerts(self) -> int:
        """Alerts raised on the windows so far."""
        if self.windows is None or "alerts" not in self.windows:
            return 0
        return int(sum(len(a) for a in self.windows["alerts"] if isinstance(a, (list, tuple))))

    def status_line(self) -> str:
        """The run so far in one line (records/s over the last :data:`RATE_SPAN_S` seconds of predictions)."""
        frame = self.predictions
        times = pd.to_numeric(frame["predicted_ns"], errors="coerce").dropna().to_numpy(dtype=np.int64)
        rate = 0.0
        if len(times):
            span = min(RATE_SPAN_S, max((times.max() - times.min()) / 1e9, 1.0))
            rate = float(np.sum(times >= times.max() - span * 1e9)) / span
        latency = pd.to_numeric(frame["latency_ms"], errors="coerce").to_numpy(dtype=float)
        latency = latency[np.isfinite(latency)]
        p99 = float(np.percentile(latency, 99)) if len(latency) else None
        classes = [(str(label), int(n)) for label, n in frame["predicted_label"].astype(str).value_counts().items()]
        w = self.windows
        drifted = int(w["drifted"].astype(bool).sum()) if w is not None and len(w) else 0
        models: list[str] = []
        if "model_id" in frame and frame["model_id"].nunique() > 1:  # the versions, by when each first scored
            models = list(frame.sort_values("predicted_ns", kind="mergesort")["model_id"].drop_duplicates())
        q = self.prequential
        prequential = None
        if q is not None:
            last = q.sort_values("end_ns").iloc[-1].to_dict() if len(q) else None
            prequential = (len(q), last, int(last["pending"]) if last and pd.notna(last.get("pending")) else 0)
        r = self.retrains
        retrains = None if r is None else (len(r), int(r["promoted"].astype(bool).sum()) if len(r) else 0,
                                           int((r["error"].fillna("").astype(str) != "").sum()) if len(r) else 0)
        return status_line(len(frame), rate, p99, classes, self.dead_lettered,
                           None if w is None else len(w), drifted, self.alerts, models, prequential, retrains)


class StoreWatch:
    """Reads a run's predictions (and drift windows) from its store when a new view is due.

    ``topic`` is the run's flows topic (a store may hold many runs); ``dead_letters`` and
    ``sent`` are callables giving those counts (the detectors' and the generator's own counters);
    ``drift`` says whether to read the windows too, ``labels`` the prequential windows, ``retrains`` the
    retraining decisions. :meth:`poll`
    returns a :class:`LiveState` when ``every_s`` seconds have passed since the last one and reading and
    showing the last one took less than a fifth of the time since, else None; ``force`` reads now.

    >>> import tempfile, os
    >>> from kstream.stores.sqlite import SQLiteStore
    >>> store = SQLiteStore(os.path.join(tempfile.mkdtemp(), "p.sqlite"))
    >>> watch = StoreWatch(store, "flows", dead_letters=lambda: 0, every_s=60)
    >>> len(watch.poll().predictions), watch.poll()
    (0, None)
    >>> store.close()
    """

    def __init__(self, store: Store, topic: str, dead_letters: Callable[[], int] = lambda: 0,
                 sent: Callable[[], int | None] = lambda: None, drift: bool = False, every_s: float = 1.0,
                 clock: Callable[[], float] = time.monotonic, labels: bool = False, retrains: bool = False) -> None:
        self.store, self.topic, self.drift, self.every_s = store, topic, drift, float(every_s)
        self.labels, self.retrains = labels, retrains
        self._dead, self._sent, self._clock = dead_letters, sent, clock
        self._start = clock()
        self._due = self._start  # the first poll reads
        self.reads = 0

    def poll(self, force: bool = False) -> LiveState | None:
        """A fresh :class:`LiveState` if one is due (see the class), else None."""
        now = self._clock()
        if not force and now < self._due:
            return None
        state = LiveState(self.store.frame(self.topic), self.store.windows(self.topic) if self.drift else None,
                          int(self._dead()), self._sent(), now - self._start,
                          self.store.prequential(self.topic) if self.labels else None,
                          self.store.retrains(self.topic) if self.retrains else None)
        self.reads += 1
        self._last_read = now
        self.done(self._clock() - now)
        return state

    def done(self, spent_s: float) -> None:
        """Say how long the last read and its showing took; the next read waits five times that, or ``every_s``."""
        self._due = self._last_read + max(self.every_s, 5 * spent_s)


class BatchTally:
    """A detector's batches tallied as they are handled, for the status line of ``kstream detect``.

    :meth:`add` takes a handled batch (:attr:`kstream.detector.loop.Detector.last_result`) and the
    detector's stats; it counts classes with one C-level pass over the batch's labels, keeps the
    last ``keep`` latencies for the p99 and the per-second counts of the last few seconds.
    """

    def __init__(self, keep: int = 20_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.classes: collections.Counter[str] = collections.Counter()
        self.latency_ms: collections.deque[float] = collections.deque(maxlen=keep)
        self.records = 0
        self.dead_lettered = 0
        self.windows: int | None = None
        self.drifted = self.alerts = 0
        self.models: list[str] = []  # the model versions the detector served, in order
        self.prequential: tuple[int, dict[str, Any] | None, int] | None = None
        self._clock = clock
        self._recent: collections.deque[tuple[float, int]] = collections.deque()

    def add(self, result: Any, stats: Any = None) -> None:
        """Count one batch's predictions (``result.predictions``); copy totals from ``stats`` when given.

        >>> from types import SimpleNamespace as NS
        >>> tally = BatchTally(clock=lambda: 10.0)
        >>> rows = [{"predicted_label": "attack", "send_ns": 0, "predicted_ns": 2_000_000}] * 3
        >>> tally.add(NS(predictions=rows), NS(dead_lettered=1, windows=0, drifted=0, alerts=0))
        >>> tally.status_line()
        '3 predicted | 3 rec/s | p99 2.0 ms | attack 3 | 1 dead-lettered'
        """
        rows = result.predictions if result is not None else []
        now = self._clock()
        self.records += len(rows)
        self.classes.update(r["predicted_label"] for r in rows)
        self.latency_ms.extend((r["predicted_ns"] - r["send_ns"]) / 1e6 for r in rows if r["send_ns"] is not None)
        self._recent.append((now, len(rows)))
        while self._recent and self._recent[0][0] < now - RATE_SPAN_S:
            self._recent.popleft()
        if stats is not None:
            self.dead_lettered = stats.dead_lettered
            if stats.windows or self.windows is not None:
                self.windows, self.drifted, self.alerts = stats.windows, stats.drifted, stats.alerts
            self.models = list(getattr(stats, "model_ids", ()))
            counts = getattr(stats, "labels", None)
            if counts is not None:
                self.prequential = (counts.get("windows", 0), getattr(stats, "last_prequential", None),
                                    counts.get("pending", 0))

    def status_line(self) -> str:
        """The detector so far in one line."""
        span = max(min(RATE_SPAN_S, self._clock() - self._recent[0][0]), 1.0) if self._recent else 1.0
        rate = sum(n for _, n in self._recent) / span
        p99 = float(np.percentile(np.fromiter(self.latency_ms, float), 99)) if self.latency_ms else None
        return status_line(self.records, rate, p99, self.classes.items(), self.dead_lettered, self.windows,
                           self.drifted, self.alerts, self.models, self.prequential)


class NotebookView:
    """The live figure in a notebook: one display handle, redrawn with each :class:`LiveState`.

    Pass :meth:`update` as ``on_progress`` to :func:`kstream.app.run`; it runs on the notebook's
    main thread. The last state drawn stays in the cell's output, so an executed notebook
    (papermill) keeps the run's final view.
    """

    def __init__(self, title: str = "Live run") -> None:
        from IPython.display import display  # IPython only in a notebook

        self.title = title
        self.updates = 0
        self.handle = display("waiting for the first predictions...", display_id=True)

    def update(self, state: LiveState) -> None:
        """Draw ``state`` and show it in place of the previous figure."""
        import matplotlib.pyplot as plt

        from kstream.analysis import plots

        fig = plots.live_view(state.predictions, state.windows, state.dead_lettered, state.sent,
                              title=f"{self.title}: {state.status_line()}", prequential=state.prequential)
        try:
            if self.handle is not None:
                self.handle.update(fig)
        finally:
            plt.close(fig)
        self.updates += 1
