"""The clients on kafka-python: :class:`Producer`, :class:`Consumer` and the admin calls.

Clients are context managers, make no network call in ``__init__``, and close on exit. Client
errors are re-raised as :class:`~kstream.errors.BrokerError` or
:class:`~kstream.errors.ConfigError` with a message that says what to do.

Delivery is checked, never assumed: :meth:`Producer.flush` waits for the acknowledgement of every
record sent since the last flush, sends the failed ones again with backoff, and raises if they
still fail when its deadline passes; :meth:`Consumer.commit` commits explicit offsets and tells a
lost group membership (the batch will be redelivered) from an unreachable cluster (retried).

>>> Producer("127.0.0.1:9", {})  # no connection is made until first use
Producer(bootstrap='127.0.0.1:9')
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import kafka
import kafka.errors
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic
from kafka.structs import OffsetAndMetadata, TopicPartition

from kstream.clients.options import check_options, coerce_option, coerce_options, option_name
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
from kstream.clients.unreadable import UnreadableRecords, is_record_error
from kstream.clients.watchdog import Watchdog
from kstream.errors import BrokerError, ConfigError
from kstream.retry import Backoff, Deadline, retry

if TYPE_CHECKING:  # typing.Self is 3.11+; mypy always has typing_extensions
    from typing_extensions import Self

__all__ = ["Producer", "Consumer", "ensure_topics", "list_topics", "delete_topics",
           "check_reachable", "topic_max_message_bytes", "check_options",
           "coerce_option", "coerce_options", "option_name", "from_kafka_python"]

log = logging.getLogger(__name__)

BOOTSTRAP_TIMEOUT_MS = 10_000
MAX_BACKOFF_S = 5.0
#: kafka-python retries a record (idempotently) until this much time has passed; kstream's own deadline
#: (``--outage-timeout``) always ends first. A shorter one lets a batch the broker may have written expire,
#: and kafka-python 3.0.12 then resets the idempotent producer's id without asking for a new one: that
#: producer sends nothing again (seen with a broker paused 150 s).
DELIVERY_TIMEOUT_MS = 7 * 24 * 3600 * 1000
CLOSE_TIMEOUT_S = 30.0
ADMIN_RETRY_S = 30.0  # how long topic creation is asked again while a cluster just started settles
#: a poll still running this long past its own timeout is stuck in kafka-python (see kstream.clients.watchdog)
POLL_STALL_S = 30.0
#: a caught-up check waits for at most this many answers of its timeout each (ends, starts, commits) before the
#: watchdog's POLL_STALL_S begins to count
CHECK_TIMEOUTS = 4
#: A consumer given no partition reads its group's backlog every UNOWNED_CHECK_S; if records wait and the group's
#: commits stand still UNOWNED_STALL_S, it joins again with a new client (kafka-python 3.0.12 once assigned nothing)
UNOWNED_STALL_S = 30.0
UNOWNED_CHECK_S = 1.0


def _unreachable(bootstrap: str, err: Exception, options: Mapping[str, Any] | None = None) -> BrokerError:
    if str((options or {}).get("security_protocol", "")).upper().startswith("SASL"):
        # kafka-python reports a refused SASL login as a bootstrap timeout: say both causes
        return BrokerError(
            f"cannot connect to Kafka at {bootstrap} with SASL ({type(err).__name__}): check the SASL user name and "
            "password (a refused login looks like a timeout) and that the cluster is up"
        )
    return BrokerError(
        f"cannot reach Kafka at {bootstrap} ({type(err).__name__}); start one with `kstream broker start` "
        "or pass --bootstrap / KSTREAM_BOOTSTRAP with a reachable cluster"
    )


def _retriable(err: BaseException | None) -> bool:
    return err is None or bool(getattr(err, "retriable", False)) or isinstance(
        err, (kafka.errors.KafkaConnectionError, kafka.errors.KafkaTimeoutError)
    )


def from_kafka_python(options: Mapping[str, Any]) -> dict[str, Any]:
    """The connection options of a local broker, already in this backend's names."""
    return dict(options)


