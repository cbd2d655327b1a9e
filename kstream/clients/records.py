"""What goes in and out of Kafka, independent of the client library: :class:`Message` and :class:`Record`.

>>> Record("flows", b"{}").headers
()
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["Message", "Record", "topic_id_text"]


@dataclass(frozen=True)
class Message:
    """One consumed record, independent of the client library.

    ``topic_id`` is the topic's id in the cluster's metadata (empty when the cluster does not say):
    a topic deleted and created again under the same name gets a new one. ``error`` is set on a
    placeholder for a record the client library could not read (its key and value are then
    None): the detector dead-letters it by its topic, partition and offset.
    """

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, bytes]
    topic_id: str = ""
    error: str | None = None


@dataclass(frozen=True)
class Record:
    """One record to publish."""

    topic: str
    value: bytes
    key: bytes | None = None
    headers: Sequence[tuple[str, bytes]] = field(default_factory=tuple)


def topic_id_text(raw: bytes) -> str:
    """A topic id (16 bytes) as Kafka writes it: URL-safe base64 without padding; the same on every backend.

    >>> topic_id_text(bytes(range(16)))
    'AAECAwQFBgcICQoLDA0ODw'
    """
    return base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode("ascii")
