"""The clients on confluent-kafka (librdkafka): the same :class:`Producer`, :class:`Consumer` and admin calls.

The same surface and the same delivery contract as :mod:`kstream.clients.kafka_python` (tested under
fewer faults: see :mod:`kstream.clients`): the producer sends with
``acks=all`` and idempotence, every delivery callback is checked by :meth:`Producer.flush` (failed
records are sent again with backoff until the deadline, then BrokerError); the consumer never
commits by itself (``enable.auto.commit`` and ``enable.auto.offset.store`` off), commits explicit
offsets, and refuses a commit for partitions a rebalance took away (False: the batch goes to their
new owner). A record librdkafka cannot read comes back as a placeholder :class:`Message` with
``error`` set, dead-lettered by its offset. Options are librdkafka's dotted names
(:mod:`kstream.clients.rdkafka_options`); librdkafka's own log goes to the ``kstream.librdkafka`` logger.

>>> Producer("127.0.0.1:9", {})  # no connection is made until first use
Producer(bootstrap='127.0.0.1:9')
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

import confluent_kafka
from confluent_kafka import KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic, ResourceType

from kstream.clients.rdkafka_options import (
    check_options,
    coerce_option,
    coerce_options,
    from_kafka_python,
    option_name,
    role,
)
from kstream.clients.records import (
    Assignment,
    GroupBacklog,
    Message,
    Record,
    TopicIds,
    Unacknowledged,
    held_back,
    topic_id_text,
)
from kstream.errors import BrokerError, ConfigError
from kstream.retry import Backoff, Deadline, retry

if TYPE_CHECKING:  # typing.Self is 3.11+; mypy always has typing_extensions
    from typing_extensions import Self

__all__ = ["Producer", "Consumer", "ensure_topics", "list_topics", "delete_topics",
           "check_reachable", "topic_max_message_bytes", "check_options",
           "coerce_option", "coerce_options", "option_name", "from_kafka_python"]

log = logging.getLogger(__name__)
_LIBRDKAFKA_LOG = logging.getLogger("kstream.librdkafka")

MAX_BACKOFF_S = 5.0
CLOSE_TIMEOUT_S = 30.0
CONNECT_TIMEOUT_S = 10.0
#: errors that mean the group took the partitions away: the commit is refused, the batch goes to their new owner
_LOST = {KafkaError.ILLEGAL_GENERATION, KafkaError.UNKNOWN_MEMBER_ID, KafkaError.REBALANCE_IN_PROGRESS,
         KafkaError._ASSIGNMENT_LOST, KafkaError.FENCED_INSTANCE_ID, KafkaError.STALE_MEMBER_EPOCH}
#: errors on a fetched record itself: the record is dead-lettered by its offset
_RECORD = {KafkaError._BAD_MSG, KafkaError._BAD_COMPRESSION, KafkaError.INVALID_RECORD,
           KafkaError._KEY_DESERIALIZATION, KafkaError._VALUE_DESERIALIZATION}
_TRANSIENT = {KafkaError._TRANSPORT, KafkaError._TIMED_OUT, KafkaError._MSG_TIMED_OUT, KafkaError._ALL_BROKERS_DOWN,
              KafkaError.REQUEST_TIMED_OUT, KafkaError.NOT_COORDINATOR, KafkaError.COORDINATOR_NOT_AVAILABLE,
              KafkaError.COORDINATOR_LOAD_IN_PROGRESS, KafkaError._WAIT_COORD, KafkaError.NOT_ENOUGH_REPLICAS,
              KafkaError.NOT_ENOUGH_REPLICAS_AFTER_APPEND, KafkaError.LEADER_NOT_AVAILABLE,
              KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.NETWORK_EXCEPTION, KafkaError._RESOLVE,
              KafkaError._UNKNOWN_PARTITION, KafkaError._UNKNOWN_TOPIC, KafkaError.UNKNOWN_TOPIC_OR_PART,
              KafkaError._NODE_UPDATE, KafkaError._WAIT_CACHE}


def _retriable(err: KafkaError | None) -> bool:
    return err is None or (not err.fatal() and (err.retriable() or err.code() in _TRANSIENT))


def _unreachable(bootstrap: str, err: Any, options: Mapping[str, Any]) -> BrokerError:
    if str(options.get("security.protocol", "")).upper().startswith("SASL") or (
            isinstance(err, KafkaError) and err.code() == KafkaError._AUTHENTICATION):
        return BrokerError(f"cannot connect to Kafka at {bootstrap} with SASL ({_why(err)}): check the SASL user name "
                           "and password and that the cluster is up")
    return BrokerError(f"cannot reach Kafka at {bootstrap} ({_why(err)}); start one with `kstream broker start` "
                       "or pass --bootstrap / KSTREAM_BOOTSTRAP with a reachable cluster")


def _kafka_error(err: KafkaException) -> KafkaError | None:
    """The KafkaError a KafkaException carries, if it carries one."""
    return err.args[0] if err.args and isinstance(err.args[0], KafkaError) else None


def _why(err: Any) -> str:
    if isinstance(err, KafkaException) and err.args:
        err = err.args[0]
    if isinstance(err, KafkaError):
        return f"{err.name()}: {err.str()}"[:300]
    return f"{type(err).__name__}: {err}"[:300]


class _Client:
    def __init__(self, bootstrap: str, options: Mapping[str, Any] | None = None) -> None:
        if not bootstrap:
            raise ConfigError("no Kafka bootstrap address; start a broker with `kstream broker start` "
                              "or pass --bootstrap")
        self.bootstrap = bootstrap
        self.options = {k: _text(v) for k, v in (options or {}).items()}
        self._client: Any = None
        self._last_error: KafkaError | None = None  # the last error librdkafka reported on its own

    def __repr__(self) -> str:
        return f"{type(self).__name__}(bootstrap={self.bootstrap!r})"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _config(self, consumer: bool, **defaults: Any) -> dict[str, Any]:
        check_options(self.options)
        # each client takes the options it knows: fetch.* reaches the consumer only
        mine = {k: v for k, v in self.options.items() if consumer or role(k, v) != "consumer"}
        return {**{k: _text(v) for k, v in defaults.items()}, **mine, "bootstrap.servers": self.bootstrap,
                "logger": _LIBRDKAFKA_LOG, "error_cb": self._on_error}

    def _on_error(self, err: KafkaError) -> None:
        self._last_error = err
        if err.fatal():
            log.error("Kafka client error: %s", _why(err))
        else:
            log.debug("Kafka client error (the client retries): %s", _why(err))

    def close(self) -> None:
        raise NotImplementedError


def _text(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


class Producer(_Client):
    """Sends records; :meth:`flush` returns only when every record sent so far is acknowledged."""

    def __init__(self, bootstrap: str, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(bootstrap, options)
        self._lock = threading.Lock()
        self._inflight = 0
        self._failed: list[tuple[Record, KafkaError]] = []

    def _producer(self) -> confluent_kafka.Producer:
        if self._client is None:
            # message.timeout.ms 0: librdkafka retries until kstream's own deadline (--outage-timeout) ends it
            self._client = confluent_kafka.Producer(self._config(
                False, **{"acks": "all", "enable.idempotence": True, "message.timeout.ms": 0, "linger.ms": 2,
                          "batch.size": 262_144}))
        return self._client

    @property
    def max_request_size(self) -> int:
        """The largest record (with its headers) this producer may send."""
        return int(self.options.get("message.max.bytes", 1_000_000))

    def connect(self) -> Producer:
        """Connect now (fail fast with a clear error if the cluster is unreachable)."""
        _metadata(self._producer(), self, CONNECT_TIMEOUT_S)
        return self

    def send(self, topic: str, value: bytes, key: bytes | None = None,
             headers: Mapping[str, bytes] | Sequence[tuple[str, bytes]] | None = None) -> None:
        """Queue one record; its acknowledgement is checked by the next :meth:`flush`."""
        items = list(headers.items()) if isinstance(headers, Mapping) else list(headers or ())
        self._send(topic, value, key, items)

    def _send(self, topic: str, value: bytes | None, key: bytes | None, headers: list, counted: bool = False) -> None:
        producer = self._producer()
        if not counted:
            with self._lock:
                self._inflight += 1
        while True:
            try:
                producer.produce(topic, value, key, headers=headers, on_delivery=self._delivered)
                return
            except BufferError:  # librdkafka's queue is full: serve acknowledgements, then again
                producer.poll(0.05)
            except KafkaException as err:
                with self._lock:
                    self._inflight -= 1
                code = err.args[0].code() if err.args else None
                if code == KafkaError.MSG_SIZE_TOO_LARGE:
                    raise BrokerError(f"a record for {topic} is larger than the producer's message.max.bytes "
                                      f"({self.max_request_size} bytes): {_why(err)}") from err
                raise BrokerError(f"Kafka at {self.bootstrap} refused a record for {topic}: {_why(err)}") from err

    def _delivered(self, err: KafkaError | None, msg: confluent_kafka.Message) -> None:
        with self._lock:
            self._inflight -= 1
            if err is not None:
                # the record as kstream produced it: a topic, a value, and headers of bytes
                sent = cast("list[tuple[str, bytes]] | None", msg.headers())
                self._failed.append((Record(cast(str, msg.topic()), cast(bytes, msg.value()), msg.key(),
                                            tuple(sent or ())), err))

    def poll(self) -> None:
        """Serve the acknowledgements that arrived (cheap; :meth:`flush` waits for all of them)."""
        if self._client is not None:
            self._client.poll(0)

    def publish(self, records: Iterable[Record], deadline_s: float = 300) -> None:
        """Send ``records`` and wait until every one is acknowledged (see :meth:`flush`)."""
        records = list(records)
        with self._lock:  # counted once for the batch: the per-record path stays a plain produce call
            self._inflight += len(records)
        for i, record in enumerate(records):
            try:
                self._send(record.topic, record.value, record.key, list(record.headers), counted=True)
            except BaseException:
                with self._lock:
                    self._inflight -= len(records) - i - 1  # the failed one was uncounted by _send
                raise
        self.flush(deadline_s)

    def flush(self, deadline_s: float = 300) -> None:
        """Wait for every record sent since the last flush; send failed ones again, with backoff.

        Raises BrokerError when a record fails for a reason no retry can mend (too large, not
        authorized, a fatal idempotence error) or when some are still unacknowledged after ``deadline_s``.
        """
        if self._client is None:
            return
        deadline, delays = Deadline(deadline_s), Backoff(cap=MAX_BACKOFF_S).delays()
        again: list[Record] = []  # the records that failed in the last round: sent again after the backoff

        def acknowledged() -> None:
            """One round: send ``again``, wait for every acknowledgement; Unacknowledged names what is missing."""
            for record in again:
                self._send(record.topic, record.value, record.key, list(record.headers))
            self._client.flush(deadline.remaining(floor=0.5, cap=30.0))
            with self._lock:
                failed, self._failed, inflight = self._failed, [], self._inflight
            if not failed and inflight == 0:
                return
            first = failed[0][1] if failed else self._last_error
            topic = failed[0][0].topic if failed else "their topics"
            if failed and not _retriable(first):
                raise BrokerError(f"Kafka at {self.bootstrap} refused {len(failed)} record(s) for {topic}: "
                                  f"{_why(first)}; nothing was committed")
            again[:] = [record for record, _ in failed]
            raise Unacknowledged(len(failed) + inflight, topic, first, len(failed))

        def retrying(err: Unacknowledged, wait_s: float) -> None:
            log.warning("%d record(s) not acknowledged yet (%s)%s", err.count,
                        _why(err.first) if err.first else "no answer",
                        f"; sending {err.again} again in {wait_s:.1f}s" if err.again else "; still waiting")

        try:  # records only in flight need no backoff: the next round's flush waits for them
            retry(acknowledged, retry_on=Unacknowledged, deadline=deadline, on_retry=retrying,
                  backoff=lambda err: next(delays) if err.again else 0.0)
        except Unacknowledged as err:
            reason = _why(err.first) if err.first else "no acknowledgement"
            raise BrokerError(f"{err.count} record(s) for {err.topic} were not acknowledged by Kafka at "
                              f"{self.bootstrap} within {deadline_s:.0f}s ({reason}); nothing was committed, "
                              "restart when Kafka is back") from None

    def close(self, timeout_s: float = CLOSE_TIMEOUT_S) -> None:
        """Send what is queued and close; gives up on unacknowledged records after ``timeout_s``."""
        client, self._client = self._client, None
        if client is not None:
            left = client.flush(timeout_s)
            if left:
                log.warning("closing the Kafka producer with %d record(s) Kafka did not acknowledge within %.0fs",
                            left, timeout_s)
                client.purge()
                client.flush(0)
        with self._lock:
            self._inflight, self._failed = 0, []


def _metadata(client: Any, owner: _Client, timeout_s: float, topic: str | None = None) -> Any:
    try:
        return client.list_topics(topic, timeout=timeout_s)
    except KafkaException as err:
        raise _unreachable(owner.bootstrap, owner._last_error or err, owner.options) from err


class Consumer(_Client):
    """Reads batches from topics in a consumer group; offsets are committed only by :meth:`commit`.

    Call it from one thread at a time: a synchronous commit from one thread while another reads
    watermarks was seen to hang (the detector commits through its read-ahead thread).
    """

    def __init__(self, bootstrap: str, topics: Iterable[str], group: str,
                 options: Mapping[str, Any] | None = None) -> None:
        super().__init__(bootstrap, options)
        self.topics = list(topics)
        self.group = group
        self._ids = TopicIds(lambda topic: _describe_topic_id(self._admin_client(), topic))
        self._admin: AdminClient | None = None
        #: what the group gave this consumer (a batch read before a change is not committed after it)
        self.assignment = Assignment()
        # with no partition assigned here: whether records wait for the group (read every second)
        self._backlog = GroupBacklog(check_s=1.0, stall_s=float("inf"))

    def _consumer(self) -> confluent_kafka.Consumer:
        if self._client is None:
            self._client = confluent_kafka.Consumer(self._config(
                True, **{"group.id": self.group, "enable.auto.commit": False, "enable.auto.offset.store": False,
                         "auto.offset.reset": "earliest", "isolation.level": "read_uncommitted",
                         # a crashed detector's partitions move to a live one after 10 s, not the client's 45 s
                         "session.timeout.ms": 10_000, "heartbeat.interval.ms": 3_000,
                         # a caught-up fetch returns as soon as a record arrives; at most 100 ms when none does
                         "fetch.wait.max.ms": 100}))
            self._client.subscribe(self.topics, on_assign=self._on_assign, on_revoke=self._on_revoke,
                                   on_lost=self._on_lost)
        return self._client

    def _on_assign(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        self._ids.expire()  # a topic created again under its name has a new id
        # eager rebalancing: librdkafka reads every partition it is given from its committed offset
        self.assignment.assigned([(tp.topic, tp.partition) for tp in partitions], keeps_positions=False)

    def _on_revoke(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        self.assignment.revoked()

    def _on_lost(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        self.assignment.lost()

    @property
    def rebalances(self) -> int:
        """How many assignments the group gave this consumer so far."""
        return self.assignment.count

    def connect(self) -> Consumer:
        _metadata(self._consumer(), self, CONNECT_TIMEOUT_S)
        return self

    def topic_id(self, topic: str) -> str:
        """The topic's id in the cluster metadata, as text (empty if never known; see :class:`TopicIds`)."""
        return self._ids.get(topic) or ""

    def _admin_client(self) -> AdminClient:
        if self._admin is None:
            self._admin = AdminClient(self._config(False))
        return self._admin

    def poll(self, max_records: int, timeout_ms: int) -> list[Message]:
        """Up to ``max_records`` messages, waiting at most ``timeout_ms`` for the first (never for more)."""
        consumer = self._consumer()
        try:
            raw = consumer.consume(max_records, 0)
            if not raw:
                first = consumer.poll(timeout_ms / 1000)
                raw = [first] + consumer.consume(max_records - 1, 0) if first is not None and max_records > 1 else (
                    [first] if first is not None else [])
        except KafkaException as failed:
            raise BrokerError(f"the Kafka consumer failed ({_why(failed)}); restart the detector") from failed
        records = [m for m in raw if m.topic() is not None and m.offset() is not None and cast(int, m.offset()) >= 0
                   and (m.error() is None or cast(KafkaError, m.error()).code() in _RECORD)]
        ids, held = held_back([(cast(str, m.topic()), cast(int, m.partition()), cast(int, m.offset()))
                               for m in records], self._ids)
        for (topic, partition), offset in held.items():
            try:
                consumer.seek(TopicPartition(topic, partition, offset))
            except KafkaException:
                pass  # no longer assigned here: its next owner reads it from the committed offset
        if held:
            time.sleep(min(timeout_ms, 200) / 1000)
        out: list[Message] = []
        for m in raw:
            err = m.error()
            # where it was read: librdkafka sets all three on a fetched record (None only on an event without one)
            topic, partition, offset = cast(str, m.topic()), cast(int, m.partition()), cast(int, m.offset())
            if (topic, partition) in held:
                continue  # read again at a later poll (its topic's id was never read)
            if err is None:
                try:  # confluent-kafka raises (sometimes only at the next call) on a header name that is not UTF-8
                    found = cast("list[tuple[str, bytes | None]] | None", m.headers())  # consumed: bytes or null
                    headers = dict(found) if found else {}
                except (SystemError, UnicodeDecodeError) as bad:
                    why = type(bad.__cause__ or bad).__name__
                    out.append(Message(topic, partition, offset, m.key(), m.value(), {},
                                       self.topic_id(topic), error=f"a header name is not UTF-8 ({why})"))
                    continue
                out.append(Message(topic, partition, offset, m.key(), m.value(), headers, self.topic_id(topic)))
            elif err.code() in _RECORD and m.offset() is not None and offset >= 0:
                out.append(Message(topic, partition, offset, None, None, {}, self.topic_id(topic), error=_why(err)))
            elif err.fatal() or err.code() in (KafkaError.TOPIC_AUTHORIZATION_FAILED,
                                               KafkaError.GROUP_AUTHORIZATION_FAILED):
                raise BrokerError(f"the Kafka consumer failed ({_why(err)}); "
                                  "check the cluster and restart the detector")
            else:
                log.debug("consumer event: %s", _why(err))
        return out

    def assigned(self) -> bool:
        """True once the group has given this consumer at least one partition."""
        return bool(self._consumer().assignment())

    def caught_up(self, timeout_ms: int = 3000) -> bool | None:
        """True when this consumer has read every record of its partitions (given none: when nothing waits for
        its group), False when some are left, None when it cannot tell (records wait elsewhere, or no answer)."""
        consumer = self._consumer()
        assigned = consumer.assignment()
        if not assigned:  # not joined, between assignments, or given none: idle when nothing waits for the group
            return self._backlog.check(lambda: self._group_offsets(consumer, timeout_ms / 1000), time.monotonic())
        self._backlog.reset()
        try:
            positions = consumer.position(assigned)
            for tp in positions:
                low, high = consumer.get_watermark_offsets(tp, timeout=timeout_ms / 1000, cached=False)
                at = tp.offset if tp.offset >= 0 else low
                if at < high:
                    return False
            return True
        except KafkaException:
            return None

    def _group_offsets(self, consumer: confluent_kafka.Consumer, timeout_s: float) -> tuple[dict, dict] | None:
        """The group's committed offsets and the partitions' ends, for every partition of its topics."""
        try:
            topics = consumer.list_topics(timeout=timeout_s).topics
            parts = [TopicPartition(t, p) for t in self.topics if t in topics for p in topics[t].partitions]
            committed, ends = {}, {}
            for tp in consumer.committed(parts, timeout=timeout_s) if parts else ():
                low, ends[tp.topic, tp.partition] = consumer.get_watermark_offsets(tp, timeout=timeout_s, cached=False)
                committed[tp.topic, tp.partition] = tp.offset if tp.offset >= 0 else low  # none yet: from the start
        except KafkaException:
            return None
        return committed, ends

    def commit(self, offsets: Mapping[tuple[str, int], int], deadline_s: float = 300) -> bool:
        """Commit ``{(topic, partition): next offset}``; False if the group took the partitions away.

        Offsets of partitions no longer assigned to this consumer are not committed (their records
        go to the partition's new owner, whose store writes are idempotent); an unreachable
        cluster is retried with backoff until ``deadline_s``, then BrokerError.
        """
        if not offsets:
            return True
        consumer = self._consumer()
        assigned = {(tp.topic, tp.partition) for tp in consumer.assignment()}
        kept = {tp: o for tp, o in offsets.items() if tp in assigned}
        if len(kept) < len(offsets):
            log.warning("offset commit refused after a rebalance (%d partition(s) no longer assigned); the batch goes "
                        "to the partition's new owner, whose store writes are idempotent", len(offsets) - len(kept))
        if not kept:
            return False
        commits = [TopicPartition(t, p, o) for (t, p), o in kept.items()]

        def commit_once() -> bool:
            try:
                for tp in consumer.commit(offsets=commits, asynchronous=False) or ():
                    if tp.error is not None:
                        raise KafkaException(tp.error)
                return len(kept) == len(offsets)
            except KafkaException as err:
                error = _kafka_error(err)
                if error is not None and error.code() in _LOST:
                    log.warning("offset commit refused after a rebalance (%s); the batch goes to the partition's new "
                                "owner, whose store writes are idempotent", error.name())
                    return False
                raise

        def retrying(err: KafkaException, wait_s: float) -> None:
            log.warning("offset commit failed (%s); retrying in %.1fs", _why(err), wait_s)

        try:
            return retry(commit_once, retry_on=KafkaException, retry_if=lambda err: _retriable(_kafka_error(err)),
                         deadline=deadline_s, backoff=Backoff(cap=MAX_BACKOFF_S), on_retry=retrying)
        except KafkaException as err:  # not retriable, or still failing at the deadline
            raise BrokerError(f"cannot commit offsets to Kafka at {self.bootstrap} ({_why(err)}); the batch is "
                              "stored and will be read again after a restart") from err

    def close(self) -> None:
        client, self._client, self._admin = self._client, None, None
        if client is not None:
            client.close()  # leaves the group; commits nothing (auto commit is off)


