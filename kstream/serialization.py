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
([[nan, 1.5]], [0], [(1, 'value is not valid JSON: Expecting value at char 0')])
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

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
_NUMBER = (int, float)


def encode_flow(names: Sequence[str], values: np.ndarray) -> bytes:
    """JSON bytes for one flow record; NaN and inf become null."""
    items = values.tolist()
    body = {n: (v if math.isfinite(v) else None) for n, v in zip(names, items)}
    return json.dumps(body, separators=(",", ":")).encode()


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
            obj = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as err:
            reason = getattr(err, "msg", None) or str(err)
            pos = getattr(err, "pos", None)
            errors.append((i, f"value is not valid JSON: {reason}" + (f" at char {pos}" if pos is not None else "")))
            continue
        if not isinstance(obj, dict):
            errors.append((i, f"value is a JSON {type(obj).__name__}, not an object of feature -> number"))
            continue
        row = [obj.get(f) for f in features]
        bad = [f for f, v in zip(features, row) if v is not None and (isinstance(v, bool) or not isinstance(v, _NUMBER))]
        if bad:
            errors.append((i, f"non-numeric value for feature {bad[0]!r}: {obj[bad[0]]!r}"))
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
    return json.dumps(prediction, separators=(",", ":"), default=str).encode()
