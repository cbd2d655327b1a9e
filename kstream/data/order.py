"""The order records are sent in: by time, a seeded shuffle, or as the file has them.

The sources group their rows in ways traffic does not: the bundled CICIDS2017 sample has a file per
class, so its file order sends one class after another, and every drift window of such a stream
holds one class. A stream is sent in a named order instead:

- ``time``: by each flow's time (``Dataset.times``), a stable sort, so rows of one time keep their
  file order. What a deployed detector meets: the days come in order, and attacks arrive as they
  were run. Only for data with times.
- ``shuffle``: a permutation seeded by the run's seed (42 unless one is given), so the same data
  and seed give the same order on every run; classes mix as in a random sample of the traffic.
- ``file``: the rows as the source holds them (only when asked for).

The default is ``time`` where the data has times, else ``shuffle``.

>>> times = pd.Series(pd.to_datetime(["2017-07-05", "2017-07-03", "2017-07-05", "2017-07-04"]))
>>> order_positions(4, "time", times, seed=42).tolist()  # the two rows of 07-05 keep their file order
[1, 3, 0, 2]
>>> order_positions(4, "file", times, seed=42).tolist(), resolve_order("", has_times=False)
([0, 1, 2, 3], 'shuffle')
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from kstream.errors import ConfigError

__all__ = ["ORDERS", "check_order", "resolve_order", "order_positions"]

ORDERS = ("time", "shuffle", "file")


def check_order(order: str) -> str:
    """``order`` if it is one of :data:`ORDERS` (or empty: the default), else a ConfigError naming them.

    >>> check_order("by-class")
    Traceback (most recent call last):
    ...
    kstream.errors.ConfigError: unknown order 'by-class'; choose one of: time, shuffle, file
    """
    if order and order not in ORDERS:
        raise ConfigError(f"unknown order {order!r}; choose one of: {', '.join(ORDERS)}")
    return order


def resolve_order(order: str, has_times: bool, what: str = "the data") -> str:
    """The order to send in: ``order``, or for an empty one ``time`` when the data has times, else
    ``shuffle``; ``time`` for data without times is a ConfigError naming the fix.

    >>> resolve_order("", has_times=True), resolve_order("file", has_times=False)
    ('time', 'file')
    >>> resolve_order("time", has_times=False, what="datasets/nsl-kdd")  # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
    ...
    kstream.errors.ConfigError: datasets/nsl-kdd has no flow times, so it cannot be sent in time order: use
        --order shuffle or file, or data with a Timestamp column
    """
    check_order(order)
    if not order:
        return "time" if has_times else "shuffle"
    if order == "time" and not has_times:
        raise ConfigError(f"{what} has no flow times, so it cannot be sent in time order: use --order shuffle or "
                          "file, or data with a Timestamp column")
    return order


def order_positions(n: int, order: str, times: pd.Series | None, seed: int, what: str = "the data") -> np.ndarray:
    """Row positions of ``n`` rows in ``order`` (resolved by :func:`resolve_order`); ``times`` are
    the rows' times (or None), ``seed`` seeds a shuffle.

    >>> a, b = order_positions(6, "shuffle", None, seed=7), order_positions(6, "shuffle", None, seed=7)
    >>> a.tolist() == b.tolist(), sorted(a.tolist())
    (True, [0, 1, 2, 3, 4, 5])
    """
    order = resolve_order(order, times is not None, what)
    if order == "time":
        assert times is not None  # resolve_order refused time without times
        if len(times) != n:
            raise ConfigError(f"{len(times)} flow times for {n} rows; they must be aligned row by row")
        return np.argsort(times.to_numpy(dtype="datetime64[ns]"), kind="stable")
    if order == "shuffle":
        return np.random.default_rng(seed).permutation(n)
    return np.arange(n)
