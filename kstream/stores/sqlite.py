"""Where predictions go: the results store, SQLite (the default) or MongoDB (:mod:`kstream.stores.mongodb`).

A prediction row holds the record id, the predicted label, its score (the probability of the
predicted class), the model id, the send and prediction times (ns since the epoch) and where the
flow was read: topic, topic id, partition and offset. That source identity is the store's key:
writing the same batch twice, as a restarted detector does with records whose offsets it had not
committed, leaves exactly one row per record, the one first written; a topic deleted and created again
under the same name has a new topic id, so its records never overwrite the earlier ones. Both
stores have the interface of :class:`Store`; :func:`open_store` opens the one the settings name.

A write is durable when it returns. A store that cannot be written (locked by another
connection, a full disk) is retried with backoff until the deadline, then
:class:`~kstream.errors.StoreError`: the detector commits nothing it could not store.

>>> import tempfile, os
>>> store = SQLiteStore(os.path.join(tempfile.mkdtemp(), "p.sqlite"))
>>> row = dict(record_id="r1", predicted_label="attack", score=0.9, model_id="m", send_ns=1,
...            predicted_ns=2, topic="flows", topic_id="a1", partition=0, offset=7)
>>> store.write([row]); store.write([row]); store.write([{**row, "topic_id": "b2"}]); store.count()
2
>>> store.close()
"""

from __future__ import annotations

import json
import logging
import operator
import sqlite3
import threading
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from kstream.drift.monitor import WINDOW_FIELDS, decode_windows
from kstream.errors import ConfigError, StoreError
from kstream.paths import RUNS_DIR
from kstream.retry import retry
from kstream.stores.protocol import (
    DRIFT_TABLE,
    IDENTITY,
    JOIN_FIELDS,
    LABEL_FIELDS,
    LABELS_TABLE,
    PREDICTION_FIELDS,
    PREQUENTIAL_FIELDS,
    PREQUENTIAL_JSON_FIELDS,
    PREQUENTIAL_TABLE,
    RETRAIN_FIELDS,
    RETRAINS_TABLE,
    LabelState,
    Store,
    check_table_name,
    decode_prequential,
)

__all__ = ["PREDICTION_FIELDS", "STORES", "Store", "SQLiteStore", "open_store", "store_kind", "sqlite_path_from_url",
           "check_table_name"]  # the first, Store and check_table_name re-exported from kstream.stores.protocol

log = logging.getLogger(__name__)

