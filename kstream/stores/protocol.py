"""A prediction row: its fields, its source identity, and the Store every results store implements.

A store also keeps the drift windows of a monitored run (:data:`kstream.drift.monitor.WINDOW_FIELDS`, in the
table or collection :data:`DRIFT_TABLE`), keyed by monitor and window number.

The source identity ``(topic, topic_id, partition, offset)`` says where the flow was read; it is
the key of every store and the dedup key of the predictions and dead-letter topics. Table and
collection names are checked here (:func:`check_table_name`) wherever they reach a query.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

import pandas as pd

if TYPE_CHECKING:  # typing.Self is 3.11+; mypy always has typing_extensions
    from typing_extensions import Self

from kstream.errors import ConfigError

__all__ = ["PREDICTION_FIELDS", "IDENTITY", "DRIFT_TABLE", "Store", "check_table_name"]

#: The table (SQLite) or collection (MongoDB) of drift windows, beside the predictions.
DRIFT_TABLE = "drift"

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


class Store(Protocol):
    """What every results store offers (SQLite and MongoDB); a context manager that closes itself."""

    @property
    def location(self) -> str: ...  # where the rows are, for messages (password masked)

    def write(self, rows: Sequence[dict[str, Any]]) -> None: ...  # durable when it returns, idempotent

    def count(self, topic: str | None = None) -> int: ...

    def frame(self, topic: str | None = None) -> pd.DataFrame: ...  # the rows, with latency_ms

    def write_windows(self, rows: Sequence[dict[str, Any]]) -> None: ...  # drift windows, idempotent

    def windows(self, topic: str | None = None) -> pd.DataFrame: ...  # drift windows, JSON fields decoded

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