def _describe_topic_id(admin: AdminClient, topic: str) -> str | None:
    """The topic's id as text; "" when the cluster has none for it; None when it cannot be read now."""
    try:
        found = admin.describe_topics(confluent_kafka.TopicCollection([topic]), request_timeout=10)[topic].result()
    except (KafkaException, KeyError) as err:
        log.info("cannot read the id of topic %s (%s)", topic, _why(err))
        return None
    uid = getattr(found, "topic_id", None)
    if uid is None:
        return ""
    raw = (uid.get_most_significant_bits() % 2**64).to_bytes(8, "big") + (
        uid.get_least_significant_bits() % 2**64).to_bytes(8, "big")
    return topic_id_text(raw)


def _admin(bootstrap: str, options: Mapping[str, Any]) -> tuple[AdminClient, _Client]:
    owner = _Client(bootstrap, options)
    return AdminClient(owner._config(False)), owner


def ensure_topics(bootstrap: str, topics: Mapping[str, int], options: Mapping[str, Any] | None = None) -> None:
    """Create each topic with the given partition count unless it exists already."""
    admin, owner = _admin(bootstrap, options or {})
    existing = set(_metadata(admin, owner, CONNECT_TIMEOUT_S).topics)
    # replication factor -1: the cluster's default.replication.factor (1 on the local broker)
    wanted = [NewTopic(name, parts, -1) for name, parts in topics.items() if name not in existing]
    if not wanted:
        return
    for name, future in admin.create_topics(wanted, request_timeout=30).items():
        try:
            future.result()
        except KafkaException as err:
            if err.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise BrokerError(f"cannot create topic {name} on Kafka at {bootstrap} ({_why(err)})") from err
    log.info("created topics %s", ", ".join(t.topic for t in wanted))