STORES = ("sqlite", "mongodb")
_ROW_VALUES = operator.itemgetter(*PREDICTION_FIELDS)


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
    """Predictions in one SQLite table, upserted on their source identity.

    ``deadline_s`` bounds how long :meth:`write` retries a store it cannot write.
    """

    def __init__(self, path: str | Path, table: str = "predictions", deadline_s: float = 300) -> None:
        self.path = Path(path)
        self.table = check_table_name(table)
        self.deadline_s = deadline_s
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # a writer waits for a lock at most 10 s per attempt, and never past the deadline
            self._db = sqlite3.connect(self.path, timeout=min(10.0, deadline_s), check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(
                f"""CREATE TABLE IF NOT EXISTS {self.table} (
                    record_id TEXT NOT NULL, predicted_label TEXT NOT NULL, score REAL,
                    model_id TEXT NOT NULL, send_ns INTEGER, predicted_ns INTEGER NOT NULL,
                    topic TEXT NOT NULL, topic_id TEXT NOT NULL DEFAULT '', partition INTEGER NOT NULL,
                    "offset" INTEGER NOT NULL,
                    PRIMARY KEY (topic, topic_id, partition, "offset"))"""
            )
            self._db.execute(
                f"""CREATE TABLE IF NOT EXISTS {DRIFT_TABLE} (
                    monitor TEXT NOT NULL, "window" INTEGER NOT NULL, topic TEXT NOT NULL, model_id TEXT NOT NULL,
                    start_ns INTEGER, end_ns INTEGER, records INTEGER NOT NULL, judged INTEGER NOT NULL,
                    drifted INTEGER NOT NULL, share_drifting REAL, max_psi REAL, score_psi REAL, attack_rate REAL,
                    mean_score REAL, drifting TEXT, psi_top TEXT, changes TEXT, reasons TEXT, alerts TEXT,
                    PRIMARY KEY (monitor, "window"))"""
            )
            self._db.execute(
                f"""CREATE TABLE IF NOT EXISTS {LABELS_TABLE} (
                    topic TEXT NOT NULL, record_id TEXT NOT NULL, true_label TEXT NOT NULL, label_ns INTEGER,
                    received_ns INTEGER NOT NULL, label_topic TEXT NOT NULL, label_topic_id TEXT NOT NULL DEFAULT '',
                    label_partition INTEGER NOT NULL, label_offset INTEGER NOT NULL, "window" INTEGER,
                    predicted_label TEXT, model_id TEXT, joined_ns INTEGER, delay_records INTEGER, delay_s REAL,
                    PRIMARY KEY (topic, record_id))"""
            )
            self._db.execute(f'CREATE INDEX IF NOT EXISTS {LABELS_TABLE}_window '
                             f'ON {LABELS_TABLE} (topic, label_partition, "window")')
            self._db.execute(
                f"""CREATE TABLE IF NOT EXISTS {PREQUENTIAL_TABLE} (
                    topic TEXT NOT NULL, partition INTEGER NOT NULL, "window" INTEGER NOT NULL, model_id TEXT NOT NULL,
                    start_ns INTEGER, end_ns INTEGER, records INTEGER NOT NULL, accuracy REAL, macro_f1 REAL,
                    tpr REAL, far REAL, recall TEXT, true_counts TEXT, delay_records_p50 REAL,
                    delay_records_max INTEGER, delay_s_p50 REAL, delay_s_max REAL, pending INTEGER, expired INTEGER,
                    unknown INTEGER, duplicates INTEGER, closed_by TEXT,
                    PRIMARY KEY (topic, partition, "window"))"""
            )
            self._db.execute(
                f"""CREATE TABLE IF NOT EXISTS {RETRAINS_TABLE} (
                    topic TEXT NOT NULL, attempt INTEGER NOT NULL, trigger TEXT, reason TEXT, started_ns INTEGER,
                    seconds REAL, window_records INTEGER, holdout_records INTEGER, training_rows INTEGER,
                    champion_id TEXT, challenger_id TEXT, champion_f1 REAL, challenger_f1 REAL, margin REAL,
                    promoted INTEGER, error TEXT, PRIMARY KEY (topic, attempt))"""
            )
            self._db.commit()
            columns = {row[1] for row in self._db.execute(f"PRAGMA table_info({self.table})")}
        except (OSError, sqlite3.Error) as err:
            raise StoreError(f"cannot open the results store {self.path}: {err}; pass another --store-url") from err
        if "topic_id" not in columns:
            raise StoreError(f"the table {self.table!r} in {self.path} was written by an older kstream (no topic_id); "
                             "pass a new --store-url or another table name")
        self._lock = threading.Lock()  # detectors of one run share the store: one transaction at a time
        cols = ", ".join(f'"{c}"' for c in PREDICTION_FIELDS)
        marks = ", ".join("?" for _ in PREDICTION_FIELDS)
        keys = ", ".join(f'"{c}"' for c in IDENTITY)
        # a redelivered record keeps its first row (and so the latency it was first predicted with)
        self._upsert = f"INSERT INTO {self.table} ({cols}) VALUES ({marks}) ON CONFLICT({keys}) DO NOTHING"

    def __enter__(self) -> SQLiteStore:
        return self

    @property
    def location(self) -> str:
        """Where the rows are, for messages."""
        return f"{self.path} (table {self.table})"

    def __exit__(self, *exc: object) -> None:
        self.close()

    def write(self, rows: Sequence[dict[str, Any]]) -> None:
        """Upsert rows in one transaction (durable when this returns); retried until the deadline."""
        if not rows:
            return
        try:  # the detector's rows have every field: one C call per row
            values = list(map(_ROW_VALUES, rows))
        except KeyError:  # rows written before topic ids were kept
            values = [tuple(r.get(c, "") if c == "topic_id" else r[c] for c in PREDICTION_FIELDS) for r in rows]
        self._retry(self._upsert, values)

    def _retry(self, query: str, values: list[tuple[Any, ...]]) -> None:
        def write() -> None:
            with self._lock, self._db:
                self._db.executemany(query, values)

        def retrying(err: sqlite3.OperationalError, wait_s: float) -> None:
            log.warning("results store %s not writable (%s); retrying in %.1fs", self.path, err, wait_s)

        try:  # locked, full disk, I/O error: may pass
            retry(write, retry_on=sqlite3.OperationalError, deadline=self.deadline_s, on_retry=retrying)
        except sqlite3.OperationalError as err:
            raise StoreError(f"cannot write to the results store {self.path} for {self.deadline_s:.0f}s "
                             f"({err}); nothing was committed: free the disk or the lock and restart") from err

    def write_windows(self, rows: Sequence[dict[str, Any]]) -> None:
        """Store drift windows (rows of :data:`~kstream.drift.monitor.WINDOW_FIELDS`) in one transaction; a window
        stored already keeps its first row. Retried like :meth:`write`."""
        if not rows:
            return
        cols = ", ".join(f'"{c}"' for c in WINDOW_FIELDS)
        query = (f"INSERT INTO {DRIFT_TABLE} ({cols}) VALUES ({', '.join('?' for _ in WINDOW_FIELDS)}) "
                 'ON CONFLICT(monitor, "window") DO NOTHING')
        self._retry(query, [tuple(r[c] for c in WINDOW_FIELDS) for r in rows])

    def windows(self, topic: str | None = None) -> pd.DataFrame:
        """Stored drift windows (of one source topic when given), JSON fields decoded, by end time."""
        args: tuple[str, ...]
        query, args = f"SELECT * FROM {DRIFT_TABLE}", ()
        if topic is not None:
            query, args = query + " WHERE topic = ?", (topic,)
        with self._lock:
            frame = pd.read_sql_query(query, self._db, params=args)
        return decode_windows(frame)

    def write_labels(self, rows: Sequence[dict[str, Any]]) -> None:
        """Store labels (rows of :data:`~kstream.stores.protocol.LABEL_FIELDS`) in one transaction; a label stored
        already for its topic and record id keeps its first row. Retried like :meth:`write`."""
        if not rows:
            return
        cols = ", ".join(f'"{c}"' for c in LABEL_FIELDS)
        query = (f"INSERT INTO {LABELS_TABLE} ({cols}) VALUES ({', '.join('?' for _ in LABEL_FIELDS)}) "
                 "ON CONFLICT(topic, record_id) DO NOTHING")
        self._retry(query, [tuple(r.get(c) for c in LABEL_FIELDS) for r in rows])

    def join_labels(self, rows: Sequence[dict[str, Any]]) -> None:
        """Set the join (:data:`~kstream.stores.protocol.JOIN_FIELDS`) of stored labels that have none yet, by
        topic and record id; a label joined already keeps its first join."""
        if not rows:
            return
        sets = ", ".join(f'"{c}" = ?' for c in JOIN_FIELDS)
        query = f'UPDATE {LABELS_TABLE} SET {sets} WHERE topic = ? AND record_id = ? AND "window" IS NULL'
        self._retry(query, [(*(r[c] for c in JOIN_FIELDS), r["topic"], r["record_id"]) for r in rows])

    def known_labels(self, topic: str, ids: Collection[str]) -> dict[str, str]:
        """Of ``ids``, those with a stored label for ``topic``: record id -> where that label was read
        (``<labels topic>/<partition>/<offset>``)."""
        out: dict[str, str] = {}
        ids = list(dict.fromkeys(ids))
        with self._lock:
            for start in range(0, len(ids), 500):  # SQLite takes at most 999 parameters
                chunk = ids[start:start + 500]
                query = (f"SELECT record_id, label_topic, label_partition, label_offset FROM {LABELS_TABLE} "
                         f"WHERE topic = ? AND record_id IN ({', '.join('?' for _ in chunk)})")
                for rid, ltopic, partition, offset in self._db.execute(query, (topic, *chunk)):
                    out[rid] = f"{ltopic}/{partition}/{offset}"
        return out

    def labels(self, topic: str | None = None) -> pd.DataFrame:
        """Stored labels (of one flows topic when given)."""
        return self._select(LABELS_TABLE, topic)

    def count_labels(self, topic: str | None = None) -> int:
        """Labels stored (for one flows topic when given)."""
        query, args = f"SELECT COUNT(*) FROM {LABELS_TABLE}", ()  # type: tuple[str, tuple[str, ...]]
        if topic is not None:
            query, args = query + " WHERE topic = ?", (topic,)
        with self._lock:
            return int(self._db.execute(query, args).fetchone()[0])

    def label_state(self, topic: str, partitions: Collection[int] | None, since_ns: int, limit: int) -> LabelState:
        """What the join of ``topic`` rebuilds from (:class:`~kstream.stores.protocol.LabelState`), for the
        flows and labels ``partitions`` given (None: all), no older than ``since_ns`` and ``limit`` of each."""
        where = ""  # the partitions clause, " IN (?, ?)", and its values
        args: tuple[Any, ...] = ()
        if partitions is not None:
            parts = sorted(int(p) for p in partitions)
            where, args = f" IN ({', '.join('?' for _ in parts)})", tuple(parts)
        state = LabelState()
        with self._lock:
            p_part = f' AND p.partition{where}' if where else ""
            rows = self._db.execute(
                "SELECT p.record_id, p.predicted_label, p.model_id, p.send_ns, p.predicted_ns, p.partition, "
                f'p."offset" FROM {self.table} p WHERE p.topic = ? AND p.predicted_ns >= ?{p_part} AND NOT EXISTS '
                f"(SELECT 1 FROM {LABELS_TABLE} l WHERE l.topic = p.topic AND l.record_id = p.record_id) "
                "ORDER BY p.predicted_ns DESC LIMIT ?", (topic, since_ns, *args, limit)).fetchall()
            names = ("record_id", "predicted_label", "model_id", "send_ns", "predicted_ns", "partition", "offset")
            state.predictions = [dict(zip(names, r)) for r in reversed(rows)]
            l_part = f" AND label_partition{where}" if where else ""
            cols = ", ".join(f'"{c}"' for c in LABEL_FIELDS)
            rows = self._db.execute(
                f'SELECT {cols} FROM {LABELS_TABLE} WHERE topic = ? AND "window" IS NULL AND received_ns >= ?{l_part} '
                "ORDER BY received_ns DESC LIMIT ?", (topic, since_ns, *args, limit)).fetchall()
            state.labels = [dict(zip(LABEL_FIELDS, r)) for r in reversed(rows)]
            rows = self._db.execute(
                f'SELECT record_id FROM {LABELS_TABLE} WHERE topic = ? AND "window" IS NOT NULL{l_part} '
                "ORDER BY joined_ns DESC LIMIT ?", (topic, *args, limit)).fetchall()
            state.joined = [r[0] for r in reversed(rows)]
            q_part = f" AND partition{where}" if where else ""
            state.closed = {int(p): int(w) for p, w in self._db.execute(
                f'SELECT partition, MAX("window") FROM {PREQUENTIAL_TABLE} WHERE topic = ?{q_part} GROUP BY partition',
                (topic, *args))}
            for row in self._db.execute(
                    f'SELECT {cols} FROM {LABELS_TABLE} l WHERE topic = ?{l_part} AND "window" > COALESCE((SELECT '
                    f'MAX("window") FROM {PREQUENTIAL_TABLE} q WHERE q.topic = l.topic AND q.partition = '
                    'l.label_partition), -1) ORDER BY label_partition, "window", joined_ns, label_offset',
                    (topic, *args)).fetchall():
                label = dict(zip(LABEL_FIELDS, row))
                state.unclosed.setdefault(label["label_partition"], []).append(label)
            state.positions = {int(p): int(o) for p, o in self._db.execute(
                f'SELECT partition, MAX("offset") FROM {self.table} WHERE topic = ?{q_part} GROUP BY partition',
                (topic, *args))}
        return state

    def write_prequential(self, rows: Sequence[dict[str, Any]]) -> None:
        """Store prequential windows (rows of :data:`~kstream.stores.protocol.PREQUENTIAL_FIELDS`) in one
        transaction; a window stored already keeps its first row."""
        if not rows:
            return
        cols = ", ".join(f'"{c}"' for c in PREQUENTIAL_FIELDS)
        query = (f"INSERT INTO {PREQUENTIAL_TABLE} ({cols}) VALUES ({', '.join('?' for _ in PREQUENTIAL_FIELDS)}) "
                 'ON CONFLICT(topic, partition, "window") DO NOTHING')
        self._retry(query, [tuple(json.dumps(r[c]) if c in PREQUENTIAL_JSON_FIELDS else r[c]
                                  for c in PREQUENTIAL_FIELDS) for r in rows])

    def prequential(self, topic: str | None = None) -> pd.DataFrame:
        """Stored prequential windows (of one flows topic when given), maps decoded, by partition and window."""
        return decode_prequential(self._select(PREQUENTIAL_TABLE, topic))

    def write_retrains(self, rows: Sequence[dict[str, Any]]) -> None:
        """Store retraining decisions (rows of :data:`~kstream.stores.protocol.RETRAIN_FIELDS`); an attempt
        stored already keeps its first row."""
        if not rows:
            return
        cols = ", ".join(f'"{c}"' for c in RETRAIN_FIELDS)
        query = (f"INSERT INTO {RETRAINS_TABLE} ({cols}) VALUES ({', '.join('?' for _ in RETRAIN_FIELDS)}) "
                 "ON CONFLICT DO NOTHING")
        self._retry(query, [tuple(r[c] for c in RETRAIN_FIELDS) for r in rows])

    def retrains(self, topic: str | None = None) -> pd.DataFrame:
        """Stored retraining decisions (of one flows topic when given), by attempt."""
        frame = self._select(RETRAINS_TABLE, topic).sort_values(["topic", "attempt"], ignore_index=True)
        frame["promoted"] = frame["promoted"].astype(bool)
        return frame

    def _select(self, table: str, topic: str | None) -> pd.DataFrame:
        args: tuple[str, ...]
        query, args = f"SELECT * FROM {table}", ()
        if topic is not None:
            query, args = query + " WHERE topic = ?", (topic,)
        with self._lock:
            return pd.read_sql_query(query, self._db, params=args)

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
        args: tuple[str, ...]
        query, args = f"SELECT * FROM {self.table}", ()
        if topic is not None:
            query, args = query + " WHERE topic = ?", (topic,)
        with self._lock:
            frame = pd.read_sql_query(query, self._db, params=args)
        frame["latency_ms"] = (frame["predicted_ns"] - frame["send_ns"]) / 1e6
        return frame

    def close(self) -> None:
        self._db.close()


def store_kind(url: str, kind: str = "") -> str:
    """The results store ``url`` names: ``mongodb`` for a ``mongodb://`` or ``mongodb+srv://`` URL,
    ``sqlite`` for a ``sqlite:`` URL, a file path or no URL. ``kind``, when given, must agree.

    >>> store_kind("mongodb+srv://user@cluster.example.org"), store_kind("runs/p.sqlite"), store_kind("")
    ('mongodb', 'sqlite', 'sqlite')
    >>> store_kind("sqlite:///runs/p.sqlite", "mongodb")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    kstream.errors.ConfigError: the results store is set to 'mongodb' ... unset the store (the URL decides) or ...
    """
    if kind and kind not in STORES:
        raise ConfigError(f"unknown results store {kind!r}; choose one of: {', '.join(STORES)}")
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    if scheme in ("mongodb", "mongodb+srv"):
        found = "mongodb"
    elif scheme in ("", "sqlite"):
        if kind == "mongodb" and not url:
            raise ConfigError("the MongoDB results store needs a mongodb:// URL: --store-url, or DB_URL / "
                              "KSTREAM_STORE_URL (e.g. mongodb://user:password@host:27017/?authSource=admin)")
        found = "sqlite"
    else:
        raise ConfigError(f"results store URL scheme {scheme + '://'!r} is not one kstream writes to; use "
                          "sqlite:///path/to/file.sqlite, a file path, or mongodb://host:27017")
    if kind and kind != found:
        example = "a mongodb:// URL" if kind == "mongodb" else "a sqlite:/// URL or a file path"
        raise ConfigError(f"the results store is set to {kind!r} (KSTREAM_STORE / DATABASE) but its URL is a "
                          f"{found} one; unset the store (the URL decides) or give {example}")
    return found


def open_store(kind: str = "", url: str = "", table: str = "predictions", deadline_s: float = 300,
               database: str = "kstream") -> Store:
    """Open the results store ``url`` names (:func:`store_kind`; ``kind``, when given, must agree): SQLite
    at ``url`` (see :func:`sqlite_path_from_url`), or the MongoDB ``database`` at a ``mongodb://`` ``url``;
    ``table`` is the table or collection.

    >>> import tempfile, os
    >>> with open_store(url=os.path.join(tempfile.mkdtemp(), "p.sqlite")) as store:
    ...     store.count()
    0
    """
    if store_kind(url, kind) == "mongodb":
        from kstream.stores.mongodb import MongoStore  # pymongo only when MongoDB is asked for

        return MongoStore(url, database, check_table_name(table), deadline_s=deadline_s)
    return SQLiteStore(sqlite_path_from_url(url), table, deadline_s)
