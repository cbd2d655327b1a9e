"""A soak: does a detector left running stay bounded? Samples of its processes and its store over hours, and
the slopes that answer it.

- :func:`usage`: one process's resident memory, open file descriptors and threads, read from ``/proc``;
- :func:`store_sample`: a SQLite store's size on disk, rows so far and the latency percentiles of the rows
  written since the last sample;
- :func:`slopes`: per process, how fast memory, descriptors and threads grow per million records after the
  warm-up, with the standard error of each slope (its noise), and how the latency moved;
- :func:`figure`: the samples against records streamed, one panel per quantity.

``benchmarks/soak.py`` (``make soak HOURS=N``) runs the generator and detectors and writes one CSV row per
process per sample (:data:`COLUMNS`).

>>> frame = pd.DataFrame({"process": "detector-1", "records": [0, 1e6, 2e6, 3e6],
...                       "rss_mb": [100.0, 100.0, 102.0, 104.0], "fds": 30, "threads": 12,
...                       "latency_p99_ms": [5.0, 5.0, 6.0, 5.0], "elapsed_s": [0, 60, 120, 180]})
>>> row = slopes(frame, warmup_records=1e6).iloc[0]
>>> float(row["rss_mb_per_million"]), float(row["fds_per_million"])
(2.0, 0.0)
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

__all__ = ["COLUMNS", "Usage", "usage", "StoreSample", "store_sample", "slopes", "grew", "figure"]

#: one CSV row per process per sample
COLUMNS = ["elapsed_s", "process", "pid", "rss_mb", "fds", "threads", "records", "store_mb", "store_bytes_per_record",
           "latency_p50_ms", "latency_p95_ms", "latency_p99_ms"]
#: the quantities whose growth :func:`slopes` fits, per million records
GROWTH = ["rss_mb", "fds", "threads"]


@dataclass(frozen=True)
class Usage:
    """What one process holds: resident memory (MB), open file descriptors, threads."""

    rss_mb: float
    fds: int
    threads: int


def usage(pid: int) -> Usage | None:
    """What process ``pid`` holds now, from ``/proc`` (Linux); None if it is gone.

    >>> u = usage(os.getpid())
    >>> u.rss_mb > 1 and u.fds >= 3 and u.threads >= 1
    True
    >>> usage(2**22 + 1) is None  # above the largest pid Linux hands out
    True
    """
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    rss_kb = int(fields.get("VmRSS", "0 kB").split()[0])  # a zombie has no VmRSS
    return Usage(rss_kb / 1024, fds, int(fields["Threads"]))


@dataclass(frozen=True)
class StoreSample:
    """A SQLite store now: rows so far (its largest rowid), MB on disk (with its write-ahead log) and the
    latency percentiles (ms, send to prediction) of the rows written since ``after_rowid``."""

    rows: int
    store_mb: float
    latency_ms: tuple[float, float, float] | None  # p50, p95, p99; None when no row came


def store_sample(path: Path, after_rowid: int = 0, table: str = "predictions") -> StoreSample:
    """Sample the SQLite store at ``path``: cheap at any size (the rowid is the table's key, so the new rows are
    a range read, and the row count is its largest rowid: predictions are only ever inserted).

    >>> import tempfile
    >>> db = Path(tempfile.mkdtemp()) / "s.sqlite"
    >>> with sqlite3.connect(db) as con:
    ...     _ = con.execute("CREATE TABLE predictions (send_ns INTEGER, predicted_ns INTEGER)")
    ...     _ = con.executemany("INSERT INTO predictions VALUES (?, ?)", [(0, i * 1_000_000) for i in range(1, 101)])
    >>> s = store_sample(db)
    >>> s.rows, s.latency_ms
    (100, (50.5, 95.05, 99.01))
    >>> store_sample(db, after_rowid=100).latency_ms is None
    True
    """
    size = sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30) as con:
        rows = con.execute(f"SELECT max(rowid) FROM {table}").fetchone()[0] or 0
        waits = np.array([r[0] for r in con.execute(
            f"SELECT predicted_ns - send_ns FROM {table} WHERE rowid > ? AND send_ns IS NOT NULL",
            (after_rowid,))], dtype=float) / 1e6
    latency = None
    if len(waits):
        p50, p95, p99 = np.percentile(waits, [50, 95, 99])
        latency = (round(float(p50), 3), round(float(p95), 3), round(float(p99), 3))
    return StoreSample(int(rows), size / 1e6, latency)


def _fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least-squares slope of ``y`` on ``x`` and its standard error (nan with fewer than 3 points)."""
    if len(x) < 3 or np.ptp(x) == 0:
        return float("nan"), float("nan")
    slope, intercept = np.polyfit(x, y, 1)
    residual = y - (slope * x + intercept)
    se = np.sqrt((residual**2).sum() / (len(x) - 2) / ((x - x.mean()) ** 2).sum())
    return float(slope) + 0.0, float(se)  # + 0.0: no "-0.0" in a table