class _Client:
    def __init__(self, bootstrap: str, options: Mapping[str, Any] | None = None) -> None:
        if not bootstrap:
            raise ConfigError("no Kafka bootstrap address; start a broker with `kstream broker start` "
                              "or pass --bootstrap")
        self.bootstrap = bootstrap
        self.options = dict(options or {})
        self._client: Any = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(bootstrap={self.bootstrap!r})"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _make(self, factory, *args: Any, **defaults: Any) -> Any:
        check_options(self.options)
        # each client takes the options it knows: linger_ms reaches the producer, fetch_* the consumer
        known = factory.DEFAULT_CONFIG
        given = {"bootstrap_timeout_ms": BOOTSTRAP_TIMEOUT_MS, **self.options}
        options = {k: v for k, v in given.items() if k in known}
        config = {**defaults, **options, "bootstrap_servers": self.bootstrap}
        try:
            return factory(*args, **config)
        except kafka.errors.KafkaConfigurationError as err:
            raise ConfigError(f"bad Kafka client option: {err}; see the kafka-python docs for valid names") from err
        except (kafka.errors.KafkaTimeoutError, kafka.errors.KafkaConnectionError) as err:
            raise _unreachable(self.bootstrap, err, self.options) from err

    def close(self) -> None:
        raise NotImplementedError


