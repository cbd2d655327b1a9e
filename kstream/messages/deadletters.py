"""Dead letters: a record the detector could not score, with why and where from, in a bounded size.

A dead letter carries the original record's key, value and headers, plus header
``kstream-dlq-reason`` (why, at most :data:`MAX_REASON_BYTES`) and header
``kstream-source`` (``<topic>/<partition>/<offset>``). Whatever the record holds, the
dead letter fits the byte budget its :class:`DeadLetterBuilder` was given (the largest
record the DLQ topic and the producer take, see :func:`record_size`):

- the key is cut to :data:`MAX_KEY_BYTES` with its hash as a suffix (:func:`bounded_key`);
- original headers are copied while they fit a quarter of what the budget leaves after
  kstream's own headers; the others are dropped and counted in ``kstream-dropped-headers``;
  a header name that is not valid text is escaped, one that kstream uses is prefixed
  ``original-`` (a record cannot forge its own reason or source), and names stay unique;
- a value that does not fit is cut, and headers ``kstream-original-size`` (decimal) and
  ``kstream-original-sha256`` (hex) describe the whole one.

Reasons and descriptions of values never call ``repr()`` on arbitrary data (a list nested
1,000 deep makes it raise; a 600 KB string would be quoted whole): :func:`describe` names
the type and shows a short escaped prefix.

>>> from kstream.clients import Message
>>> builder = DeadLetterBuilder(budget=4096)
>>> letter = builder.build(Message("flows", 0, 7, b"r7", b"x" * 10_000, {"h": b"1"}), "value is not valid JSON")
>>> len(letter.value) < 4096, letter.size() <= 4096
(True, True)
>>> dict(letter.headers)["kstream-source"], dict(letter.headers)["kstream-original-size"]
(b'flows/0/7', b'10000')
>>> describe([[1]] * 3), describe("x" * 100_000)[:20]
('a JSON array of 3 items', "'xxxxxxxxxxxxxxxxxxx")
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from kstream.errors import ConfigError

__all__ = [
    "REASON_HEADER",
    "SOURCE_HEADER",
    "ORIGINAL_SIZE_HEADER",
    "ORIGINAL_SHA256_HEADER",
    "DROPPED_HEADERS_HEADER",
    "MAX_REASON_BYTES",
    "MAX_KEY_BYTES",
    "DEFAULT_BUDGET",
    "RECORD_OVERHEAD",
    "DeadLetter",
    "DeadLetterBuilder",
    "minimum_budget",
    "record_size",
    "bounded_text",
    "bounded_key",
    "describe",
]

REASON_HEADER = "kstream-dlq-reason"
SOURCE_HEADER = "kstream-source"
ORIGINAL_SIZE_HEADER = "kstream-original-size"
ORIGINAL_SHA256_HEADER = "kstream-original-sha256"
DROPPED_HEADERS_HEADER = "kstream-dropped-headers"
_OWN_HEADERS = frozenset(
    {REASON_HEADER, SOURCE_HEADER, ORIGINAL_SIZE_HEADER, ORIGINAL_SHA256_HEADER, DROPPED_HEADERS_HEADER}
)

MAX_REASON_BYTES = 1024
MAX_KEY_BYTES = 512  # also the longest record id (kstream.detector.loop)
MAX_SOURCE_BYTES = 300  # a Kafka topic name is at most 249 characters, plus /partition/offset
DEFAULT_BUDGET = 1_000_000  # Kafka's default max.message.bytes (1 MiB) less the batch and record overhead
#: What a one-record batch adds to :func:`record_size`: the batch header (61 bytes) and the
#: record's length, attributes, timestamp and offset deltas (21 bytes at most).
RECORD_OVERHEAD = 82
_HASH_SUFFIX = b"#sha256="  # bounded keys end with this and the 64 hex digits of the whole key's hash
_ELLIPSIS = "\u2026"
# C0 controls and DEL, escaped in reasons so a reason is one line in logs and headers
_CONTROLS = {i: f"\\x{i:02x}" for i in (*range(32), 127)}


class _Record(Protocol):
    # read-only (properties), so a frozen Message satisfies it
    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> Any: ...
    @property
    def value(self) -> Any: ...
    @property
    def headers(self) -> Any: ...


@dataclass(frozen=True)
class DeadLetter:
    """One record for the DLQ topic: send ``value`` with ``key`` and ``headers`` as they are.

    ``reason`` (bounded) and ``source`` (``<topic>/<partition>/<offset>``) are also in the
    headers; they are kept here for counting and logging.
    """

    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]
    reason: str
    source: str

    def size(self) -> int:
        """The record's size as :func:`record_size` counts it (what the budget bounds)."""
        return record_size(self.key, self.value, self.headers)


