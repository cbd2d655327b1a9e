"""A thin layer over the Kafka client library (kafka-python today).

The producer, the detector and the tests talk to Kafka only through the
names here: :class:`Message`, :class:`Producer`, :class:`Consumer`,
:func:`ensure_topics` and :func:`check_reachable`. Another client library
(confluent-kafka, say) could be added behind the same names without touching
the detector loop. Clients are context managers, make no network call in
``__init__``, and flush/close on exit. Client errors are re-raised as
:class:`~kstream.errors.BrokerError` or :class:`~kstream.errors.ConfigError`
with a message that says what to do.

>>> Producer("127.0.0.1:9", {})  # no connection is made until first use
Producer(bootstrap='127.0.0.1:9')
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import kafka
import kafka.errors
from kafka.admin import NewTopic

from kstream.errors import BrokerError, ConfigError

__all__ = ["Message", "Producer", "Consumer", "ensure_topics", "check_reachable", "check_options"]

log = logging.getLogger(__name__)

BOOTSTRAP_TIMEOUT_MS = 10_000


@dataclass(frozen=True)
class Message:
    """One consumed record, independent of the client library."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, bytes]


def _unreachable(bootstrap: str, err: Exception) -> BrokerError:
    return BrokerError(
        f"cannot reach Kafka at {bootstrap} ({type(err).__name__}); start one with `kstream broker start` "
        "or pass --bootstrap / KSTREAM_BOOTSTRAP with a reachable cluster"
    )


def check_options(options: Mapping[str, Any]) -> None:
    """Refuse client options that no Kafka client (producer, consumer, admin) knows.

    >>> check_options({"linger_ms": 5, "fetch_max_wait_ms": 100})
    >>> check_options({"lingr_ms": 5})
    Traceback (most recent call last):
    ...
    kstream.errors.ConfigError: bad Kafka client option: 'lingr_ms' is not a kafka-python client option (e.g. linger_ms, security_protocol, sasl_mechanism)
    """
    known = set(kafka.KafkaProducer.DEFAULT_CONFIG) | set(kafka.KafkaConsumer.DEFAULT_CONFIG)
    known |= set(kafka.KafkaAdminClient.DEFAULT_CONFIG)
    for key in options:
        if key not in known:
            raise ConfigError(
                f"bad Kafka client option: {key!r} is not a kafka-python client option "
                "(e.g. linger_ms, security_protocol, sasl_mechanism)"
            )


def _client_options(options: Mapping[str, Any]) -> dict[str, Any]:
    opts = {"bootstrap_timeout_ms": BOOTSTRAP_TIMEOUT_MS}
    opts.update(options)
    return opts


class _Client:
    def __init__(self, bootstrap: str, options: Mapping[str, Any] | None = None) -> None:
        if not bootstrap:
            raise ConfigError("no Kafka bootstrap address; start a broker with `kstream broker start` or pass --bootstrap")
        self.bootstrap = bootstrap
        self.options = dict(options or {})
        self._client: Any = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(bootstrap={self.bootstrap!r})"

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _make(self, factory, *args: Any, **defaults: Any) -> Any:
        check_options(self.options)
        # each client takes the options it knows: linger_ms reaches the producer, fetch_* the consumer
        known = factory.DEFAULT_CONFIG
        options = {k: v for k, v in _client_options(self.options).items() if k in known}
        config = {**defaults, **options, "bootstrap_servers": self.bootstrap}
        try:
            return factory(*args, **config)
        except kafka.errors.KafkaConfigurationError as err:
            raise ConfigError(f"bad Kafka client option: {err}; see the kafka-python docs for valid names") from err
        except (kafka.errors.KafkaTimeoutError, kafka.errors.KafkaConnectionError) as err:
            raise _unreachable(self.bootstrap, err) from err

    def close(self) -> None:
        raise NotImplementedError


