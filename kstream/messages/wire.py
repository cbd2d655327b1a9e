"""The wire format of flow and prediction messages, and batch decoding.

A flow message value is a JSON object ``{feature name: number or null}``; its
key is the record id; header ``kstream-send-ns`` holds the send time in
nanoseconds since the epoch. Non-finite numbers are sent as ``null`` (JSON has
no infinity; the model imputes both the same way).

Decoding works on a whole poll at once: it returns one float matrix in the
model's feature order plus the rows that could not be decoded, with a reason.
Any bytes are safe to decode: a row is decoded or gets a bounded reason, never an
exception. Numbers orjson will not read (beyond the float64 range, and in some
versions integers beyond 64 bits) are read again by the json module, for that record
only, as floats; those beyond the float64 range count as missing, like infinities.
Duplicate keys keep the last value (as both parsers do); NaN and Infinity, which
JSON does not have, are rejected.

>>> value = encode_flow(["a", "b"], np.array([1.5, np.inf]))
>>> value
b'{"a":1.5,"b":null}'
>>> batch = decode_flows([value, b"not json"], ["b", "a"])
>>> batch.matrix.tolist(), batch.rows, batch.errors
([[nan, 1.5]], [0], [(1, "value is not valid JSON: invalid literal, expected 'null' at char 0")])

An optional compact value, the *vector*, is the features as little-endian float64 numbers in the
model's feature order, with header ``kstream-schema`` naming that order (:func:`vector_schema`): 8
bytes a feature instead of about 25 of JSON, decoded for a whole poll by one NumPy call. NaN is
missing; infinities count as missing too, as in JSON. A vector of another schema or length is a
bad record, dead-lettered with its reason. JSON stays the default and the documented contract.

>>> names = ["a", "b"]
>>> vec = encode_vector(np.array([1.5, np.inf]))
>>> len(vec), vector_schema(names)
(16, 'f64le-0473ef2dc0d324ab')
>>> schema = vector_schema(names).encode()
>>> batch = decode_flows([vec, vec[:8], value], names, schemas=[schema, schema, None])
>>> batch.matrix.tolist(), batch.rows, batch.errors
([[1.5, nan], [1.5, nan]], [2, 0], [(1, 'vector value is 8 bytes; schema f64le-0473ef2dc0d324ab takes 16 (2 float64)')])
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import orjson  # 6x faster decoding than the json module on flow records (benchmarks/)

from kstream.errors import ConfigError
from kstream.messages.deadletters import MAX_KEY_BYTES, REASON_HEADER, bounded_text, describe

__all__ = [
    "SEND_TIME_HEADER",
    "SCHEMA_HEADER",
    "VALUE_FORMATS",
    "REASON_HEADER",
    "DecodedBatch",
    "encode_flow",
    "encode_vector",
    "vector_schema",
    "check_value_format",
    "decode_flows",
    "encode_prediction",
    "record_id",
    "send_time",
]

SEND_TIME_HEADER = "kstream-send-ns"
SCHEMA_HEADER = "kstream-schema"  # on a vector value: the feature order it holds (vector_schema)
VALUE_FORMATS = ("json", "vector")
_MAX_SEND_NS = 2**63  # send times must fit a signed 64-bit integer (SQLite's INTEGER)
_NUMERIC_TYPES = frozenset({int, float, type(None)})  # bool is its own type: rejected


def encode_flow(names: Sequence[str], values: np.ndarray) -> bytes:
    """JSON bytes for one flow record; NaN and inf become null."""
    return orjson.dumps(dict(zip(names, values.tolist())))  # orjson writes NaN and inf as null


def check_value_format(value_format: str) -> None:
    """ConfigError naming the choices unless ``value_format`` is one of :data:`VALUE_FORMATS`.

    >>> check_value_format("vector")
    >>> check_value_format("avro")
    Traceback (most recent call last):
    ...
    kstream.errors.ConfigError: unknown value format 'avro'; choose one of: json, vector
    """
    if value_format not in VALUE_FORMATS:
        raise ConfigError(f"unknown value format {value_format!r}; choose one of: {', '.join(VALUE_FORMATS)}")


def vector_schema(features: Sequence[str]) -> str:
    """The ``kstream-schema`` header of vectors holding ``features`` in this order, as float64.

    >>> vector_schema(["a", "b"]) == vector_schema(["a", "b"]) != vector_schema(["b", "a"])
    True
    """
    digest = hashlib.sha256(orjson.dumps(list(features))).hexdigest()
    return f"f64le-{digest[:16]}"


def encode_vector(values: np.ndarray) -> bytes:
    """The vector value of one flow record: its features as little-endian float64 bytes.

    >>> encode_vector(np.array([1.0, np.nan])).hex()
    '000000000000f03f000000000000f87f'
    """
    return np.ascontiguousarray(values, dtype="<f8").tobytes()


@dataclass
class DecodedBatch:
    """One poll, decoded: ``matrix[i]`` holds the features of input row ``rows[i]``."""

    matrix: np.ndarray
    rows: list[int]
    errors: list[tuple[int, str]] = field(default_factory=list)
    missing: list[int] = field(default_factory=list)  # per decoded row: features absent or null


def decode_flows(values: Sequence[bytes | None], features: Sequence[str], max_missing: float = 1.0,
                 schemas: Sequence[object] | None = None) -> DecodedBatch:
    """Decode flow values into one float64 matrix in ``features`` order.

    Absent or null features become NaN (the model imputes them). A row is
    rejected, with its reason, when the value is not a JSON object, when a
    feature holds something that is not a number, or when more than
    ``max_missing`` of the features are missing (by default only when all are).
    ``schemas`` holds each value's ``kstream-schema`` header (None where there is none):
    a value with one is a vector (see the module), decoded with the others of its poll.
    """
    if schemas is not None and any(schemas):
        return _decode_mixed(values, features, max_missing, schemas)
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
            obj = _decode_rejected(raw, err)  # a dict, or why the value cannot be one
            if type(obj) is str:
                errors.append((i, obj))
                continue
        if not isinstance(obj, dict):
            errors.append((i, f"value is {_json_kind(obj)}, not an object of feature -> number"))
            continue
        row = list(map(obj.get, features))
        if not _NUMERIC_TYPES.issuperset(map(type, row)):  # C-speed check; names the culprit only when needed
            bad = next(f for f, v in zip(features, row) if type(v) not in _NUMERIC_TYPES)
            errors.append((i, f"non-numeric value for feature {bounded_text(repr(bad), 200)}: {describe(obj[bad])}"))
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


def _decode_mixed(values: Sequence[bytes | None], features: Sequence[str], max_missing: float,
                  schemas: Sequence[object]) -> DecodedBatch:
    """A poll holding vectors: JSON rows as usual, then the vectors, all in one matrix."""
    n_features = len(features)
    expected = vector_schema(features)
    expected_bytes = expected.encode()
    size = 8 * n_features
    plain = [i for i, schema in enumerate(schemas) if not schema]
    decoded = decode_flows([values[i] for i in plain], features, max_missing)
    rows = [plain[r] for r in decoded.rows]
    errors = [(plain[r], reason) for r, reason in decoded.errors]
    vectors: list[int] = []
    chunks: list[bytes] = []  # the values of ``vectors``
    for i, schema in enumerate(schemas):
        if not schema:
            continue
        raw = values[i]
        if schema != expected_bytes and schema != expected:
            errors.append((i, f"vector schema {describe(schema)} is not the model's ({expected}): send JSON, or "
                              f"vectors of the model's {n_features} features in its order"))
        elif type(raw) is not bytes:
            errors.append((i, "value is empty (null message)" if raw is None else
                              f"value is of type {type(raw).__name__}, not bytes"))
        elif len(raw) != size:
            errors.append((i, f"vector value is {len(raw)} bytes; schema {expected} takes {size} "
                              f"({n_features} float64)"))
        else:
            vectors.append(i)
            chunks.append(raw)
    block = np.frombuffer(b"".join(chunks), dtype="<f8").reshape(len(vectors), n_features)
    block = np.where(np.isinf(block), np.nan, block).astype(np.float64)  # a writable copy; inf is missing
    absent = np.isnan(block).sum(axis=1)
    fine = (absent < n_features) & (absent <= max_missing * n_features)
    for i, n in zip(np.asarray(vectors)[~fine], absent[~fine]):
        errors.append((int(i), f"{int(n)} of {n_features} model features missing"))
    matrix = np.vstack([decoded.matrix, block[fine]])
    rows += [i for i, ok in zip(vectors, fine) if ok]
    return DecodedBatch(matrix, rows, errors, decoded.missing + absent[fine].tolist())


_JSON_KINDS = {list: "array", str: "string", int: "number", float: "number", bool: "boolean", dict: "object"}


def _json_kind(obj: object) -> str:
    """``a JSON array``, ``JSON null``...: what a decoded value is, for reasons."""
    if obj is None:
        return "JSON null"
    noun = _JSON_KINDS.get(type(obj))
    return f"a JSON {noun}" if noun else f"a {type(obj).__name__}"


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


def _decode_rejected(raw: object, err: orjson.JSONDecodeError) -> dict | str:
    """The object in a value orjson rejected, if it is one the json module reads, else the reason.

    Only number errors are read again (orjson rejects values beyond the float64 range and,
    in some versions, integers beyond 64 bits); integers come back as floats and values beyond
    the float64 range as None (missing), so every number fits the float64 matrix.
    """
    if not isinstance(raw, (bytes, bytearray, memoryview, str)):
        return f"value is of type {type(raw).__name__}, not bytes"
    if len(raw) == 0:
        return "value is empty (0 bytes)"
    message = getattr(err, "msg", None) or str(err)
    pos = getattr(err, "pos", None)
    reason = f"value is not valid JSON: {bounded_text(message, 200)}" + (f" at char {pos}" if pos is not None else "")
    if "number" not in message.lower() and "integer" not in message.lower():
        return reason
    try:
        text = raw if isinstance(raw, str) else bytes(raw).decode("utf-8")
        obj = json.loads(text, parse_int=float, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        return reason
    if type(obj) is not dict:
        return f"value is {_json_kind(obj)}, not an object of feature -> number"
    return {k: None if type(v) is float and not math.isfinite(v) else v for k, v in obj.items()}


def record_id(key: bytes | None, topic: str, partition: int, offset: int) -> str:
    """The id of a prediction: the key as UTF-8 text (invalid bytes replaced), at most 512 bytes of it.

    No key (or an empty one) gives ``<topic>-<partition>-<offset>``. A key whose text is longer
    than :data:`~kstream.messages.deadletters.MAX_KEY_BYTES` keeps its start and ends with
    ``#sha256=`` and the hash of the whole key, so distinct keys keep distinct ids and the
    record is still scored (a long key must not be a way around the detector).

    >>> record_id(b"flow-1", "flows", 0, 7), record_id(None, "flows", 0, 7), record_id(b"\\xffa", "f", 0, 1)
    ('flow-1', 'flows-0-7', '\ufffda')
    >>> long = record_id(b"x" * 10_000, "flows", 0, 7)
    >>> len(long.encode()), long[-72:-64]
    (512, '#sha256=')
    """
    if not key:
        return f"{topic}-{partition}-{offset}"
    if type(key) is not bytes:
        key = bytes(key)
    text = key.decode("utf-8", "replace")
    if len(key) <= MAX_KEY_BYTES // 3:  # a replaced byte takes 3 bytes at most: short keys need no check
        return text
    raw = text.encode("utf-8")
    if len(raw) <= MAX_KEY_BYTES:
        return text
    suffix = "#sha256=" + hashlib.sha256(key).hexdigest()
    return raw[: MAX_KEY_BYTES - len(suffix)].decode("utf-8", "ignore") + suffix


def send_time(raw: object) -> int | None:
    """The send time in a ``kstream-send-ns`` header value: ASCII digits of a value below 2**63, else None.

    >>> send_time(b"1700000000000000000"), send_time(b"-5"), send_time(b"1" * 20), send_time("\u0661".encode())
    (1700000000000000000, None, None, None)
    """
    if type(raw) is not bytes or not 0 < len(raw) <= 19 or not raw.isdigit():  # bytes.isdigit: ASCII only
        return None
    value = int(raw)
    return value if value < _MAX_SEND_NS else None


def encode_prediction(prediction: dict[str, object]) -> bytes:
    """JSON bytes for one prediction row (see :mod:`kstream.stores.sqlite` for the fields)."""
    return orjson.dumps(prediction, default=str)