class Producer(_Client):
    """Sends records; :meth:`flush` returns only when every record sent so far is acknowledged."""

    #: Drop the acknowledged sends from the pending list once it holds this many (and then whenever it doubles).
    _PRUNE_EVERY = 8192

    def __init__(self, bootstrap: str, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(bootstrap, options)
        self._pending: list[tuple[Record, Any]] = []
        self._prune_at = self._PRUNE_EVERY

    def _producer(self) -> kafka.KafkaProducer:
        if self._client is None:
            # Flow values are ~2 KB of JSON: larger batches cut per-request overhead 1.8x here; a short linger
            # keeps a paced stream's latency low (a full batch goes at once anyway)
            self._client = self._make(kafka.KafkaProducer, acks="all", linger_ms=5, batch_size=262_144,
                                      delivery_timeout_ms=DELIVERY_TIMEOUT_MS)
        return self._client

    @property
    def max_request_size(self) -> int:
        """The largest record (with its headers) this producer may send."""
        return int(self.options.get("max_request_size", kafka.KafkaProducer.DEFAULT_CONFIG["max_request_size"]))

    def connect(self) -> Producer:
        """Connect now (fail fast with a clear error if the cluster is unreachable)."""
        self._producer()
        return self

    def send(self, topic: str, value: bytes, key: bytes | None = None,
             headers: Mapping[str, bytes] | Sequence[tuple[str, bytes]] | None = None) -> None:
        """Queue one record; its acknowledgement is checked by the next :meth:`flush`."""
        items = tuple(headers.items()) if isinstance(headers, Mapping) else tuple(headers or ())
        self._send(Record(topic, value, key, items))

    def _send(self, record: Record) -> None:
        try:
            future = self._producer().send(record.topic, value=record.value, key=record.key,
                                           headers=list(record.headers))
        except kafka.errors.MessageSizeTooLargeError as err:
            raise BrokerError(f"a record for {record.topic} is larger than the producer's max_request_size "
                              f"({self.max_request_size} bytes): {err}") from err
        except kafka.errors.KafkaTimeoutError as err:  # no metadata for the topic yet: retried by flush
            future = _Failed(err)
        self._pending.append((record, future))
        if len(self._pending) >= self._prune_at:
            # while Kafka is away nothing is acknowledged: pruning at every send would make sending quadratic
            self._pending = [(r, f) for r, f in self._pending if not (f.is_done and f.exception is None)]
            self._prune_at = max(self._PRUNE_EVERY, 2 * len(self._pending))

    def publish(self, records: Iterable[Record], deadline_s: float = 300) -> None:
        """Send ``records`` and wait until every one is acknowledged (see :meth:`flush`)."""
        for record in records:
            self._send(record)
        self.flush(deadline_s)

    def flush(self, deadline_s: float = 300) -> None:
        """Wait for every record sent since the last flush; send failed ones again, with backoff.

        Raises BrokerError when a record fails for a reason no retry can mend (too large, not
        authorized, no such topic) or when some are still unacknowledged after ``deadline_s``.
        """
        if self._client is None or not self._pending:
            self._pending = []
            return
        deadline, delays = Deadline(deadline_s), Backoff(cap=MAX_BACKOFF_S).delays()
        again: list[Record] = []  # the records that failed in the last round: sent again after the backoff

        def acknowledged() -> None:
            """One round: send ``again``, wait for every acknowledgement; Unacknowledged names what is missing."""
            for record in again:
                self._send(record)
            try:
                self._client.flush(timeout=deadline.remaining(floor=1.0, cap=30.0))
            except kafka.errors.KafkaTimeoutError:
                pass  # the futures tell which records are still unacknowledged
            failed = [(r, f) for r, f in self._pending if not f.is_done or f.exception is not None]
            if not failed:
                self._pending = []
                return
            first = next((f.exception for _, f in failed if f.is_done and f.exception is not None), None)
            if not _retriable(first):
                self._pending = []
                raise BrokerError(f"Kafka at {self.bootstrap} refused {len(failed)} record(s) for "
                                  f"{failed[0][0].topic}: {type(first).__name__}: {first}; nothing was committed")
            again[:] = [r for r, f in failed if f.is_done]
            self._pending = [(r, f) for r, f in failed if not f.is_done]  # in flight: the client retries them
            raise Unacknowledged(len(failed), failed[0][0].topic, first, len(again))

        def retrying(err: Unacknowledged, wait_s: float) -> None:
            log.warning("%d record(s) not acknowledged yet (%s)%s", err.count,
                        type(err.first).__name__ if err.first else "no answer from Kafka",
                        f"; sending {err.again} again in {wait_s:.1f}s" if err.again else "; still waiting")

        try:  # records only in flight need no backoff: the next round's flush waits for them
            retry(acknowledged, retry_on=Unacknowledged, deadline=deadline, on_retry=retrying,
                  backoff=lambda err: next(delays) if err.again else 0.0)
        except Unacknowledged as err:
            self._pending = []
            reason = f"{type(err.first).__name__}: {err.first}" if err.first else "no acknowledgement"
            raise BrokerError(f"{err.count} record(s) for {err.topic} were not acknowledged by Kafka at "
                              f"{self.bootstrap} within {deadline_s:.0f}s ({reason}); nothing was committed, "
                              "restart when Kafka is back") from None

    def close(self, timeout_s: float = CLOSE_TIMEOUT_S) -> None:
        """Send what is queued and close; gives up on unacknowledged records after ``timeout_s``."""
        client, self._client, self._pending = self._client, None, []
        if client is not None:
            _close_producer(client, timeout_s)


def _close_producer(client: kafka.KafkaProducer, timeout_s: float) -> None:
    """Close ``client`` within about ``timeout_s``, even with records Kafka never acknowledged.

    kafka-python 3.0.12's ``close(timeout)`` raises from its own flush at the timeout instead of
    closing (and without a timeout it waits forever): its sender is then stopped the way
    ``close`` would have stopped it, abandoning those records, and the client closed.
    """
    try:
        client.close(timeout=timeout_s)
        return
    except kafka.errors.KafkaTimeoutError:
        log.warning("closing the Kafka producer with records Kafka did not acknowledge within %.0fs", timeout_s)
    sender = getattr(client, "_sender", None)
    if sender is not None:
        sender.force_close()
        sender.join(timeout_s)
    with contextlib.suppress(kafka.errors.KafkaTimeoutError):
        client.close(timeout=0)


class _Failed:
    """A send that failed before the client queued it (same interface as kafka-python's futures)."""

    def __init__(self, err: BaseException) -> None:
        self.is_done, self.exception = True, err


class Consumer(_Client):
    """Reads batches from topics in a consumer group; offsets are committed only by :meth:`commit`."""

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
        #: what the group gave this consumer (a batch read before a change is not committed after it)
        self.assignment = Assignment()
        self._ids = TopicIds(self._read_topic_id)
        # reads a partition alone, with the same options, to find a record the client cannot parse
        self._unreadable = UnreadableRecords(
            lambda: self._make(kafka.KafkaConsumer, group_id=None, enable_auto_commit=False)
        )
        self._watchdog = Watchdog(self._unstick)
        self._api_version: Any = None  # the broker's, kept when a stuck client is replaced
        # with no partition assigned here: whether records wait for the group, and whether anyone reads them
        self._backlog = GroupBacklog(UNOWNED_CHECK_S, UNOWNED_STALL_S)

    def _consumer(self) -> kafka.KafkaConsumer:
        if self._client is None:
            self._client = self._make(
                kafka.KafkaConsumer,
                group_id=self.group,
                enable_auto_commit=False,
                # a crashed detector's partitions move to a live one after 10 s, not the client's 45 s
                session_timeout_ms=10_000,
                heartbeat_interval_ms=3_000,
                auto_offset_reset="earliest",  # a new group reads the topic from its start
                # a replacement for a stuck client is made without a round trip (it cannot fail here)
                **({"api_version": self._api_version} if self._api_version else {}),
            )
            self._client.subscribe(self.topics, listener=_Rebalances(self))
        return self._client

    def connect(self) -> Consumer:
        self._consumer()
        return self

    def topic_id(self, topic: str) -> str:
        """The topic's id in the cluster metadata, as text (empty if never known; see :class:`TopicIds`)."""
        return self._ids.get(topic) or ""

    def _read_topic_id(self, topic: str) -> str | None:
        """The id the client's metadata holds for ``topic``; None (and a metadata refresh asked for) when the
        metadata does not list the topic now, "" when it lists it without an id."""
        cluster = self._consumer()._client.cluster
        if cluster.partitions_for_topic(topic) is None:
            cluster.request_update()
            return None
        found = cluster.topic_id(topic)
        return topic_id_text(found.bytes) if found else ""

    def poll(self, max_records: int, timeout_ms: int) -> list[Message]:
        """Up to ``max_records`` messages, waiting at most ``timeout_ms`` for the first.

        A record the client library cannot parse comes back as a placeholder :class:`Message`
        with ``error`` set, and its partition moves past it (:mod:`kstream.clients.unreadable`), so one
        bad record never stalls a partition.
        """
        consumer = self._consumer()
        fired = self._watchdog.fired
        try:
            with self._watchdog.watch(timeout_ms / 1000 + POLL_STALL_S):
                batches = consumer.poll(timeout_ms=timeout_ms, max_records=max_records)
        except Exception as err:  # noqa: BLE001 - kafka-python raises parser errors as they come
            if self._watchdog.fired == fired:
                if not is_record_error(err):
                    raise
                return [Message(tp.topic, tp.partition, offset, None, None, {}, self.topic_id(tp.topic), error=problem)
                        for tp, offset, problem in self._unreadable.skip(consumer, err, max_records)]
        if self._watchdog.fired != fired:  # ended by the watchdog: what it read is read again by the new client
            self._replace_stuck(consumer)
            return []
        firsts = [(tp.topic, tp.partition, records[0].offset) for tp, records in batches.items() if records]
        ids, held = held_back(firsts, self._ids)
        for (topic, partition), offset in held.items():
            try:
                consumer.seek(TopicPartition(topic, partition), offset)
            except (kafka.errors.KafkaError, AssertionError, KeyError, ValueError):
                pass  # no longer assigned here: its next owner reads it from the committed offset
        if held:
            time.sleep(min(timeout_ms, 200) / 1000)  # the metadata refresh asked for comes with the next poll
        out: list[Message] = []
        for tp, records in batches.items():
            if tp.topic in ids:
                out.extend(Message(r.topic, r.partition, r.offset, r.key, r.value, dict(r.headers or ()),
                                   ids[tp.topic]) for r in records)
        return out

    def _unstick(self) -> None:
        """On the watchdog's thread: end a poll or caught-up check stuck in kafka-python by stopping its network
        loop."""
        client = self._client
        net = getattr(client, "_net", None)  # kafka-python 3's network loop; stopping it fails the waiting call
        log.warning("the Kafka client has not returned from poll (or an offsets check) for %.0fs past its "
                    "timeout; restarting it "
                    "(records read but not committed are read again)", POLL_STALL_S)
        if net is not None:
            net.stop(timeout_ms=5000)

    def _replace_stuck(self, stuck: kafka.KafkaConsumer) -> None:
        """Drop a stuck client (a poll the watchdog ended, or no assignment while records wait unread); the next
        poll joins the group with a new one."""
        self._client, self._api_version = None, stuck.config.get("api_version")
        self.assignment.lost()  # the new client starts from the committed offsets, not from this one's positions
        # closing may wait on the broken client: on a thread of its own, so the detector goes on meanwhile
        threading.Thread(target=_close_quietly, args=(stuck,), name="kstream-close-stuck", daemon=True).start()

    @property
    def rebalances(self) -> int:
        """How many assignments the group gave this consumer so far."""
        return self.assignment.count

    def assigned(self) -> bool:
        """True once the group has given this consumer at least one partition."""
        return bool(self._consumer().assignment())

    def caught_up(self, timeout_ms: int = 3000) -> bool | None:
        """True when this consumer has read every record of its partitions (given none: when nothing waits for
        its group), False when some are left, None when it cannot tell (records wait elsewhere, or no answer).

        Watched like :meth:`poll`: a check still running :data:`POLL_STALL_S` past its own timeouts is ended,
        the client replaced, and the answer is None (a stuck client is not a caught-up one).
        """
        consumer = self._consumer()
        fired = self._watchdog.fired
        answer: bool | None = None
        try:
            with self._watchdog.watch(CHECK_TIMEOUTS * timeout_ms / 1000 + POLL_STALL_S):
                answer = self._caught_up(consumer, timeout_ms)
        except Exception:
            if self._watchdog.fired == fired:
                raise
        if self._watchdog.fired != fired:  # ended by the watchdog
            if self._client is consumer:
                self._replace_stuck(consumer)
            return None
        return answer

    def _caught_up(self, consumer: kafka.KafkaConsumer, timeout_ms: int) -> bool | None:
        assigned = consumer.assignment()
        if not assigned:
            return self._group_idle(consumer, timeout_ms)
        self._backlog.reset()
        try:
            ends = consumer.end_offsets(list(assigned), timeout_ms=timeout_ms)
            return all(consumer.position(tp, timeout_ms=timeout_ms) >= end for tp, end in ends.items())
        except (kafka.errors.KafkaError, AssertionError, KeyError):
            return None

    def _group_idle(self, consumer: kafka.KafkaConsumer, timeout_ms: int) -> bool | None:
        """With no partition here (not joined, between assignments, or given none): True when no record
        waits for the group, else None. Only when records wait (or the topic's partitions stay unknown) and
        the group's commits stand still for :data:`UNOWNED_STALL_S` is this client taken for stuck (a broken
        assignment, a coordinator never found) and replaced: more detectors than partitions is fine."""
        def read() -> tuple[dict, dict] | None:
            cluster = consumer._client.cluster  # its cached metadata: asking the cluster could wait without end
            parts = [TopicPartition(t, p) for t in self.topics for p in cluster.partitions_for_topic(t) or ()]
            try:
                ends = consumer.end_offsets(parts, timeout_ms=timeout_ms) if parts else {}
                starts = consumer.beginning_offsets(parts, timeout_ms=timeout_ms) if parts else {}
            except (kafka.errors.KafkaError, AssertionError, KeyError):
                return None  # the cluster does not answer: waiting for it is not idleness nor a broken assignment
            try:
                committed = {tp: consumer.committed(tp, timeout_ms=timeout_ms) for tp in parts}
            except (kafka.errors.KafkaError, AssertionError, KeyError):
                committed = {}  # the group's coordinator does not answer: as if nothing were committed
            # a group that committed nothing yet starts at the partition's first offset (auto_offset_reset)
            return ({tuple(tp): starts[tp] if committed.get(tp) is None else committed[tp] for tp in parts},
                    {tuple(tp): end for tp, end in ends.items()})

        idle = self._backlog.check(read, time.monotonic())
        if self._backlog.stalled:
            log.warning("no partition assigned here for %.0fs while %s and the group commits nothing; joining the "
                        "group again", UNOWNED_STALL_S, f"{self._backlog.waiting} records of {', '.join(self.topics)} "
                        "wait" if self._backlog.waiting else "the topic's partitions are unknown")
            self._backlog.reset()
            self._replace_stuck(consumer)
        return idle

    def commit(self, offsets: Mapping[tuple[str, int], int], deadline_s: float = 300) -> bool:
        """Commit ``{(topic, partition): next offset}``; False if the group took the partitions away.

        A lost membership (a rebalance) is not an error: the uncommitted records go to the detector
        that owns them now, whose store writes are idempotent. An unreachable cluster is retried
        with backoff until ``deadline_s``, then BrokerError.
        """
        if not offsets:
            return True
        commits = {TopicPartition(t, p): OffsetAndMetadata(o, "", -1) for (t, p), o in offsets.items()}
        deadline = Deadline(deadline_s)

        def commit_once() -> bool:
            try:
                self._consumer().commit(commits, timeout_ms=int(deadline.remaining(floor=1.0, cap=30.0) * 1000))
                return True
            except (kafka.errors.CommitFailedError, kafka.errors.RebalanceInProgressError,
                    kafka.errors.IllegalGenerationError, kafka.errors.UnknownMemberIdError) as err:
                log.warning("offset commit refused after a rebalance (%s); the batch goes to the partition's new "
                            "owner, whose store writes are idempotent", type(err).__name__)
                return False

        def retrying(err: kafka.errors.KafkaError, wait_s: float) -> None:
            log.warning("offset commit failed (%s); retrying in %.1fs", type(err).__name__, wait_s)

        try:
            return retry(commit_once, retry_on=kafka.errors.KafkaError, retry_if=_retriable, deadline=deadline,
                         backoff=Backoff(cap=MAX_BACKOFF_S), on_retry=retrying)
        except kafka.errors.KafkaError as err:  # not retriable, or still failing at the deadline
            raise BrokerError(f"cannot commit offsets to Kafka at {self.bootstrap} ({type(err).__name__}: "
                              f"{err}); the batch is stored and will be read again after a restart") from err

    def close(self) -> None:
        self._unreadable.close()
        self._watchdog.close()
        if self._client is not None:
            self._client.close(autocommit=False)
            self._client = None


def _close_quietly(client: kafka.KafkaConsumer) -> None:
    try:
        client.close(autocommit=False, timeout_ms=5000)
    except Exception as err:  # noqa: BLE001 - it was already broken; its session expires at the broker
        log.debug("closing a stuck Kafka client failed: %s", err)


class _Rebalances(kafka.ConsumerRebalanceListener):
    """Eager rebalances: kafka-python keeps the position of a partition owned before and after one."""

    def __init__(self, owner: Consumer) -> None:
        self.assignment, self.ids = owner.assignment, owner._ids

    def on_partitions_revoked(self, revoked: Any) -> None:
        self.assignment.revoked()

    def on_partitions_lost(self, lost: Any) -> None:
        self.assignment.lost()

    def on_partitions_assigned(self, assigned: Any) -> None:
        self.ids.expire()  # a topic created again under its name has a new id
        self.assignment.assigned([(tp.topic, tp.partition) for tp in assigned], keeps_positions=True)


def ensure_topics(bootstrap: str, topics: Mapping[str, int], options: Mapping[str, Any] | None = None) -> None:
    """Create each topic with the given partition count unless it exists already. A cluster just started may
    name a controller its metadata does not list yet (kafka-python then fails): asked again for ADMIN_RETRY_S."""
    def create() -> None:
        admin = _Client(bootstrap, options)._make(kafka.KafkaAdminClient)
        try:
            existing = set(admin.list_topics())
            # replication factor -1: the cluster's default.replication.factor (1 on the local broker)
            wanted = [NewTopic(name, parts, -1) for name, parts in topics.items() if name not in existing]
            if wanted:
                with contextlib.suppress(kafka.errors.TopicAlreadyExistsError):
                    admin.create_topics(wanted)
                log.info("created topics %s", ", ".join(t.name for t in wanted))
        finally:
            admin.close()

    def retrying(err: Exception, wait_s: float) -> None:
        log.info("the cluster cannot create topics yet (%s); asking again", type(err).__name__)

    settling = (kafka.errors.UnknownBrokerIdError, kafka.errors.NodeNotReadyError)
    try:
        retry(create, retry_on=settling, deadline=ADMIN_RETRY_S, backoff=Backoff(first=0.5, factor=1),
              on_retry=retrying)
    except settling as err:
        raise BrokerError(f"Kafka at {bootstrap} could not create topics within {ADMIN_RETRY_S:.0f}s "
                          f"({type(err).__name__}: {err}); is every broker of the cluster up?") from err


def topic_max_message_bytes(bootstrap: str, topic: str, options: Mapping[str, Any] | None = None) -> int | None:
    """The largest record batch ``topic`` accepts (its ``max.message.bytes``), or None if it cannot be read."""
    admin = _Client(bootstrap, options)._make(kafka.KafkaAdminClient)
    try:
        found = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)], config_filter="all")
        entry = found.get("topic", {}).get(topic, {}).get("max.message.bytes", {})
        value = entry.get("value", entry.get("config_value"))
        return int(value) if value is not None else None
    except (kafka.errors.KafkaError, ValueError, TypeError, AttributeError) as err:
        log.info("cannot read max.message.bytes of %s (%s); assuming the default", topic, err)
        return None
    finally:
        admin.close()