def topic_max_message_bytes(bootstrap: str, topic: str, options: Mapping[str, Any] | None = None) -> int | None:
    """The largest record batch ``topic`` accepts (its ``max.message.bytes``), or None if it cannot be read."""
    admin, _ = _admin(bootstrap, options or {})
    try:
        found = admin.describe_configs([ConfigResource(ResourceType.TOPIC, topic)], request_timeout=10)
        entries = next(iter(found.values())).result()
        return int(entries["max.message.bytes"].value)
    except (KafkaException, KeyError, ValueError, TypeError, StopIteration) as err:
        log.info("cannot read max.message.bytes of %s (%s); assuming the default", topic, err)
        return None


def check_reachable(bootstrap: str, options: Mapping[str, Any] | None = None, timeout_ms: int = 5000) -> dict[str, Any]:
    """Ask the cluster for its metadata; returns the cluster description or raises BrokerError."""
    admin, owner = _admin(bootstrap, options or {})
    meta = _metadata(admin, owner, timeout_ms / 1000)
    return {"cluster_id": meta.cluster_id, "controller_id": meta.controller_id,
            "brokers": [{"broker_id": b.id, "host": b.host, "port": b.port} for b in meta.brokers.values()]}


def list_topics(bootstrap: str, options: Mapping[str, Any] | None = None) -> dict[str, int]:
    """Every topic of the cluster but Kafka's internal ones, with its partition count."""
    admin, owner = _admin(bootstrap, options or {})
    meta = _metadata(admin, owner, CONNECT_TIMEOUT_S)
    return {name: len(t.partitions) for name, t in meta.topics.items() if not name.startswith("__")}


def delete_topics(bootstrap: str, topics: Sequence[str], options: Mapping[str, Any] | None = None) -> list[str]:
    """Delete ``topics``; the ones the cluster deleted (a topic it does not hold is not an error)."""
    if not topics:
        return []
    admin, _ = _admin(bootstrap, options or {})
    deleted, failed = [], []
    for name, future in admin.delete_topics(list(topics), operation_timeout=30, request_timeout=40).items():
        try:
            future.result()
            deleted.append(name)
        except KafkaException as err:
            if err.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                failed.append(f"{name}: {_why(err)}")
    if failed:
        raise BrokerError(f"Kafka at {bootstrap} refused to delete {len(failed)} topic(s) ({'; '.join(failed)}); "
                          "check that the login may delete topics (ACL DELETE)")
    return deleted
