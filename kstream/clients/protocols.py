"""What kstream needs of a Kafka client backend: the :class:`Producer`, :class:`Consumer` and :class:`Backend`
protocols.

The generator, the detector, its read-ahead and pool, and the jobs of :mod:`kstream.app` are
written against these protocols, never against one client library's classes; both backends
(:mod:`kstream.clients.kafka_python` and :mod:`kstream.clients.confluent`) satisfy them, which mypy
checks statically (tests/test_clients_protocols.py) and ``isinstance`` checks at run time (the
protocols are ``runtime_checkable``: that checks the names are there, not their signatures).

>>> from kstream.clients import backend
>>> kafka = backend("kafka-python")
>>> isinstance(kafka.Producer("127.0.0.1:9"), Producer), isinstance(kafka, Backend)
(True, True)
>>> isinstance(object(), Consumer)
False
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from kstream.clients.records import Assignment, Message, Record

if TYPE_CHECKING:  # typing.Self is 3.11+; mypy always has typing_extensions
    from typing_extensions import Self

__all__ = ["Producer", "Consumer", "Backend"]


@runtime_checkable
class Producer(Protocol):
    """Sends records; :meth:`flush` and :meth:`publish` return only when every record sent is acknowledged.

    A context manager that closes (sending what is queued) on exit; makes no network call before
    :meth:`connect` or the first send.
    """

    @property
    def max_request_size(self) -> int:
        """The largest record (with its headers) this producer may send."""
        ...

    def connect(self) -> Self:
        """Connect now; BrokerError (one line naming the fix) when the cluster is unreachable."""
        ...

    def send(self, topic: str, value: bytes, key: bytes | None = None,
             headers: Mapping[str, bytes] | Sequence[tuple[str, bytes]] | None = None) -> None:
        """Queue one record; its acknowledgement is checked by the next :meth:`flush`."""
        ...

    def publish(self, records: Iterable[Record], deadline_s: float = 300) -> None:
        """Send ``records`` and wait until every one is acknowledged."""
        ...

    def flush(self, deadline_s: float = 300) -> None:
        """Wait for every record sent since the last flush (retrying failed ones); BrokerError after ``deadline_s``."""
        ...

    def close(self) -> None:
        """Send what is queued (within a bounded time) and close."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(self, *exc: object) -> None: ...


@runtime_checkable
class Consumer(Protocol):
    """Reads batches of :class:`~kstream.clients.records.Message` from ``topics`` in consumer group ``group``.

    Offsets are committed only by :meth:`commit`, explicitly. A context manager that closes (leaving
    the group, committing nothing) on exit; makes no network call before :meth:`connect` or the first poll.
    """

    topics: list[str]
    group: str
    #: the partitions the group gave this consumer, as its rebalance listener saw them
    assignment: Assignment

    @property
    def rebalances(self) -> int:
        """How many assignments the group gave this consumer so far."""
        ...

    def connect(self) -> Self:
        """Connect now; BrokerError (one line naming the fix) when the cluster is unreachable."""
        ...

    def poll(self, max_records: int, timeout_ms: int) -> list[Message]:
        """Up to ``max_records`` messages, waiting at most ``timeout_ms`` for the first; an unreadable record
        comes back as a placeholder with ``error`` set."""
        ...

    def assigned(self) -> bool:
        """True once the group has given this consumer at least one partition."""
        ...

    def caught_up(self, timeout_ms: int = 3000) -> bool | None:
        """True when every record of the assigned partitions is read, False when some are left, None when unknown."""
        ...

    def commit(self, offsets: Mapping[tuple[str, int], int], deadline_s: float = 300) -> bool:
        """Commit ``{(topic, partition): next offset}``; False when the group took the partitions away."""
        ...

    def topic_id(self, topic: str) -> str:
        """The topic's id in the cluster metadata, as text (empty if unknown)."""
        ...

    def close(self) -> None:
        """Leave the group and close; commits nothing."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(self, *exc: object) -> None: ...


class _ProducerFactory(Protocol):
    def __call__(self, bootstrap: str, options: Mapping[str, Any] | None = None) -> Producer: ...


class _ConsumerFactory(Protocol):
    def __call__(self, bootstrap: str, topics: Iterable[str], group: str,
                 options: Mapping[str, Any] | None = None) -> Consumer: ...


@runtime_checkable
class Backend(Protocol):
    """A client backend module (:func:`kstream.clients.backend` gives one): its clients, admin calls and options.

    Options are named as the backend's library names them (``linger_ms`` or ``linger.ms``);
    :meth:`option_name` turns an environment-style name (``LINGER_MS``) into one.
    """

    @property
    def Producer(self) -> _ProducerFactory: ...  # the module's class: called to make a producer

    @property
    def Consumer(self) -> _ConsumerFactory: ...  # the module's class: called to make a consumer

    def ensure_topics(self, bootstrap: str, topics: Mapping[str, int],
                      options: Mapping[str, Any] | None = None) -> None:
        """Create each topic with the given partition count unless it exists already."""
        ...

    def check_reachable(self, bootstrap: str, options: Mapping[str, Any] | None = None,
                        timeout_ms: int = 5000) -> dict[str, Any]:
        """The cluster's description; BrokerError when it does not answer."""
        ...

    def list_topics(self, bootstrap: str, options: Mapping[str, Any] | None = None) -> dict[str, int]:
        """Every topic of the cluster but Kafka's internal ones, with its partition count."""
        ...

    def delete_topics(self, bootstrap: str, topics: Sequence[str],
                      options: Mapping[str, Any] | None = None) -> list[str]:
        """Delete ``topics``; the ones the cluster deleted (one it does not hold is not an error)."""
        ...

    def topic_max_message_bytes(self, bootstrap: str, topic: str,
                                options: Mapping[str, Any] | None = None) -> int | None:
        """The largest record batch ``topic`` accepts, or None if it cannot be read."""
        ...

    def check_options(self, options: Mapping[str, Any]) -> None:
        """ConfigError for an option the backend does not know or kstream protects."""
        ...

    def option_name(self, text: str) -> str:
        """The backend's name of an option written environment-style (``LINGER_MS``)."""
        ...

    def coerce_option(self, name: str, text: str) -> Any:
        """The value of option ``name`` given as text, as the backend takes it."""
        ...

    def coerce_options(self, options: Mapping[str, str]) -> dict[str, Any]:
        """:meth:`coerce_option` over a mapping of option names to text."""
        ...

    def from_kafka_python(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """Connection options written in kafka-python's names, in this backend's names."""
        ...