def check_reachable(bootstrap: str, options: Mapping[str, Any] | None = None, timeout_ms: int = 5000) -> dict[str, Any]:
    """Ask the cluster for its metadata; returns the cluster description or raises BrokerError."""
    admin = _Client(bootstrap, {**(options or {}), "bootstrap_timeout_ms": timeout_ms})._make(kafka.KafkaAdminClient)
    try:
        return admin.describe_cluster()
    finally:
        admin.close()


def list_topics(bootstrap: str, options: Mapping[str, Any] | None = None) -> dict[str, int]:
    """Every topic of the cluster but Kafka's internal ones, with its partition count."""
    admin = _Client(bootstrap, options)._make(kafka.KafkaAdminClient)
    try:
        names = [t for t in admin.list_topics() if not t.startswith("__")]
        return {t["name"]: len(t["partitions"]) for t in admin.describe_topics(names)} if names else {}
    except kafka.errors.KafkaError as err:
        raise BrokerError(f"cannot list the topics of Kafka at {bootstrap} ({type(err).__name__}: {err})") from err
    finally:
        admin.close()


def delete_topics(bootstrap: str, topics: Sequence[str], options: Mapping[str, Any] | None = None) -> list[str]:
    """Delete ``topics``; the ones the cluster deleted (a topic it does not hold is not an error)."""
    if not topics:
        return []
    admin = _Client(bootstrap, options)._make(kafka.KafkaAdminClient)
    try:
        answer = admin.delete_topics(list(topics), timeout_ms=30_000, raise_errors=False)
    except kafka.errors.KafkaError as err:
        raise BrokerError(f"cannot delete topics on Kafka at {bootstrap} ({type(err).__name__}: {err})") from err
    finally:
        admin.close()
    deleted, failed = [], []
    for row in answer["topics"]:
        code = row["error_code"]
        if code == 0:
            deleted.append(row["name"])
        elif code != kafka.errors.UnknownTopicOrPartitionError.errno:
            failed.append(f"{row['name']}: {row.get('error_message') or kafka.errors.for_code(code).__name__}")
    if failed:
        raise BrokerError(f"Kafka at {bootstrap} refused to delete {len(failed)} topic(s) ({'; '.join(failed)}); "
                          "check that the login may delete topics (ACL DELETE)")
    return deleted
