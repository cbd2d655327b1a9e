"""The wire format of flow and prediction messages, and batch decoding.

A flow message value is a JSON object ``{feature name: number or null}``; its
key is the record id; header ``kstream-send-ns`` holds the send time in
nanoseconds since the epoch. Non-finite numbers are sent as ``null`` (JSON has
no infinity; the model imputes both the same way).

Decoding works on a whole poll at once: it returns one float matrix in the
model's feature order plus the rows that could not be decoded, with a reason.

>>> value = encode_flow(["a", "b"], np.array([1.5, np.inf]))
>>> value
b'{"a":1.5,"b":null}'
>>> batch = decode_flows([value, b"not json"], ["b", "a"])
>>> batch.matrix.tolist(), batch.rows, batch.errors
([[nan, 1.5]], [0], [(1, "value is not valid JSON: invalid literal, expected 'null' at char 0")])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import orjson  # 6x faster decoding than the json module on flow records (benchmarks/)

__all__ = [
    "SEND_TIME_HEADER",
    "REASON_HEADER",
    "DecodedBatch",
    "encode_flow",
    "decode_flows",
    "encode_prediction",
]

SEND_TIME_HEADER = "kstream-send-ns"
REASON_HEADER = "kstream-dlq-reason"
_NUMERIC_TYPES = frozenset({int, float, type(None)})  # bool is its own type: rejected


def encode_flow(names: Sequence[str], values: np.ndarray) -> bytes:
    """JSON bytes for one flow record; NaN and inf become null."""
    return orjson.dumps(dict(zip(names, values.tolist())))  # orjson writes NaN and inf as null


@dataclass
class DecodedBatch:
    """One poll, decoded: ``matrix[i]`` holds the features of input row ``rows[i]``."""

    matrix: np.ndarray
    rows: list[int]
    errors: list[tuple[int, str]] = field(default_factory=list)
    missing: list[int] = field(default_factory=list)  # per decoded row: features absent or null


def decode_flows(values: Sequence[bytes | None], features: Sequence[str], max_missing: float = 1.0) -> DecodedBatch:
    """Decode JSON flow values into one float64 matrix in ``features`` order.

    Absent or null features become NaN (the model imputes them). A row is
    rejected, with its reason, when the value is not a JSON object, when a
    feature holds something that is not a number, or when more than
    ``max_missing`` of the features are missing (by default only when all are).
    """
    n_features = len(features)
    table: list[list[object]] = []
    rows: list[int] = []
    missing: list[int] = []
    errors: list[tuple[int, str]] = []
    for i, raw in enumerate(values):
        if raw is None:
            errors.append((i, "value is empty (null message)"))
            continue
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError as err:
            reason = getattr(err, "msg", None) or str(err)
            pos = getattr(err, "pos", None)
            errors.append((i, f"value is not valid JSON: {reason}" + (f" at char {pos}" if pos is not None else "")))
            continue
        if not isinstance(obj, dict):
            errors.append((i, f"value is a JSON {type(obj).__name__}, not an object of feature -> number"))
            continue
        row = list(map(obj.get, features))
        if not _NUMERIC_TYPES.issuperset(map(type, row)):  # C-speed check; names the culprit only when needed
            bad = next(f for f, v in zip(features, row) if type(v) not in _NUMERIC_TYPES)
            errors.append((i, f"non-numeric value for feature {bad!r}: {obj[bad]!r}"))
            continue
        absent = row.count(None)
        if absent == n_features or absent > max_missing * n_features:
            errors.append((i, f"{absent} of {n_features} model features missing"))
            continue
        table.append(row)
        rows.append(i)
        missing.append(absent)
    matrix = np.array(table, dtype=np.float64) if table else np.empty((0, n_features))
    return DecodedBatch(matrix.reshape(len(rows), n_features), rows, errors, missing)


def encode_prediction(prediction: dict[str, object]) -> bytes:
    """JSON bytes for one prediction row (see :mod:`kstream.sinks` for the fields)."""
    return orjson.dumps(prediction, default=str)
