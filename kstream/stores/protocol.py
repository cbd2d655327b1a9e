"""A prediction row: its fields, its source identity, and the Store every results store implements.

A store also keeps the drift windows of a monitored run (:data:`kstream.drift.monitor.WINDOW_FIELDS`, in the
table or collection :data:`DRIFT_TABLE`), keyed by monitor and window number; and, when the detector joins
labels to its predictions, the labels it accepted (:data:`LABEL_FIELDS` in :data:`LABELS_TABLE`, one per
flows topic and record id: the first stands) and the prequential windows scored on them
(:data:`PREQUENTIAL_FIELDS` in :data:`PREQUENTIAL_TABLE`, keyed by flows topic, labels partition and
window number). A label row carries the join: the window it was counted in (None while it waits for its
prediction), the prediction's class and model, and the delay seen; so the store alone says which labels
were joined, and a restarted detector rebuilds what waits from it (:meth:`Store.label_state`).

The source identity ``(topic, topic_id, partition, offset)`` says where the flow was read; it is
the key of every store and the dedup key of the predictions and dead-letter topics. Table and
collection names are checked here (:func:`check_table_name`) wherever they reach a query.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import pandas as pd

if TYPE_CHECKING:  # typing.Self is 3.11+; mypy always has typing_extensions
    from typing_extensions import Self

from kstream.errors import ConfigError

__all__ = ["PREDICTION_FIELDS", "IDENTITY", "DRIFT_TABLE", "LABELS_TABLE", "LABEL_FIELDS", "JOIN_FIELDS",
           "PREQUENTIAL_TABLE", "PREQUENTIAL_FIELDS", "RETRAINS_TABLE", "RETRAIN_FIELDS", "PREQUENTIAL_JSON_FIELDS",
           "LabelState", "Store", "check_table_name", "decode_prequential"]

#: The table (SQLite) or collection (MongoDB) of drift windows, beside the predictions.
DRIFT_TABLE = "drift"
#: The table or collection of the labels a detector accepted, and of the prequential windows scored on them.
LABELS_TABLE = "labels"
PREQUENTIAL_TABLE = "prequential"
#: The table or collection of the retraining decisions (``--learn retrain``: kstream.learning.retrain).
RETRAINS_TABLE = "retrains"

#: A stored label: the flows ``topic`` and ``record_id`` it labels (its key), its class, when it was published
#: (its ``kstream-label-ns`` header, None without one) and read, where it was read (``label_*``: the labels topic,
#: its id, partition and offset), and the join (:data:`JOIN_FIELDS`, None while it waits for its prediction).
LABEL_FIELDS = ("topic", "record_id", "true_label", "label_ns", "received_ns", "label_topic", "label_topic_id",
                "label_partition", "label_offset", "window", "predicted_label", "model_id", "joined_ns",
                "delay_records", "delay_s")
#: What joining a label sets: the prequential window it counts in (of its labels partition), the prediction's
#: class and model, when it was joined, and the label delay seen, in flows records and in seconds.
JOIN_FIELDS = ("window", "predicted_label", "model_id", "joined_ns", "delay_records", "delay_s")

#: A prequential window: ``records`` labelled records of one labels ``partition`` scored by one model version
#: (``model_id``), with accuracy, macro-F1, TPR and FAR (binary tasks; None otherwise), per-class ``recall`` and
#: the true classes' counts, the label delay seen (p50 and max, in flows records and in seconds), predictions
#: still waiting for a label when it closed (``pending``), what expired and the duplicate labels since the
#: window before, and why it closed (``records``, ``model``: another model version's prediction came, ``stop``).
PREQUENTIAL_FIELDS = ("topic", "partition", "window", "model_id", "start_ns", "end_ns", "records", "accuracy",
                      "macro_f1", "tpr", "far", "recall", "true_counts", "delay_records_p50", "delay_records_max",
                      "delay_s_p50", "delay_s_max", "pending", "expired", "unknown", "duplicates", "closed_by")
#: A retraining decision: the ``attempt`` (numbered per flows topic), what triggered it and why, when it started and
#: how long it took, the labelled flows the challenger trained on (``window_records``, plus ``training_rows`` of the
#: original training split when asked) and those both models were scored on (``holdout_records``), both models' ids
#: and macro-F1 there, the ``margin`` the challenger had to beat, whether it was promoted, and the error of an
#: attempt that failed (empty otherwise).
RETRAIN_FIELDS = ("topic", "attempt", "trigger", "reason", "started_ns", "seconds", "window_records",
                  "holdout_records", "training_rows", "champion_id", "challenger_id", "champion_f1", "challenger_f1",
                  "margin", "promoted", "error")
#: The prequential fields that hold maps: JSON text in a SQLite row.
PREQUENTIAL_JSON_FIELDS = ("recall", "true_counts")

PREDICTION_FIELDS = (
    "record_id",
    "predicted_label",
    "score",
    "model_id",
    "send_ns",
    "predicted_ns",
    "topic",
    "topic_id",
    "partition",
    "offset",
)
#: The source identity of a row: the store's key, and the dedup key of the predictions topic.
IDENTITY = ("topic", "topic_id", "partition", "offset")

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_SQL_WORDS = frozenset(
    "abort action add after all alter analyze and as asc attach autoincrement before begin between by cascade case "
    "cast check collate column commit conflict constraint create cross current default deferrable deferred delete "
    "desc detach distinct drop each else end escape except exclusive exists explain fail for foreign from full glob "
    "group having if ignore immediate in index indexed initially inner insert instead intersect into is isnull join "
    "key left like limit match natural no not notnull null of offset on or order outer plan pragma primary query "
    "raise recursive references regexp reindex release rename replace restrict right rollback row rows savepoint "
    "select set table temp temporary then to transaction trigger union unique update using vacuum values view "
    "virtual when where with without".split()
)


@dataclass
class LabelState:
    """What a store holds of a flows topic's join, for the partitions a detector reads (:meth:`Store.label_state`).

    ``predictions``: the newest stored predictions no label has reached (fields ``record_id``, ``predicted_label``,
    ``model_id``, ``send_ns``, ``predicted_ns``, ``partition``, ``offset``); ``labels``: the newest stored labels
    not joined (rows of :data:`LABEL_FIELDS`); ``joined``: the ids of the newest joined labels; ``closed``: the
    last window stored per labels partition; ``unclosed``: per labels partition, the joined labels counted in a
    window after it (rows of :data:`LABEL_FIELDS`); ``positions``: the highest flows offset predicted per
    partition.
    """

    predictions: list[dict[str, Any]] = field(default_factory=list)
    labels: list[dict[str, Any]] = field(default_factory=list)
    joined: list[str] = field(default_factory=list)
    closed: dict[int, int] = field(default_factory=dict)
    unclosed: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    positions: dict[int, int] = field(default_factory=dict)


class Store(Protocol):
    """What every results store offers (SQLite and MongoDB); a context manager that closes itself."""

    @property
    def location(self) -> str: ...  # where the rows are, for messages (password masked)

    def write(self, rows: Sequence[dict[str, Any]]) -> None: ...  # durable when it returns, idempotent

    def count(self, topic: str | None = None) -> int: ...

    def frame(self, topic: str | None = None) -> pd.DataFrame: ...  # the rows, with latency_ms

    def write_windows(self, rows: Sequence[dict[str, Any]]) -> None: ...  # drift windows, idempotent

    def windows(self, topic: str | None = None) -> pd.DataFrame: ...  # drift windows, JSON fields decoded

    def write_labels(self, rows: Sequence[dict[str, Any]]) -> None: ...  # labels, idempotent: the first stands

    def join_labels(self, rows: Sequence[dict[str, Any]]) -> None: ...  # set the join of stored unjoined labels

    def known_labels(self, topic: str, ids: Collection[str]) -> dict[str, str]: ...  # id -> "<topic>/<p>/<offset>"

    def labels(self, topic: str | None = None) -> pd.DataFrame: ...  # the stored labels

    def count_labels(self, topic: str | None = None) -> int: ...

    def label_state(self, topic: str, partitions: Collection[int] | None, since_ns: int,
                    limit: int) -> LabelState: ...  # what a restarted join rebuilds from (see LabelState)

    def write_prequential(self, rows: Sequence[dict[str, Any]]) -> None: ...  # windows, idempotent

    def prequential(self, topic: str | None = None) -> pd.DataFrame: ...  # prequential windows, maps decoded

    def write_retrains(self, rows: Sequence[dict[str, Any]]) -> None: ...  # retraining decisions, idempotent

    def retrains(self, topic: str | None = None) -> pd.DataFrame: ...  # retraining decisions, by attempt

    def close(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(self, *exc: object) -> None: ...


def check_table_name(name: str) -> str:
    """``name`` if it is a plain ASCII identifier (letter or _, then letters, digits, _; at most 63) and
    not an SQL keyword; else a ConfigError. Every place that puts a table name into SQL calls this.

    >>> check_table_name("predictions")
    'predictions'
    >>> check_table_name("select")
    Traceback (most recent call last):
    ...
    kstream.errors.ConfigError: results table name 'select' is an SQL keyword; choose another (e.g. predictions)
    """
    if not isinstance(name, str) or not _IDENTIFIER.fullmatch(name):
        raise ConfigError(f"results table name {name!r} must be an ASCII identifier: a letter or '_', then letters, "
                          "digits or '_' (at most 63)")
    if name.lower() in _SQL_WORDS:
        raise ConfigError(f"results table name {name!r} is an SQL keyword; choose another (e.g. predictions)")
    return name


def decode_prequential(frame: pd.DataFrame) -> pd.DataFrame:
    """Stored prequential windows with their maps read back from JSON text, ordered by partition and window.

    >>> row = {**dict.fromkeys(PREQUENTIAL_FIELDS), "partition": 0, "window": 1, "recall": '{"attack": 0.5}'}
    >>> decode_prequential(pd.DataFrame([row]))["recall"].tolist()
    [{'attack': 0.5}]
    """
    out = frame.copy()
    for name in PREQUENTIAL_JSON_FIELDS:
        if name in out:
            out[name] = [json.loads(v) if isinstance(v, str) else v for v in out[name]]
    if len(out):
        out = out.sort_values(["partition", "window"], kind="stable").reset_index(drop=True)
    return out