def _varint_size(n: int) -> int:
    """Bytes of the zig-zag varint Kafka writes for the length ``n`` (``n >= -1``)."""
    z = (n << 1) ^ (n >> 63)
    size = 1
    while z >= 0x80:
        z >>= 7
        size += 1
    return size


def _header_size(name: str, value: bytes) -> int:
    raw = len(name.encode("utf-8"))
    return _varint_size(raw) + raw + _varint_size(len(value)) + len(value)


def record_size(key: bytes | None, value: bytes | None, headers: Iterable[tuple[str, bytes]]) -> int:
    """Bytes a record's key, value and headers take in a Kafka record, with their length prefixes.

    This is what Kafka's producer adds to a fixed :data:`RECORD_OVERHEAD` to check a record
    against ``max_request_size``, and what a one-record batch adds to it on the broker.

    >>> record_size(b"k", b"v" * 200, [("h", b"1")])
    209
    """
    headers = list(headers)
    size = _varint_size(len(headers))
    size += 1 if key is None else _varint_size(len(key)) + len(key)
    size += 1 if value is None else _varint_size(len(value)) + len(value)
    return size + sum(_header_size(name, data) for name, data in headers)


def _worst_fixed_part() -> int:
    """The largest key and kstream headers a dead letter can have, without value or original headers."""
    own = [
        (REASON_HEADER, b"r" * MAX_REASON_BYTES),
        (SOURCE_HEADER, b"s" * MAX_SOURCE_BYTES),
        (ORIGINAL_SIZE_HEADER, b"9" * 20),
        (ORIGINAL_SHA256_HEADER, b"0" * 64),
        (DROPPED_HEADERS_HEADER, b"9" * 20),
    ]
    # a header count varint of 5 bytes (up to 2**34 headers) and an empty value
    return record_size(b"k" * MAX_KEY_BYTES, b"", own) - _varint_size(len(own)) + 5


def minimum_budget() -> int:
    """The smallest budget every dead letter fits: a bare one (reason, source, no value) at its largest.

    >>> minimum_budget() < 4096
    True
    """
    return _worst_fixed_part()


def bounded_text(text: str, limit: int = MAX_REASON_BYTES) -> str:
    """``text`` on one line, as valid UTF-8 of at most ``limit`` bytes (cut with an ellipsis).

    >>> bounded_text("line one\\nline two")
    'line one\\\\x0aline two'
    >>> len(bounded_text("\u00e9" * 5000).encode()) <= 1024, bounded_text("ab" * 10, 8)
    (True, 'ababa\u2026')
    """
    if type(text) is not str:
        text = describe(text)
    head = text[: limit + 1]  # every character takes at least one byte: the rest is cut anyway
    raw = head.translate(_CONTROLS).encode("utf-8", "backslashreplace")  # lone surrogates become \udcxx
    if len(raw) <= limit:
        return raw.decode("utf-8")
    mark = _ELLIPSIS if limit >= len(_ELLIPSIS.encode()) else ""
    return raw[: limit - len(mark.encode())].decode("utf-8", "ignore") + mark


def bounded_key(key: bytes) -> bytes:
    """``key`` if it has at most :data:`MAX_KEY_BYTES` bytes, else its start and its sha256 in that many.

    >>> bounded_key(b"r1")
    b'r1'
    >>> long = bounded_key(b"x" * 100_000)
    >>> len(long), long[-72:-64]
    (512, b'#sha256=')
    """
    if len(key) <= MAX_KEY_BYTES:
        return key
    digest = hashlib.sha256(key).hexdigest().encode()
    return key[: MAX_KEY_BYTES - len(_HASH_SUFFIX) - len(digest)] + _HASH_SUFFIX + digest


def describe(value: object, limit: int = 40) -> str:
    """A short description of a decoded value for a reason: its type and an escaped, cut prefix.

    Never calls ``repr()`` on the whole value, so deep or huge values are safe.

    >>> describe(True), describe(None), describe(2.5), describe(10**40)
    ('true', 'null', '2.5', 'an integer of 133 bits')
    >>> describe("lots"), describe("x" * 1000)
    ("'lots'", "'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'\u2026 (1000 characters)")
    >>> describe({"a": [1]}), describe(b"\\xff" * 3)
    ('a JSON object of 1 key', "3 bytes b'\\\\xff\\\\xff\\\\xff'")
    """
    # exact types (``type(value) is``, which also narrows it for mypy): a subclass is described by its own name
    if value is None:
        return "null"
    if type(value) is bool:
        return "true" if value else "false"
    if type(value) is int:
        return str(value) if abs(value) < 10**18 else f"an integer of {value.bit_length()} bits"
    if type(value) is float:
        return repr(value)
    if type(value) is str:
        shown = repr(value[:limit])
        return shown if len(value) <= limit else f"{shown}{_ELLIPSIS} ({len(value)} characters)"
    if type(value) is bytes or type(value) is bytearray:
        shown = repr(bytes(value[:limit]))
        return f"{len(value)} bytes {shown}" + (_ELLIPSIS if len(value) > limit else "")
    if type(value) is list:
        return f"a JSON array of {_count(len(value), 'item')}"
    if type(value) is dict:
        return f"a JSON object of {_count(len(value), 'key')}"
    name = type(value).__name__
    return f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name}"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _as_bytes(data: object) -> bytes | None:
    if data is None or type(data) is bytes:
        return data
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    if isinstance(data, str):
        return data.encode("utf-8", "backslashreplace")
    return describe(data).encode()