def slopes(frame: pd.DataFrame, warmup_records: float = 0) -> pd.DataFrame:
    """Per process: growth per million records of memory (MB), descriptors and threads, fitted by least
    squares over the samples after ``warmup_records``, each with its standard error (``*_se``: the noise
    of the slope; a slope within about two of them is flat within noise); the samples fitted, the records they
    span, and the p99 latency's median over the first and the last quarter of them (``latency_p99_first_ms``,
    ``latency_p99_last_ms``: a creeping latency shows as a last well above the first).

    >>> f = pd.DataFrame({"process": "d", "records": [0, 1e6, 2e6], "rss_mb": [1.0, 2.0, 3.0], "fds": 9,
    ...                   "threads": 3, "latency_p99_ms": 4.0, "elapsed_s": [0, 1, 2]})
    >>> r = slopes(f).iloc[0]
    >>> float(r["rss_mb_per_million"]), float(r["rss_mb_per_million_se"]), int(r["samples"])
    (1.0, 0.0, 3)
    """
    out = []
    for process, rows in frame.groupby("process", sort=False):
        kept = rows[rows["records"] >= warmup_records].sort_values("elapsed_s")
        x = kept["records"].to_numpy(dtype=float) / 1e6
        row: dict = {"process": process, "samples": len(kept),
                     "records": float(np.ptp(kept["records"])) if len(kept) else 0.0}
        for name in GROWTH:
            slope, se = _fit(x, kept[name].to_numpy(dtype=float))
            row[f"{name}_per_million"], row[f"{name}_per_million_se"] = round(slope, 4) + 0.0, round(se, 4)
        latency = kept["latency_p99_ms"].dropna()
        quarter = max(len(latency) // 4, 1)
        row["latency_p99_first_ms"] = float(latency.iloc[:quarter].median()) if len(latency) else float("nan")
        row["latency_p99_last_ms"] = float(latency.iloc[-quarter:].median()) if len(latency) else float("nan")
        out.append(row)
    return pd.DataFrame(out)


def grew(fitted: pd.DataFrame, max_rss_growth: float, prefix: str = "detector") -> list[str]:
    """The processes named ``prefix...`` whose memory grew faster than ``max_rss_growth`` MB per million records
    (:func:`slopes`); a process with too few samples to fit counts as grown, so a soak too short to tell fails.

    >>> fitted = pd.DataFrame({"process": ["detector-1", "detector-2", "generator"],
    ...                        "rss_mb_per_million": [3.0, 40.0, 90.0]})
    >>> grew(fitted, 20.0)
    ['detector-2']
    >>> grew(pd.DataFrame({"process": ["detector-1"], "rss_mb_per_million": [float("nan")]}), 20.0)
    ['detector-1']
    """
    watched = fitted[fitted["process"].str.startswith(prefix)]
    slope = watched["rss_mb_per_million"]
    return watched.loc[slope.isna() | (slope > max_rss_growth), "process"].tolist()


def figure(frame: pd.DataFrame, title: str = "Soak", warmup_records: float = 0) -> Figure:
    """The samples against records streamed: memory, descriptors and threads per process, the latency
    percentiles and the store's bytes per record (dashed: the end of the warm-up).

    >>> f = pd.DataFrame({"process": ["d", "d"], "records": [1, 2], "rss_mb": [1.0, 1.0], "fds": 9, "threads": 3,
    ...                   "latency_p50_ms": 1.0, "latency_p95_ms": 2.0, "latency_p99_ms": 3.0,
    ...                   "store_bytes_per_record": 200.0})
    >>> len(figure(f).axes)
    5
    """
    fig, axes = plt.subplots(5, 1, figsize=(10, 13), sharex=True, layout="constrained")
    for process, rows in frame.groupby("process", sort=False):
        for ax, name in zip(axes[:3], GROWTH):
            ax.plot(rows["records"] / 1e6, rows[name], marker=".", markersize=3, label=str(process))
    for ax, label in zip(axes[:3], ["resident memory (MB)", "open descriptors", "threads"]):
        ax.set_ylabel(label)
        ax.legend(fontsize=7, loc="upper left")
    first = frame.drop_duplicates("records")
    for p in ("p50", "p95", "p99"):
        axes[3].plot(first["records"] / 1e6, first[f"latency_{p}_ms"], label=p)
    axes[3].set(ylabel="latency per sample (ms)", yscale="log")
    axes[3].legend(fontsize=7, loc="upper left")
    axes[4].plot(first["records"] / 1e6, first["store_bytes_per_record"])
    axes[4].set(ylabel="store bytes per record", xlabel="records stored (millions)")
    if warmup_records and len(frame):
        for ax in axes:
            ax.axvline(warmup_records / 1e6, color="0.5", linestyle="--", linewidth=1)
    fig.suptitle(title)
    return fig
