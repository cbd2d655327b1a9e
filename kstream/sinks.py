"""Where predictions go: the results store (SQLite) and the predictions topic.

A prediction row holds the record id, the predicted label, its score (the
probability of the predicted class), the model id, the send and prediction
times (ns since the epoch) and the source topic/partition/offset. The store
upserts on (topic, partition, offset): writing the same batch twice, as a
restarted detector does with records whose offsets it had not committed,
leaves exactly one row per record.

>>> import tempfile, os
>>> store = SQLiteStore(os.path.join(tempfile.mkdtemp(), "p.sqlite"))
>>> row = dict(record_id="r1", predicted_label="attack", score=0.9, model_id="m", send_ns=1,
...            predicted_ns=2, topic="flows", partition=0, offset=7)
>>> store.write([row]); store.write([row]); store.count()
1
>>> store.close()
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from kstream.config import RUNS_DIR
from kstream.errors import ConfigError

__all__ = ["PREDICTION_FIELDS", "SQLiteStore", "open_store", "sqlite_path_from_url"]

log = logging.getLogger(__name__)

PREDICTION_FIELDS = (
    "record_id",
    "predicted_label",
    "score",
    "model_id",
    "send_ns",
    "predicted_ns",
    "topic",
    "partition",
    "offset",
)


def sqlite_path_from_url(url: str) -> Path:
    """The file behind a store URL: ``sqlite:///abs/path``, ``sqlite:///rel/path`` or a plain path.

    >>> str(sqlite_path_from_url("sqlite:////tmp/x.sqlite"))
    '/tmp/x.sqlite'
    >>> sqlite_path_from_url("").name
    'predictions.sqlite'
    """
    if not url:
        return RUNS_DIR / "predictions.sqlite"
    if url.startswith("sqlite:///"):
        return Path(url[len("sqlite:///") :] or "predictions.sqlite")
    if "://" in url:
        raise ConfigError(f"results store URL {url!r} is not sqlite; use sqlite:///path/to/file.sqlite or a file path")
    return Path(url)


class SQLiteStore:
    """Predictions in one SQLite table, upserted on (topic, partition, offset)."""

    def __init__(self, path: str | Path, table: str = "predictions") -> None:
        self.path = Path(path)
        self.table = table
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
        self._lock = threading.Lock()  # detectors of one run share the store: one transaction at a time
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            f"""CREATE TABLE IF NOT EXISTS {table} (
                record_id TEXT NOT NULL, predicted_label TEXT NOT NULL, score REAL,
                model_id TEXT NOT NULL, send_ns INTEGER, predicted_ns INTEGER NOT NULL,
                topic TEXT NOT NULL, partition INTEGER NOT NULL, "offset" INTEGER NOT NULL,
                PRIMARY KEY (topic, partition, "offset"))"""
        )
        self._db.commit()
        cols = ", ".join(f'"{c}"' for c in PREDICTION_FIELDS)
        marks = ", ".join("?" for _ in PREDICTION_FIELDS)
        updates = ", ".join(f'"{c}"=excluded."{c}"' for c in PREDICTION_FIELDS[:6])
        self._upsert = (
            f"INSERT INTO {table} ({cols}) VALUES ({marks}) "
            f'ON CONFLICT(topic, partition, "offset") DO UPDATE SET {updates}'
        )

    def __enter__(self) -> SQLiteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def write(self, rows: Sequence[dict[str, Any]]) -> None:
        """Upsert rows in one transaction (durable when this returns)."""
        if not rows:
            return
        values = [tuple(r[c] for c in PREDICTION_FIELDS) for r in rows]
        with self._lock, self._db:
            self._db.executemany(self._upsert, values)

    def count(self, topic: str | None = None) -> int:
        """Rows stored (for one source topic when ``topic`` is given)."""
        with self._lock:
            if topic is None:
                return int(self._db.execute(f"SELECT COUNT(*) FROM {self.table}").fetchone()[0])
            query = f"SELECT COUNT(*) FROM {self.table} WHERE topic = ?"
            return int(self._db.execute(query, (topic,)).fetchone()[0])

    def frame(self, topic: str | None = None) -> pd.DataFrame:
        """Stored predictions (of one source topic when given: a shared store holds many runs),
        as a data frame with ``latency_ms`` added."""
        query, args = f"SELECT * FROM {self.table}", ()
        if topic is not None:
            query, args = query + " WHERE topic = ?", (topic,)
        with self._lock:
            frame = pd.read_sql_query(query, self._db, params=args)
        frame["latency_ms"] = (frame["predicted_ns"] - frame["send_ns"]) / 1e6
        return frame

    def close(self) -> None:
        self._db.close()


def open_store(kind: str = "sqlite", url: str = "", table: str = "predictions") -> SQLiteStore:
    """Open the results store of ``kind`` named by ``url`` (see :func:`sqlite_path_from_url`)."""
    if kind != "sqlite":
        raise ConfigError(f"unknown results store {kind!r}; choose one of: sqlite")
    return SQLiteStore(sqlite_path_from_url(url), table)