def _header_name(name: object) -> str:
    """A header name the producer can encode: invalid text escaped, kstream's own names prefixed."""
    if isinstance(name, str):
        name = str.encode(name, "utf-8", "backslashreplace").decode("utf-8")  # lone surrogates become \udcxx
    elif isinstance(name, (bytes, bytearray, memoryview)):
        name = bytes(name).decode("utf-8", "backslashreplace")
    else:
        name = f"<{type(name).__name__}>"
    return f"original-{name}" if name in _OWN_HEADERS else name


def _header_pairs(headers: object) -> Iterable[object]:
    if isinstance(headers, Mapping):
        return headers.items()
    if headers is None or isinstance(headers, (str, bytes)):
        return ()
    try:
        return list(headers)  # type: ignore[call-overload]
    except TypeError:
        return ()


class DeadLetterBuilder:
    """Builds dead letters that fit ``budget`` bytes (see :func:`record_size`).

    ``budget`` is the largest record the DLQ takes: the smaller of the producer's
    ``max_request_size`` and the DLQ topic's ``max.message.bytes``, less
    :data:`RECORD_OVERHEAD`. A budget below :func:`minimum_budget` is a ConfigError here,
    at start, not on the first bad record.

    >>> DeadLetterBuilder(budget=100)  # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
    ...
    kstream.errors.ConfigError: the DLQ takes records of 100 bytes but a dead letter needs up to 2060; raise the DLQ
        topic's max.message.bytes (and the producer's max_request_size) to at least 2142
    """

    def __init__(self, budget: int = DEFAULT_BUDGET) -> None:
        need = minimum_budget()
        if budget < need:
            raise ConfigError(
                f"the DLQ takes records of {budget} bytes but a dead letter needs up to {need}; raise the DLQ "
                f"topic's max.message.bytes (and the producer's max_request_size) to at least {need + RECORD_OVERHEAD}"
            )
        self.budget = budget
        # what original headers may take: a quarter of what the largest fixed part leaves
        self.header_share = (budget - need) // 4

    def __repr__(self) -> str:
        return f"DeadLetterBuilder(budget={self.budget})"

    def build(self, message: _Record, reason: str) -> DeadLetter:
        """The dead letter of ``message`` (a :class:`kstream.clients.Message`) for ``reason``."""
        reason = bounded_text(reason)
        source = bounded_text(f"{message.topic}/{message.partition}/{message.offset}", MAX_SOURCE_BYTES)
        key = _as_bytes(message.key)
        key = None if key is None else bounded_key(key)
        value = _as_bytes(message.value) or b""
        headers, names, dropped, used = [], set(_OWN_HEADERS), 0, 0
        for pair in _header_pairs(message.headers):
            if not (isinstance(pair, tuple) and len(pair) == 2):
                dropped += 1
                continue
            name, data = _header_name(pair[0]), _as_bytes(pair[1]) or b""
            cost = _header_size(name, data)
            if used + cost > self.header_share or name in names:  # names stay unique once escaped
                dropped += 1
                continue
            headers.append((name, data))
            names.add(name)
            used += cost
        headers += [(REASON_HEADER, reason.encode()), (SOURCE_HEADER, source.encode())]
        if dropped:
            headers.append((DROPPED_HEADERS_HEADER, str(dropped).encode()))
        if record_size(key, value, headers) > self.budget:
            headers += [
                (ORIGINAL_SIZE_HEADER, str(len(value)).encode()),
                (ORIGINAL_SHA256_HEADER, hashlib.sha256(value).hexdigest().encode()),
            ]
            room = self.budget - record_size(key, b"", headers) + 1  # the empty value's 1-byte length is in there
            keep = room - 1
            while keep > 0 and _varint_size(keep) + keep > room:
                keep -= 1
            value = value[: max(keep, 0)]
        return DeadLetter(key, value, headers, reason, source)
