"""The labels topic: ground truth that arrives late, keyed by the record id of the flow it labels.

A label message on the labels topic (``flows.labels``, setting ``labels_topic``):

- **key**: the record id, the same bytes as the flow's key on the flows topic (required);
- **value**: the class name as UTF-8 text, exactly as the model's card names its classes
  (``benign`` or ``attack`` for a binary model), at most :data:`MAX_LABEL_BYTES` bytes;
- **header** ``kstream-label-ns`` (:data:`LABEL_TIME_HEADER`, optional): when the label was
  published, in ns since the epoch as decimal ASCII.

:func:`decode_labels` reads a poll's label messages at once: each one becomes a label or gets a
bounded reason (no key, empty, not UTF-8, oversize, a class the model does not name), never an
exception; the detector dead-letters the ones with a reason. A key longer than 512 bytes is cut
and hashed exactly as the flow's key is (:func:`~kstream.messages.wire.record_id`), so the two
still meet.

>>> encode_label("attack"), label_headers(1700000000000000000)
(b'attack', {'kstream-label-ns': b'1700000000000000000'})
>>> batch = decode_labels([b"r1", None, b"r3", b"r4"], [b"attack", b"benign", b"\\xff", b"dos"],
...                       [{LABEL_TIME_HEADER: b"5"}, {}, {}, {}], classes=["attack", "benign"])
>>> batch.labels
[(0, 'r1', 'attack', 5)]
>>> [reason for _, reason in batch.errors]  # doctest: +NORMALIZE_WHITESPACE
['label has no key: its key must be the record id of the flow it labels',
 "label value is not UTF-8 text: 1 bytes b'\\\\xff'",
 "label 'dos' is not a class the model names (attack, benign)"]
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from kstream.messages.deadletters import bounded_text, describe
from kstream.messages.wire import record_id, send_time

__all__ = ["LABEL_TIME_HEADER", "MAX_LABEL_BYTES", "DecodedLabels", "encode_label", "label_headers", "decode_labels"]

LABEL_TIME_HEADER = "kstream-label-ns"
#: The longest label value accepted, in bytes: a class name, never a document.
MAX_LABEL_BYTES = 256


def encode_label(label: str) -> bytes:
    """The value of a label message: the class name as UTF-8."""
    return str(label).encode("utf-8")


def label_headers(now_ns: int) -> dict[str, bytes]:
    """The headers of a label message published at ``now_ns``."""
    return {LABEL_TIME_HEADER: str(int(now_ns)).encode()}


@dataclass
class DecodedLabels:
    """One poll's label messages, read: ``labels`` as ``(input row, record id, class, label_ns or None)``,
    ``errors`` as ``(input row, reason)``; every input row is in exactly one of them."""

    labels: list[tuple[int, str, str, int | None]] = field(default_factory=list)
    errors: list[tuple[int, str]] = field(default_factory=list)


def decode_labels(keys: Sequence[object], values: Sequence[object], headers: Sequence[Mapping[str, object] | None],
                  classes: Iterable[str]) -> DecodedLabels:
    """Read label messages (their keys, values and headers, aligned); ``classes`` are the ones a label may name.

    >>> decode_labels([b"r"], [b"x" * 300], [None], ["x"]).errors
    [(0, 'label value is 300 bytes, more than the 256 a label may have')]
    """
    known = frozenset(classes)
    shown = ", ".join(sorted(known))
    out = DecodedLabels()
    for i, (key, raw) in enumerate(zip(keys, values)):
        reason = ""
        rid = bytes(key) if isinstance(key, (bytes, bytearray, memoryview)) else b""
        if not rid:
            reason = "label has no key: its key must be the record id of the flow it labels"
        elif raw is None:
            reason = "label value is empty (null message)"
        elif type(raw) is not bytes:
            reason = f"label value is of type {type(raw).__name__}, not bytes"
        elif not raw:
            reason = "label value is empty (0 bytes)"
        elif len(raw) > MAX_LABEL_BYTES:
            reason = f"label value is {len(raw)} bytes, more than the {MAX_LABEL_BYTES} a label may have"
        if reason:
            out.errors.append((i, reason))
            continue
        assert isinstance(raw, bytes)  # checked above; for mypy
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            out.errors.append((i, f"label value is not UTF-8 text: {describe(raw)}"))
            continue
        if text not in known:
            out.errors.append((i, f"label {bounded_text(repr(text), 300)} is not a class the model names ({shown})"))
            continue
        head = headers[i] if i < len(headers) else None
        stamp = send_time(head.get(LABEL_TIME_HEADER)) if isinstance(head, Mapping) else None
        out.labels.append((i, record_id(rid, "", 0, 0), text, stamp))
    return out
