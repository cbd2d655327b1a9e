"""Drift monitoring: windows of a prediction stream compared with the model's training reference.

A :class:`DriftMonitor` cuts the stream a detector classifies into windows (N records or S
seconds) and returns one :class:`WindowResult` per window: the population stability index
(:func:`kstream.drift.reference.psi`) of each feature against the model card's
:class:`~kstream.drift.reference.FeatureReference`, the share of features past a threshold, the
window's attack rate and mean score, the PSI of its scores, and whether a
:class:`~kstream.drift.pagehinkley.PageHinkley` change detector fed with the per-window attack rate and
mean score fired. Everything is computed on whole batches with numpy, never per record.

>>> rng = np.random.default_rng(0)
>>> ref = FeatureReference.fit(rng.normal(size=(20_000, 4)), ["a", "b", "c", "d"])
>>> monitor = DriftMonitor(ref, window_records=1000)
>>> [w.drifted for w in monitor.update(rng.normal(size=(2000, 4)), now_ns=0)]
[False, False]
>>> shifted = monitor.update(rng.normal(0.5, 2.0, size=(1000, 4)), now_ns=1)[0]
>>> shifted.drifted, shifted.share_drifting, shifted.reasons[0]
(True, 1.0, '4 of 4 features have PSI > 0.2 (share 1.00 >= 0.10)')

Windows under ``min_records`` records are reported but not judged: the PSI noise floor is about
(bins - 1) / records (see :mod:`kstream.drift.reference`).
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from kstream.drift.pagehinkley import PageHinkley
from kstream.drift.reference import EPS, FeatureReference, as_matrix, bin_counts, bin_index, pad_edges, psi
from kstream.errors import ConfigError, DataError

__all__ = ["WindowResult", "DriftMonitor", "WINDOW_FIELDS", "JSON_FIELDS", "window_row", "decode_windows"]

#: A drift window as stored (the ``drift`` table or collection) and published (``flows.drift``):
#: which monitor (one per detector process or thread) and window, the source topic, the model, the
#: window's span and records, its verdict and evidence, and the alert rules that fired on it.
WINDOW_FIELDS = ("monitor", "window", "topic", "model_id", "start_ns", "end_ns", "records", "judged", "drifted",
                 "share_drifting", "max_psi", "score_psi", "attack_rate", "mean_score", "drifting", "psi_top",
                 "changes", "reasons", "alerts")
#: The fields that hold lists or maps: JSON text in a store row.
JSON_FIELDS = ("drifting", "psi_top", "changes", "reasons", "alerts")

log = logging.getLogger(__name__)


@dataclass
class WindowResult:
    """One window's verdict and evidence; :meth:`to_dict` is what a store row or topic message holds.

    ``psi_top`` holds the ``top_k`` largest feature PSIs, ``drifting`` every feature over the
    threshold (largest first). ``changes`` maps a watched value (``attack_rate``,
    ``mean_score``) to the direction its change detector fired in. A window with fewer than the
    monitor's ``min_records`` is reported with ``judged`` False and never ``drifted``.
    """

    index: int
    start_ns: int
    end_ns: int
    records: int
    psi_top: dict[str, float]
    drifting: list[str]
    share_drifting: float
    max_psi: float
    attack_rate: float | None
    mean_score: float | None
    score_psi: float | None
    changes: dict[str, str]
    judged: bool
    drifted: bool
    reasons: list[str]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def window_row(window: WindowResult, monitor: str, topic: str, model_id: str,
               alerts: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    """``window`` as a row of :data:`WINDOW_FIELDS`: flat values, JSON text for lists and maps.

    >>> w = WindowResult(3, 10, 20, 500, {"x": 0.3}, ["x"], 1.0, 0.3, 0.9, 0.8, None, {}, True, True, ["drift"])
    >>> row = window_row(w, "m1", "flows", "model@1", ["attack_rate > 0.5"])
    >>> row["window"], row["psi_top"], row["alerts"], row["drifted"]
    (3, '{"x": 0.3}', '["attack_rate > 0.5"]', True)
    """
    data = window.to_dict()
    row = {"monitor": monitor, "window": data.pop("index"), "topic": topic, "model_id": model_id,
           "alerts": json.dumps(list(alerts))}
    row.update({k: json.dumps(v) if k in JSON_FIELDS else v for k, v in data.items()})
    return {k: row[k] for k in WINDOW_FIELDS}


def decode_windows(frame: pd.DataFrame) -> pd.DataFrame:
    """Stored window rows with their JSON fields read back into lists and maps, ordered by end time.

    >>> w = WindowResult(0, 10, 20, 500, {"x": 0.3}, ["x"], 1.0, 0.3, 0.9, 0.8, None, {}, True, True, [])
    >>> decode_windows(pd.DataFrame([window_row(w, "m", "t", "id")]))["drifting"].tolist()
    [['x']]
    """
    out = frame.copy()
    for name in JSON_FIELDS:
        if name in out:
            out[name] = [json.loads(v) if isinstance(v, str) else v for v in out[name]]
    for name in ("judged", "drifted"):
        if name in out:
            out[name] = out[name].astype(bool)
    if "end_ns" in out and len(out):
        out = out.sort_values(["end_ns", "monitor", "window"], kind="mergesort").reset_index(drop=True)
    return out


class DriftMonitor:
    """Cuts a prediction stream into windows and compares each with a :class:`FeatureReference`.

    A window closes at ``window_records`` records or, when the next batch arrives, once
    ``window_seconds`` have passed since its first batch (give one or both). A window drifts
    when at least ``share_threshold`` of the features have PSI over ``psi_threshold``, when the
    PSI of its scores against the reference's scores does, or when the :class:`PageHinkley`
    detector on the per-window attack rate or mean score fires (an event: it fires at the change,
    then watches the new level). The detectors take each window's value with the standard error
    bound 0.5 / sqrt(records), so their false-alarm rate holds for any window size and base rate
    as long as records are independent; bursty live traffic varies more between windows than
    that, so pass detectors with a larger ``threshold`` for it. The score test assumes reference
    scores from rows the model did not learn from (see :meth:`FeatureReference.fit`). Only
    windows of ``min_records`` or more are judged and fed to the change detectors.

    >>> ref = FeatureReference.fit(np.arange(1000.0).reshape(-1, 1), ["x"])
    >>> m = DriftMonitor(ref, window_records=None, window_seconds=60, min_records=10)
    >>> m.update(np.arange(0.0, 1000, 50).reshape(-1, 1), now_ns=0), len(m.update(np.ones((5, 1)), now_ns=61 * 10**9))
    ([], 1)
    >>> m.flush()[0].records
    5
    """

    def __init__(
        self,
        reference: FeatureReference,
        window_records: int | None = 1000,
        window_seconds: float | None = None,
        *,
        psi_threshold: float = 0.2,
        share_threshold: float = 0.1,
        min_records: int = 200,
        top_k: int = 10,
        eps: float = EPS,
        attack_rate_detector: PageHinkley | None = None,
        score_detector: PageHinkley | None = None,
    ) -> None:
        if window_records is None and window_seconds is None:
            raise ConfigError("a drift window needs window_records, window_seconds or both")
        if (window_records is not None and window_records < 1) or (window_seconds is not None and window_seconds <= 0):
            raise ConfigError("window_records must be >= 1 and window_seconds > 0")
        if not 0 < share_threshold <= 1 or psi_threshold <= 0:
            raise ConfigError("share_threshold must be in (0, 1] and psi_threshold > 0")
        self.reference = reference
        self.window_records = window_records
        self.window_ns = None if window_seconds is None else int(window_seconds * 1e9)
        self.psi_threshold, self.share_threshold = float(psi_threshold), float(share_threshold)
        self.min_records, self.top_k, self.eps = int(min_records), int(top_k), float(eps)
        self.detectors = {
            "attack_rate": attack_rate_detector or PageHinkley(),
            "mean_score": score_detector or PageHinkley(),
        }
        self._width = reference.binned.shape[1]
        self._score_padded = None if reference.score_edges is None else pad_edges([reference.score_edges])
        self._index = 0
        self._open()

    def _open(self) -> None:
        self._n = self._labelled = self._attacks = self._scored = 0
        self._score_sum, self._start, self._end = 0.0, 0, 0
        self._counts = np.zeros((len(self.reference.names), self._width), dtype=np.int64)
        self._score_counts = None if self._score_padded is None else np.zeros(self._score_padded.shape[1] + 2, np.int64)

    def update(
        self, matrix: Any, predicted_labels: Any = None, scores: Any = None, now_ns: int | None = None
    ) -> list[WindowResult]:
        """Add a batch (rows x reference features, with its predicted labels and scores); return the windows it closed.

        ``now_ns`` is the batch's time (default: now). An empty batch only closes a window whose
        time is up.
        """
        now = time.time_ns() if now_ns is None else int(now_ns)
        x = as_matrix(matrix, self.reference.names)
        labels = None if predicted_labels is None else np.asarray(predicted_labels).astype(str)
        s = None if scores is None else np.asarray(scores, dtype=np.float64).ravel()
        for what, arr in (("predicted labels", labels), ("scores", s)):
            if arr is not None and len(arr) != len(x):
                raise DataError(f"{len(arr)} {what} for {len(x)} rows; pass one per row")
        out: list[WindowResult] = []
        if self._n and self.window_ns is not None and now - self._start >= self.window_ns:
            out.append(self._close())
        if not len(x):
            return out
        idx = bin_index(x, self.reference.padded)
        attacks = None if labels is None or not self.reference.benign_labels else ~np.isin(
            labels, self.reference.benign_labels)
        s_idx = None if s is None or self._score_padded is None else bin_index(s.reshape(-1, 1), self._score_padded)
        start = 0
        while start < len(x):
            if not self._n:
                self._start = now
            room = len(x) - start if self.window_records is None else self.window_records - self._n
            part = slice(start, start + min(room, len(x) - start))
            self._counts += bin_counts(idx[part], self._width)
            self._n += part.stop - part.start
            if attacks is not None:
                self._labelled += part.stop - part.start
                self._attacks += int(attacks[part].sum())
            if s is not None:
                finite = s[part][np.isfinite(s[part])]
                self._scored += finite.size
                self._score_sum += float(finite.sum())
                if s_idx is not None and self._score_counts is not None:  # both exist or neither
                    self._score_counts += bin_counts(s_idx[part], len(self._score_counts))[0]
            self._end, start = now, part.stop
            if self.window_records is not None and self._n >= self.window_records:
                out.append(self._close())
        return out

    def tick(self, now_ns: int | None = None) -> list[WindowResult]:
        """Close the open window if its time is up (call it when a poll brought nothing)."""
        return self.update(np.empty((0, len(self.reference.names))), now_ns=now_ns)

    def flush(self) -> list[WindowResult]:
        """Close the open window, if it holds any record (at the end of a stream)."""
        return [self._close()] if self._n else []

    def rebase(self, reference: FeatureReference) -> list[WindowResult]:
        """Compare against ``reference`` from now on (a new model's, after a hot-swap); return the window it closed.

        The open window is closed first, so no window mixes two references (or two models). Window
        numbers go on; the change detectors start over, since a new model's scores and attack rate
        settle at levels of their own.

        >>> ref = FeatureReference.fit(np.arange(1000.0).reshape(-1, 1), ["x"])
        >>> m = DriftMonitor(ref, window_records=100, min_records=10)
        >>> _ = m.update(np.ones((30, 1)), now_ns=0)
        >>> [w.records for w in m.rebase(FeatureReference.fit(np.ones((50, 2)), ["x", "y"]))]
        [30]
        >>> [w.index for w in m.update(np.ones((100, 2)), now_ns=1)]
        [1]
        """
        closed = self.flush()
        self.reference = reference
        self._width = reference.binned.shape[1]
        self._score_padded = None if reference.score_edges is None else pad_edges([reference.score_edges])
        for detector in self.detectors.values():
            detector.reset()
        self._open()
        return closed

    def _close(self) -> WindowResult:
        ref, n = self.reference, self._n
        feature_psi = np.asarray(psi(ref.binned, self._counts, self.eps))
        order = np.argsort(-feature_psi, kind="stable")
        over = [int(j) for j in order if feature_psi[j] > self.psi_threshold]
        share = len(over) / max(len(ref.names), 1)
        attack_rate = self._attacks / self._labelled if self._labelled else None
        mean_score = self._score_sum / self._scored if self._scored else None
        score_psi = None
        if self._score_counts is not None and self._scored:
            score_psi = float(psi(ref.score_proportions, self._score_counts, self.eps))
        judged = n >= self.min_records
        changes: dict[str, str] = {}
        reasons: list[str] = []
        if judged:
            if share >= self.share_threshold:
                reasons.append(
                    f"{len(over)} of {len(ref.names)} features have PSI > {self.psi_threshold:g} "
                    f"(share {share:.2f} >= {self.share_threshold:.2f})"
                )
            if score_psi is not None and score_psi > self.psi_threshold:
                reasons.append(f"score PSI {score_psi:.3f} > {self.psi_threshold:g}")
            for name, value in (("attack_rate", attack_rate), ("mean_score", mean_score)):
                # A mean of n values in [0, 1] has a standard error of at most 0.5 / sqrt(n)
                # (Popoviciu's bound on the variance), whatever the rate: the detectors work in
                # those units, so windows of any size and streams of any base rate share one tuning.
                direction = self.detectors[name].update(value, scale=0.5 / math.sqrt(n))
                if direction:
                    changes[name] = direction
                    reasons.append(f"{name} changed {direction} to {value:.4f} (Page-Hinkley)")
        result = WindowResult(
            index=self._index,
            start_ns=self._start,
            end_ns=self._end,
            records=n,
            psi_top={ref.names[j]: float(feature_psi[j]) for j in order[: self.top_k]},
            drifting=[ref.names[j] for j in over],
            share_drifting=share,
            max_psi=float(feature_psi.max()) if len(feature_psi) else 0.0,
            attack_rate=attack_rate,
            mean_score=mean_score,
            score_psi=score_psi,
            changes=changes,
            judged=judged,
            drifted=bool(reasons),
            reasons=reasons,
        )
        if result.drifted:
            log.info("drift in window %d (%d records): %s", result.index, n, "; ".join(reasons))
        self._index += 1
        self._open()
        return result
