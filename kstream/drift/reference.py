"""The drift reference: how the training data looked, binned, and the PSI that compares live data with it.

At training time :meth:`FeatureReference.fit` records, per feature, quantile bin edges and the
share of training rows in each bin, plus the binned distribution and the mean of the model's
scores and its attack rate on held-out rows. It is plain JSON (:meth:`FeatureReference.to_dict`),
so it lives in the model card (``model.json``). :func:`psi` compares two binned distributions;
:meth:`FeatureReference.feature_psi` compares a batch of rows with the reference.
:class:`kstream.drift.monitor.DriftMonitor` uses both per window of a stream.

>>> rng = np.random.default_rng(0)
>>> ref = FeatureReference.fit(rng.normal(size=(20_000, 2)), ["a", "b"])
>>> psi_now = ref.feature_psi(rng.normal(size=(2_000, 2)))
>>> max(psi_now.values()) < 0.05, ref.feature_psi(rng.normal(1, 1, size=(2_000, 2)))["a"] > 0.2
(True, True)

PSI thresholds. Credit-scoring practice reads a PSI under 0.1 as stable, 0.1 to 0.25 as a
moderate shift and over 0.25 as a major one (bands traced to E. M. Lewis, *An Introduction to
Credit Scoring*, 1992, and used in N. Siddiqi, *Credit Risk Scorecards*, Wiley 2006); 0.2 is a
common single cut-off between the two. These are conventions, not test levels. Without drift the
PSI of a window is close to (1/n + 1/m) times a chi-squared variable with B - 1 degrees of freedom
(n window rows, m reference rows, B bins; B. Yurdakul, *Statistical Properties of Population
Stability Index*, PhD thesis, Western Michigan University, 2018), so its noise floor is about
(B - 1)/n: 0.02 for 500-record windows and 13 bins, 0.12 for 100 records.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kstream.errors import ConfigError, DataError, ModelError

__all__ = ["EPS", "DEFAULT_BENIGN", "psi", "FeatureReference", "bin_index", "bin_counts", "as_matrix", "pad_edges"]

log = logging.getLogger(__name__)

#: Stand-in for an empty bin's proportion (one record in 10,000) so ln(p / q) stays finite. A bin
#: empty on one side and holding p on the other then adds (p - EPS) * ln(p / EPS): 0.005 for
#: p = 0.001, 0.69 for p = 0.1.
EPS = 1e-4
#: Predicted labels that count as benign for the attack rate: the binary task's class and the
#: benign classes of the bundled datasets (CICIDS2017 ``BENIGN``, NSL-KDD ``normal``).
DEFAULT_BENIGN = ("benign", "BENIGN", "normal")
_KIND, _VERSION = "kstream.drift.reference.FeatureReference", 1


def psi(reference: Any, live: Any, eps: float = EPS) -> np.ndarray | float:
    """Population stability index of ``live`` against ``reference``, along the last axis.

    Both are bin counts or proportions (each row is normalised to sum to 1). PSI is
    ``sum((l - r) * ln(l / r))`` over the bins, the symmetric Kullback-Leibler divergence of the
    two binned distributions; a proportion of 0 is replaced by ``eps`` (see :data:`EPS`).

    >>> round(psi([0.5, 0.5], [0.25, 0.75]), 4)   # 0.25 ln 2 + 0.25 ln 1.5
    0.2747
    >>> psi([[10, 10], [1, 3]], [[5, 5], [1, 3]]).tolist()
    [0.0, 0.0]
    """
    r = np.asarray(reference, dtype=np.float64)
    q = np.asarray(live, dtype=np.float64)
    if r.shape != q.shape:
        raise DataError(f"PSI needs bins of one shape, got {r.shape} and {q.shape}; bin both with one reference")
    r = np.maximum(r / np.maximum(r.sum(axis=-1, keepdims=True), 1e-300), eps)
    q = np.maximum(q / np.maximum(q.sum(axis=-1, keepdims=True), 1e-300), eps)
    out = ((q - r) * np.log(q / r)).sum(axis=-1)
    return float(out) if out.ndim == 0 else out


def _cut_points(column: np.ndarray, bins: int) -> list[float]:
    """Edges of one column's bins (right-closed): below the training minimum, quantile bins, above the maximum.

    Each quantile is a value seen in training (inverted CDF); the cut goes halfway between it
    and the next larger value seen, and a value holding at least 1/bins of the rows is also cut
    off from the value below it. So a heavily tied value (most flow counters are 0, most scores of
    a tree ensemble are 1) gets a bin of its own instead of being split or swallowing its
    neighbours, and a live value that differs from a training value by less than half the gap to
    its neighbour (rounding, a slightly different extractor) stays in its bin.
    """
    finite = column[np.isfinite(column)]
    if finite.size == 0:
        return []
    values, counts = np.unique(finite, return_counts=True)
    quantiles = np.quantile(finite, np.linspace(0, 1, bins + 1)[1:-1], method="inverted_cdf")
    at = np.unique(np.searchsorted(values, quantiles))
    above = at[at + 1 < values.size]  # a quantile at the maximum needs no upper cut: the last bin ends there
    spikes = at[(counts[at] * bins >= finite.size) & (at > 0)]
    mids = np.concatenate([(values[above] + values[above + 1]) / 2, (values[spikes - 1] + values[spikes]) / 2])
    cuts = np.concatenate([[np.nextafter(values[0], -np.inf)], mids, [values[-1]]])
    return [float(v) for v in np.unique(cuts)]


def pad_edges(edges: Sequence[Sequence[float]]) -> np.ndarray:
    """The cut points of several columns as one matrix (columns x most cuts), padded with +inf.

    >>> pad_edges([[0.5, 2.0], [1.0]]).tolist()
    [[0.5, 2.0], [1.0, inf]]
    """
    width = max((len(e) for e in edges), default=0)
    out = np.full((len(edges), width), np.inf)
    for j, e in enumerate(edges):
        out[j, : len(e)] = e
    return out


def bin_index(x: np.ndarray, padded: np.ndarray) -> np.ndarray:
    """Bin of each value (rows x columns): the number of edges below it; the last bin holds NaN and +/-inf.

    >>> bin_index(np.array([[0.0, 5.0], [1.0, np.nan]]), pad_edges([[0.5, 2.0], [1.0]])).tolist()
    [[0, 1], [1, 3]]
    """
    missing = padded.shape[1] + 1
    out = np.empty(x.shape, dtype=np.intp)
    for j in range(x.shape[1]):  # one binary search per column over the whole batch, in C
        out[:, j] = np.searchsorted(padded[j], x[:, j], side="left")  # edges strictly below the value
    out[~np.isfinite(x)] = missing
    return out


def bin_counts(idx: np.ndarray, width: int) -> np.ndarray:
    """Per-column histogram (columns x width) of a bin-index matrix, in one bincount.

    >>> bin_counts(np.array([[0, 1], [1, 3]]), 4).tolist()
    [[1, 1, 0, 0], [0, 1, 0, 1]]
    """
    n_cols = idx.shape[1]
    flat = (idx + np.arange(n_cols) * width).ravel()
    return np.bincount(flat, minlength=n_cols * width).reshape(n_cols, width)


def as_matrix(matrix: Any, names: Sequence[str]) -> np.ndarray:
    """A float matrix with ``names`` as columns, in order (a DataFrame is reordered by name).

    >>> import pandas as pd
    >>> as_matrix(pd.DataFrame({"b": [2], "a": [1]}), ["a", "b"]).tolist()
    [[1.0, 2.0]]
    """
    if hasattr(matrix, "columns"):
        missing = [n for n in names if n not in matrix.columns]
        if missing:
            raise DataError(f"{len(missing)} reference features missing from the data (e.g. {missing[0]!r})")
        matrix = matrix[list(names)]
    x = np.asarray(matrix, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != len(names):
        raise DataError(f"expected a matrix of {len(names)} feature columns, got shape {x.shape}")
    return x


@dataclass
class FeatureReference:
    """Binned training distributions: features, scores and the attack rate.

    ``edges[j]`` are the right-closed cut points of feature ``j`` (bins ``(-inf, e0]``,
    ``(e0, e1]``, ..., ``(e_last, inf)``); ``proportions[j]`` the share of training rows per bin,
    then the share of missing values (NaN, +/-inf) as its last entry. The first bin lies below
    the training minimum and the last above the maximum, so values out of the training range
    show up as drift. A constant column gets three bins: below, equal, above.

    >>> x = np.array([[0.0]] * 8 + [[3.0], [7.0]])      # mostly zeros, as flow counters are
    >>> ref = FeatureReference.fit(x, ["bytes"], bins=4)
    >>> ref.edges[0][1:], ref.proportions[0]             # bins: <0, [0, 1.5], (1.5, 7], >7, missing
    ([1.5, 7.0], [0.0, 0.8, 0.2, 0.0, 0.0])
    >>> FeatureReference.from_dict(ref.to_dict()) == ref
    True
    """

    names: list[str]
    edges: list[list[float]]
    proportions: list[list[float]]
    rows: int
    bins: int = 10
    score_edges: list[float] | None = None
    score_proportions: list[float] | None = None
    score_mean: float | None = None
    score_rows: int = 0
    attack_rate: float | None = None
    benign_labels: list[str] = field(default_factory=lambda: list(DEFAULT_BENIGN))
    padded: np.ndarray = field(init=False, repr=False, compare=False)
    binned: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.padded = pad_edges(self.edges)
        width = self.padded.shape[1] + 2
        self.binned = np.zeros((len(self.names), width))
        for j, p in enumerate(self.proportions):
            self.binned[j, : len(p) - 1] = p[:-1]
            self.binned[j, -1] = p[-1]

    @classmethod
    def fit(
        cls,
        matrix: Any,
        names: Sequence[str],
        bins: int = 10,
        *,
        scores: Any = None,
        labels: Any = None,
        benign_labels: Sequence[str] = DEFAULT_BENIGN,
    ) -> FeatureReference:
        """Reference of the training rows ``matrix`` (columns ``names``), ``bins`` quantile bins per feature.

        ``scores`` (probability of the predicted class) and ``labels`` (predicted or true
        classes; anything not in ``benign_labels`` counts as an attack; no ``benign_labels``: no
        attack rate, as on a dataset without a benign class) are optional. Pass the model's
        scores and predictions on held-out rows (kstream's training uses its test split): scores
        of a tree ensemble on its own training rows are near 1 and make live scores look drifted.

        >>> ref = FeatureReference.fit(np.arange(10.0).reshape(-1, 1), ["x"], bins=2,
        ...                            scores=[0.9] * 10, labels=["benign"] * 8 + ["attack"] * 2)
        >>> ref.attack_rate, ref.score_mean, len(ref.proportions[0])
        (0.2, 0.9, 5)
        """
        if int(bins) < 2:
            raise ConfigError(f"bins must be at least 2, got {bins}")
        x = as_matrix(matrix, list(names))
        if not len(x):
            raise DataError("cannot build a drift reference from 0 rows; pass the training matrix")
        edges = [_cut_points(x[:, j], int(bins)) for j in range(x.shape[1])]
        padded = pad_edges(edges)
        counts = bin_counts(bin_index(x, padded), padded.shape[1] + 2) / len(x)
        proportions = [[*counts[j, : len(e) + 1].tolist(), float(counts[j, -1])] for j, e in enumerate(edges)]
        extra: dict[str, Any] = {}
        if scores is not None:
            s = np.asarray(scores, dtype=np.float64).ravel()
            score_edges = _cut_points(s, int(bins))
            score_idx = bin_index(s.reshape(-1, 1), pad_edges([score_edges]))
            sc = bin_counts(score_idx, len(score_edges) + 2)[0] / max(len(s), 1)
            finite = s[np.isfinite(s)]
            extra.update(
                score_edges=score_edges,
                score_proportions=sc.tolist(),
                score_mean=float(finite.mean()) if finite.size else None,
                score_rows=len(s),
            )
        benign = [str(b) for b in benign_labels]
        if labels is not None and benign:
            extra["attack_rate"] = float(np.mean(~np.isin(np.asarray(labels).astype(str), benign)))
        ref = cls(list(map(str, names)), edges, proportions, len(x), int(bins), benign_labels=benign, **extra)
        log.info("drift reference of %d features over %d rows (%d bins)", len(edges), len(x), bins)
        return ref

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (for ``model.json``)."""
        return {
            "kind": _KIND,
            "version": _VERSION,
            "rows": self.rows,
            "bins": self.bins,
            "features": [
                {"name": n, "edges": e, "proportions": p} for n, e, p in zip(self.names, self.edges, self.proportions)
            ],
            "scores": None
            if self.score_edges is None
            else {"edges": self.score_edges, "proportions": self.score_proportions, "mean": self.score_mean,
                  "rows": self.score_rows},
            "attack_rate": self.attack_rate,
            "benign_labels": list(self.benign_labels),
        }  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureReference:
        """Rebuild a reference from :meth:`to_dict`; a malformed one raises :class:`ModelError`."""
        try:
            if data.get("kind") != _KIND or data.get("version") != _VERSION:
                raise ValueError(f"not a version-{_VERSION} drift reference")
            feats = data["features"]
            scores = data.get("scores") or {}
            ref = cls(
                names=[str(f["name"]) for f in feats],
                edges=[[float(v) for v in f["edges"]] for f in feats],
                proportions=[[float(v) for v in f["proportions"]] for f in feats],
                rows=int(data["rows"]),
                bins=int(data["bins"]),
                score_edges=[float(v) for v in scores["edges"]] if scores else None,
                score_proportions=[float(v) for v in scores["proportions"]] if scores else None,
                score_mean=None if scores.get("mean") is None else float(scores["mean"]),
                score_rows=int(scores.get("rows", 0)),
                attack_rate=None if data.get("attack_rate") is None else float(data["attack_rate"]),
                benign_labels=[str(b) for b in data.get("benign_labels", DEFAULT_BENIGN)],
            )
            for name, e, p in zip(ref.names, ref.edges, ref.proportions):
                if len(p) != len(e) + 2 or list(e) != sorted(e) or abs(sum(p) - 1) > 1e-6:
                    raise ValueError(f"feature {name!r} has inconsistent edges and proportions")
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise ModelError(f"bad drift reference in the model card ({err}); retrain the model to rebuild it") from err
        return ref

    def feature_psi(self, matrix: Any, eps: float = EPS) -> dict[str, float]:
        """PSI of every feature of a batch of rows (a matrix or a DataFrame) against the reference.

        >>> x = np.arange(100.0).reshape(-1, 1)
        >>> ref = FeatureReference.fit(x, ["x"], bins=4)
        >>> ref.feature_psi(x), round(ref.feature_psi(x + 25)["x"], 2)  # a quarter moves past the maximum
        ({'x': 0.0}, 3.91)
        """
        counts = bin_counts(bin_index(as_matrix(matrix, self.names), self.padded), self.binned.shape[1])
        return dict(zip(self.names, np.asarray(psi(self.binned, counts, eps)).tolist()))