class Producer(_Client):
    """Sends records; waits for every send on :meth:`flush` and on exit."""

    def _producer(self) -> kafka.KafkaProducer:
        if self._client is None:
            # Flow values are ~2 KB of JSON: larger batches cut per-request overhead 1.8x here.
            self._client = self._make(kafka.KafkaProducer, acks="all", linger_ms=20, batch_size=262_144)
        return self._client

    def connect(self) -> Producer:
        """Connect now (fail fast with a clear error if the cluster is unreachable)."""
        self._producer()
        return self

    def send(self, topic: str, value: bytes, key: bytes | None = None, headers: Mapping[str, bytes] | None = None):
        """Queue one record; returns a future the client library resolves on acknowledgement."""
        return self._producer().send(topic, value=value, key=key, headers=list((headers or {}).items()))

    def flush(self, timeout_s: float | None = 60) -> None:
        if self._client is not None:
            try:
                self._client.flush(timeout=timeout_s)
            except kafka.errors.KafkaTimeoutError as err:
                raise BrokerError(f"Kafka at {self.bootstrap} did not acknowledge sends within {timeout_s}s") from err

    def close(self) -> None:
        if self._client is not None:
            try:
                self._client.flush()
            finally:
                self._client.close()
                self._client = None


class Consumer(_Client):
    """Reads batches from topics in a consumer group; offsets are committed only on :meth:`commit`."""

    def __init__(
        self,
        bootstrap: str,
        topics: Iterable[str],
        group: str,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(bootstrap, options)
        self.topics = list(topics)
        self.group = group

    def _consumer(self) -> kafka.KafkaConsumer:
        if self._client is None:
            self._client = self._make(
                kafka.KafkaConsumer,
                *self.topics,
                group_id=self.group,
                enable_auto_commit=False,
                # a crashed detector's partitions move to a live one after 10 s, not the client's 45 s
                session_timeout_ms=10_000,
                heartbeat_interval_ms=3_000,
                auto_offset_reset="earliest",  # a new group reads the topic from its start
            )
        return self._client

    def connect(self) -> Consumer:
        self._consumer()
        return self

    def poll(self, max_records: int, timeout_ms: int) -> list[Message]:
        """Up to ``max_records`` messages, waiting at most ``timeout_ms`` for the first."""
        batches = self._consumer().poll(timeout_ms=timeout_ms, max_records=max_records)
        return [
            Message(r.topic, r.partition, r.offset, r.key, r.value, dict(r.headers or ()))
            for records in batches.values()
            for r in records
        ]

    def assigned(self) -> bool:
        """True once the group has given this consumer at least one partition."""
        return bool(self._consumer().assignment())

    def commit(self) -> None:
        """Commit the position after every message returned by :meth:`poll` so far."""
        try:
            self._consumer().commit()
        except kafka.errors.CommitFailedError as err:
            # The group rebalanced; the batch will be redelivered and upserted again.
            log.warning("offset commit failed after a rebalance; records will be redelivered: %s", err)

    def close(self) -> None:
        if self._client is not None:
            self._client.close(autocommit=False)
            self._client = None


def _admin(bootstrap: str, options: Mapping[str, Any]) -> kafka.KafkaAdminClient:
    client = _Client(bootstrap, options)
    return client._make(kafka.KafkaAdminClient)


def ensure_topics(bootstrap: str, topics: Mapping[str, int], options: Mapping[str, Any] | None = None) -> None:
    """Create each topic with the given partition count unless it exists already."""
    admin = _admin(bootstrap, options or {})
    try:
        existing = set(admin.list_topics())
        # replication factor -1: the cluster's default.replication.factor (1 on the local broker)
        wanted = [NewTopic(name, parts, -1) for name, parts in topics.items() if name not in existing]
        if wanted:
            try:
                admin.create_topics(wanted)
            except kafka.errors.TopicAlreadyExistsError:
                pass
            log.info("created topics %s", ", ".join(t.name for t in wanted))
    finally:
        admin.close()


def check_reachable(bootstrap: str, options: Mapping[str, Any] | None = None, timeout_ms: int = 5000) -> dict[str, Any]:
    """Ask the cluster for its metadata; returns the cluster description or raises BrokerError."""
    admin = _Client(bootstrap, {**(options or {}), "bootstrap_timeout_ms": timeout_ms})._make(kafka.KafkaAdminClient)
    try:
        return admin.describe_cluster()
    finally:
        admin.close()
