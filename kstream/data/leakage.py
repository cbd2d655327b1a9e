"""Identical feature vectors and the future: the splits that keep them out of a held-out score.

Flow datasets repeat themselves: many rows carry exactly the same feature vector (short flows of one
service, scans, retransmitted handshakes), sometimes under different labels. A random split then
puts copies of one vector on both sides, so a "held-out" score partly measures recall of training
rows, and rows whose vector carries two labels cap what any model can score. This module holds the
pure logic; :mod:`kstream.data.datasets` splits with it and :mod:`kstream.modeling.training` and
:mod:`kstream.app` report with it.

- :func:`vector_hashes`: one 64-bit hash per row of a feature frame (NaN-aware, ``-0.0 == 0.0``);
- :func:`split`: the train/test row positions, ``grouped`` (rows of one vector on one side,
  stratified as far as the groups allow), ``random`` (stratified over rows, as kstream split before)
  or ``temporal`` (:func:`temporal_split`: train on the earliest rows by time, hold out the later
  ones, as a detector deployed on a given day meets them);
- :func:`conflicts`, :func:`ceiling`: duplicate and multi-label vectors, and the best accuracy any
  model can reach on a set of rows given them;
- :func:`seen_in`: which rows have a vector that training rows had.

>>> import pandas as pd
>>> x = pd.DataFrame({"a": [1.0, 1.0, 2.0, 3.0, float("nan"), float("nan")], "b": [0.0, -0.0, 5, 6, 7, 7]})
>>> h = vector_hashes(x)
>>> bool(h[0] == h[1]), bool(h[4] == h[5]), bool(h[0] == h[2])
(True, True, False)
>>> c = conflicts(h, ["dos", "benign", "dos", "dos", "web", "web"])
>>> c["duplicate_rows"], c["multi_label_vectors"], c["multi_label_rows"], round(c["ceiling"], 4)
(4, 1, 2, 0.8333)
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from kstream.errors import ConfigError, DataError

__all__ = ["SPLIT_MODES", "DEFAULT_SPLIT_MODE", "check_split_mode", "vector_hashes", "split", "grouped_split",
           "random_split", "temporal_split", "parse_until", "absent_classes", "conflicts", "ceiling", "seen_in",
           "distinct"]

log = logging.getLogger(__name__)

SPLIT_MODES = ("grouped", "random", "temporal")
DEFAULT_SPLIT_MODE = "grouped"  # the split a model trains on unless told otherwise


def check_split_mode(mode: str) -> str:
    """``mode`` if it is a split mode, else a ConfigError naming them.

    >>> check_split_mode("shuffled")
    Traceback (most recent call last):
    ...
    kstream.errors.ConfigError: unknown split mode 'shuffled'; choose one of: grouped, random, temporal
    """
    if mode not in SPLIT_MODES:
        raise ConfigError(f"unknown split mode {mode!r}; choose one of: {', '.join(SPLIT_MODES)}")
    return mode


def vector_hashes(features: pd.DataFrame, columns: Sequence[str] | None = None) -> np.ndarray:
    """One uint64 hash per row of ``features`` (over ``columns`` in that order, absent ones as NaN).

    Two rows hash alike when every value is equal, NaN matching NaN and ``-0.0`` matching ``0.0``;
    the column names do not enter the hash, their order does.

    >>> x = pd.DataFrame({"a": [1.0, 1.0], "b": [2.0, 3.0]})
    >>> h = vector_hashes(x, ["a"])
    >>> h.dtype.name, bool(h[0] == h[1]), bool(vector_hashes(x)[0] == vector_hashes(x)[1])
    ('uint64', True, False)
    """
    frame = features if columns is None else features.reindex(columns=list(columns))
    values = frame.to_numpy(dtype=np.float64, copy=True) + 0.0  # -0.0 + 0.0 is 0.0
    values[np.isnan(values)] = np.nan  # one NaN bit pattern
    hashed = pd.util.hash_pandas_object(pd.DataFrame(values), index=False, categorize=False)
    return hashed.to_numpy(dtype=np.uint64)


def distinct(hashes: np.ndarray) -> np.ndarray:
    """The distinct hashes, sorted: what a model keeps of its training rows (``train-vectors.npy``).

    >>> distinct(np.array([5, 3, 5], dtype=np.uint64)).tolist()
    [3, 5]
    """
    return np.unique(np.asarray(hashes, dtype=np.uint64))


def seen_in(hashes: np.ndarray, training: np.ndarray) -> np.ndarray:
    """Per row of ``hashes``: whether a training row had the same vector (``training``: their hashes).

    >>> seen_in(np.array([1, 2, 3], dtype=np.uint64), np.array([3, 1], dtype=np.uint64)).tolist()
    [True, False, True]
    """
    return np.isin(np.asarray(hashes, dtype=np.uint64), np.asarray(training, dtype=np.uint64))


def conflicts(hashes: np.ndarray, labels: Sequence[Any] | np.ndarray | pd.Series) -> dict[str, Any]:
    """How the rows repeat and contradict each other: counts, shares and the accuracy ceiling.

    ``duplicate_rows`` are rows whose vector another row also has; ``multi_label_vectors`` are
    vectors that carry two labels or more, and ``multi_label_rows`` the rows on them; ``ceiling``
    is :func:`ceiling`.

    >>> c = conflicts(np.array([7, 7, 7, 8], dtype=np.uint64), ["a", "a", "b", "a"])
    >>> {k: c[k] for k in ("rows", "vectors", "duplicate_rows", "multi_label_rows", "ceiling")}
    {'rows': 4, 'vectors': 2, 'duplicate_rows': 3, 'multi_label_rows': 3, 'ceiling': 0.75}
    """
    frame = _frame(hashes, labels)
    n = len(frame)
    if not n:
        return {"rows": 0, "vectors": 0, "duplicate_rows": 0, "duplicate_share": 0.0, "multi_label_vectors": 0,
                "multi_label_rows": 0, "multi_label_share": 0.0, "ceiling": float("nan")}
    sizes = frame.groupby("h").size()
    label_counts = frame.groupby("h")["y"].nunique()
    multi = label_counts[label_counts > 1].index
    duplicate_rows = int(sizes[sizes > 1].sum())
    multi_rows = int(sizes.loc[multi].sum())
    return {
        "rows": n,
        "vectors": int(len(sizes)),
        "duplicate_rows": duplicate_rows,
        "duplicate_share": duplicate_rows / n,
        "multi_label_vectors": int(len(multi)),
        "multi_label_rows": multi_rows,
        "multi_label_share": multi_rows / n,
        "ceiling": _ceiling(frame),
    }


def ceiling(hashes: np.ndarray, labels: Sequence[Any] | np.ndarray | pd.Series) -> float:
    """The best accuracy any model can reach on these rows: a model answers one label per vector,
    so at best, for each distinct vector, the count of its most frequent label; summed over the
    vectors and divided by the rows (NaN without rows).

    >>> ceiling(np.array([1, 1, 1, 2, 2, 3], dtype=np.uint64), ["x", "x", "y", "x", "y", "z"])  # (2 + 1 + 1) / 6
    0.6666666666666666
    """
    frame = _frame(hashes, labels)
    return _ceiling(frame) if len(frame) else float("nan")


def _frame(hashes: np.ndarray, labels: Sequence[Any] | np.ndarray | pd.Series) -> pd.DataFrame:
    hashes = np.asarray(hashes, dtype=np.uint64)
    labels = np.asarray(labels).astype(str)
    if len(hashes) != len(labels):
        raise DataError(f"{len(hashes)} vector hashes for {len(labels)} labels; they must be aligned row by row")
    return pd.DataFrame({"h": hashes, "y": labels})


def _ceiling(frame: pd.DataFrame) -> float:
    best = frame.groupby(["h", "y"]).size().groupby(level="h").max()
    return float(best.sum() / len(frame))


def split(strata: pd.Series | np.ndarray, *, seed: int, test_size: float = 0.2, mode: str = DEFAULT_SPLIT_MODE,
          groups: np.ndarray | None = None, what: str = "the", times: pd.Series | None = None,
          until: str = "") -> tuple[np.ndarray, np.ndarray]:
    """Sorted row positions of the train and test parts: :func:`grouped_split` on ``groups`` (the
    rows' vector hashes), :func:`random_split`, or :func:`temporal_split` on ``times`` (and ``until``);
    ``what`` names the data in errors."""
    check_split_mode(mode)
    if not 0 < test_size < 1:
        raise ConfigError(f"the test share must be between 0 and 1, not {test_size!r}")
    if mode == "temporal":
        if times is None:
            raise ConfigError(f"{what} rows have no flow times, so they cannot be split by time: use --split-mode "
                              "grouped or random, or data with a Timestamp column")
        return temporal_split(times, test_size=test_size, until=until, what=what)
    strata = np.asarray(strata)
    if mode == "random":
        return random_split(strata, seed=seed, test_size=test_size, what=what)
    if groups is None or len(groups) != len(strata):
        raise DataError(f"a grouped split of {what} rows needs one vector hash per row")
    return grouped_split(strata, groups, seed=seed, test_size=test_size)


def parse_until(text: str) -> pd.Timestamp:
    """The time of ``--train-until`` / ``train_until``: an ISO date or datetime (a UTC offset is
    converted to UTC, as flow times are); anything else is a ConfigError showing the form.

    >>> parse_until("2017-07-06"), parse_until("2017-07-06T12:30:00+02:00")
    (Timestamp('2017-07-06 00:00:00'), Timestamp('2017-07-06 10:30:00'))
    >>> parse_until("Thursday")  # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
    ...
    kstream.errors.ConfigError: train_until 'Thursday' is not an ISO date or datetime (e.g. 2017-07-06 or
        2017-07-06T12:00)
    """
    try:
        when = dt.datetime.fromisoformat(str(text).strip())
    except ValueError:
        raise ConfigError(f"train_until {text!r} is not an ISO date or datetime (e.g. 2017-07-06 or "
                          "2017-07-06T12:00)") from None
    if when.tzinfo is not None:
        when = when.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return pd.Timestamp(when)


def temporal_split(times: pd.Series | np.ndarray, *, test_size: float = 0.2, until: str = "",
                   what: str = "the data") -> tuple[np.ndarray, np.ndarray]:
    """Sorted row positions of the train and test parts of a split by time: rows with a time before
    the boundary train, the others are held out.

    The boundary is ``until`` when given (an ISO date or datetime, :func:`parse_until`); else the
    time of the first row of the last ``test_size`` of the rows in time order (by row count), so
    rows of that same time are held out with it and no time falls on both sides. A boundary that
    leaves one side empty (``until`` at or before the first time, or after the last) is a
    ConfigError naming the data's range. Classes are not stratified: a class whose rows all come
    after the boundary is in the test part only (see :func:`absent_classes`).

    >>> t = pd.Series(pd.to_datetime(["2017-07-03", "2017-07-05", "2017-07-04", "2017-07-05", "2017-07-06"]))
    >>> [p.tolist() for p in temporal_split(t, test_size=0.2)]
    [[0, 1, 2, 3], [4]]
    >>> [p.tolist() for p in temporal_split(t, test_size=0.4)]  # the two rows of 07-05 stay together
    [[0, 2], [1, 3, 4]]
    >>> [p.tolist() for p in temporal_split(t, until="2017-07-04T12:00")]
    [[0, 2], [1, 3, 4]]
    >>> temporal_split(t, until="2017-08-01")  # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
    ...
    kstream.errors.ConfigError: --train-until 2017-08-01 leaves no rows to hold out: the data runs from
        2017-07-03T00:00:00 to 2017-07-06T00:00:00; pick a time after the first and at or before the last
    """
    values = pd.Series(times).to_numpy(dtype="datetime64[ns]")
    if len(values) < 2:
        raise DataError(f"{what} has {len(values)} row(s): too few to split by time")
    if np.isnat(values).any():
        raise DataError(f"{what} has rows without a time; a temporal split needs every flow's time")
    first, last = pd.Timestamp(values.min()), pd.Timestamp(values.max())
    span = f"{what} runs from {first.isoformat()} to {last.isoformat()}"
    if until:
        boundary = np.datetime64(parse_until(until), "ns")
        given = f"--train-until {until}"
    else:
        if not 0 < test_size < 1:
            raise ConfigError(f"the test share must be between 0 and 1, not {test_size!r}")
        held = max(1, int(np.floor(test_size * len(values) + 0.5)))
        boundary = np.sort(values, kind="stable")[len(values) - held]
        given = f"holding out the last {test_size:.0%} of the rows by time (from {pd.Timestamp(boundary).isoformat()})"
    train = values < boundary
    if not train.any() or train.all():
        side = "train on" if not train.any() else "hold out"
        fix = ("pick a time after the first and at or before the last" if until
               else "pass --train-until a time after the first")
        raise ConfigError(f"{given} leaves no rows to {side}: {span}; {fix}")
    positions = np.arange(len(values))
    return positions[train], positions[~train]


def absent_classes(test_labels: Sequence[Any] | np.ndarray | pd.Series,
                   train_labels: Sequence[Any] | np.ndarray | pd.Series) -> dict[str, int]:
    """Classes of the held-out rows that no training row has, with their held-out row counts
    (largest first): what a temporal split holds out that training never saw.

    >>> absent_classes(["DDoS", "BENIGN", "DDoS", "Bot"], ["BENIGN", "FTP-Patator"])
    {'DDoS': 2, 'Bot': 1}
    """
    test = pd.Series(np.asarray(test_labels).astype(str))
    known = set(np.asarray(train_labels).astype(str))
    counts = test[~test.isin(known)].value_counts()
    return {str(k): int(v) for k, v in counts.items()}


def random_split(strata: np.ndarray, *, seed: int, test_size: float = 0.2,
                 what: str = "the") -> tuple[np.ndarray, np.ndarray]:
    """The split kstream made before grouping: rows drawn at random, stratified on ``strata``;
    classes of one row stay in training. Rows with the same vector may land on both sides.

    >>> train, test = random_split(np.array(["a"] * 8 + ["b"] * 2 + ["c"]), seed=1, test_size=0.2)
    >>> len(train), len(test), 10 in train  # "c" has one row: training
    (9, 2, True)
    """
    positions = np.arange(len(strata))
    counts = pd.Series(strata).map(pd.Series(strata).value_counts()).to_numpy()
    small, rest = positions[counts < 2], positions[counts >= 2]
    try:
        train, test = train_test_split(rest, test_size=test_size, random_state=seed, stratify=strata[rest])
    except ValueError as err:  # too few rows for the classes
        raise DataError(f"cannot split {len(strata)} {what} rows {test_size:.0%} stratified: {err}") from None
    return np.sort(np.concatenate([train, small])), np.sort(test)


def grouped_split(strata: np.ndarray, groups: np.ndarray, *, seed: int,
                  test_size: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """A split where all rows of one group (one feature vector) fall on the same side.

    Groups of two rows or more go first, in a seeded random order: each counts towards the stratum
    of its most frequent label and goes to test when that keeps the test share of its stratum's
    grouped rows placed so far at or below ``test_size`` (with half a group of slack). Then single
    rows, drawn at random per label, fill each label's test part up to ``test_size`` of its rows
    (rounded), counting the rows of that label the groups already put there. So every class keeps
    its share on both sides as far as its groups allow, and a class too small for a test row
    (under 3 rows at 20%) stays in training. sklearn's ``StratifiedGroupKFold`` reaches the same
    kind of split with a greedy pass over every group and fold, which takes seconds per split on
    the bundled samples; this one takes milliseconds.

    >>> strata = np.array(["a"] * 10 + ["b"] * 10)
    >>> groups = np.array([0, 0, 0, 0, 1, 2, 3, 4, 5, 6] + list(range(7, 17)))
    >>> train, test = grouped_split(strata, groups, seed=3, test_size=0.2)
    >>> len(test), sorted(set(groups[train]) & set(groups[test]))
    (4, [])
    """
    strata = np.asarray(strata).astype(str)
    _, group = np.unique(np.asarray(groups), return_inverse=True)
    n_groups = int(group.max()) + 1 if len(group) else 0
    names, label = np.unique(strata, return_inverse=True)
    counts = np.zeros((n_groups, len(names)), dtype=np.int64)  # rows per group and label
    np.add.at(counts, (group, label), 1)
    size, majority = counts.sum(axis=1), counts.argmax(axis=1)  # ties: the first label in sorted order
    rng = np.random.default_rng(seed)
    order = rng.permutation(n_groups)
    in_test = np.zeros(n_groups, dtype=bool)
    placed, tested = np.zeros(len(names)), np.zeros(len(names))
    for g in order[size[order] > 1]:
        s = majority[g]
        placed[s] += size[g]
        if tested[s] + size[g] / 2 <= test_size * placed[s]:
            in_test[g] = True
            tested[s] += size[g]
    already = counts[in_test].sum(axis=0)  # test rows of each label that came with groups
    singles = order[size[order] == 1]
    for s in range(len(names)):
        mine = singles[majority[singles] == s]
        wanted = int(np.floor(test_size * counts[:, s].sum() + 0.5)) - int(already[s])
        in_test[mine[: max(0, min(wanted, len(mine)))]] = True
    test_rows = in_test[group]
    positions = np.arange(len(strata))
    return positions[~test_rows], positions[test_rows]
