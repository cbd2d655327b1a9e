"""Records the Kafka client library cannot read: find them, and move the consumer past them.

kafka-python 3 decodes header keys as strict UTF-8 while it parses a fetch; the broker and the
Java client accept any bytes there. On such a record ``KafkaConsumer.poll`` raises without
saying which partition failed and keeps its position at the record; polled again before the
position moves, it loops forever (100% CPU, the timeout ignored). A batch it cannot decompress,
or that fails its checksum, does the same. Pausing the other partitions and polling again does
not find the record either: polling the failed partition again is what hangs.

:class:`UnreadableRecords` finds them with a separate, group-less probe consumer: it reads each
assigned partition with unread records from the consumer's position, alone, and each partition
the probe cannot read either is the culprit. The consumer then seeks past the record, and
:class:`kstream.clients.Consumer` returns a placeholder for it that the detector dead-letters by
its offset. kafka-python parses a record batch from its start, so records after a bad one in
the same batch are unreadable too: when the failure shows the batch (the parser's frames, see
:func:`failed_batch_end`), they are skipped in one step rather than one probe each.

>>> is_record_error(kafka.errors.CorruptRecordError("bad header key")), is_record_error(UnicodeDecodeError(
...     "utf-8", b"\\xff", 0, 1, "invalid start byte")), is_record_error(kafka.errors.TopicAuthorizationFailedError())
(True, True, False)
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import kafka
import kafka.errors

from kstream.errors import BrokerError
from kstream.retry import wait_until

__all__ = ["PROBE_TIMEOUT_S", "UnreadableRecords", "is_record_error", "failed_batch_end"]

log = logging.getLogger(__name__)

# How long the probe waits for a partition's records before calling it readable. It only probes partitions
# with records left to read, so the wait ends with a record or a failure unless the machine is slow; were it
# to run out, the detector would stop with "the Kafka client failed while reading".
PROBE_TIMEOUT_S = 30.0
# kafka-python errors that mean "this fetched record cannot be parsed"; any other KafkaError is a broker problem
_RECORD_ERRORS = (kafka.errors.CorruptRecordError, kafka.errors.UnsupportedCodecError)


def is_record_error(err: BaseException) -> bool:
    """True if ``err``, raised by ``KafkaConsumer.poll``, may come from a record it cannot parse."""
    if isinstance(err, kafka.errors.KafkaError):
        return isinstance(err, _RECORD_ERRORS)
    return isinstance(err, Exception)  # a parser or decompressor failing on fetched bytes


class UnreadableRecords:
    """Finds the records a consumer's ``poll`` failed on, and seeks the consumer past them.

    ``make_probe`` builds the group-less ``KafkaConsumer`` used to read one partition alone
    (with the same connection options as the consumer); it is built on first need and kept.
    """

    def __init__(self, make_probe: Callable[[], kafka.KafkaConsumer]) -> None:
        self._make_probe = make_probe
        self._probe: Any = None
        self._failed_at: dict[Any, int] = {}  # partition -> the last offset the probe failed at

    def skip(self, consumer: kafka.KafkaConsumer, err: BaseException, max_records: int) -> list[tuple[Any, int, str]]:
        """``(partition, offset, problem)`` of each record ``consumer.poll`` failed on; seeks past them.

        Raises BrokerError when the probe reads every partition: the error was not about a record.
        """
        found: list[tuple[Any, int, str]] = []
        for tp in sorted(consumer.assignment()):
            position, high = _position(consumer, tp), _highwater(consumer, tp)
            if position is None or high is None or position >= high:
                continue  # nothing fetched or nothing left to read: cannot be the record that failed
            failure = self._probe_at(tp, position)
            if failure is None:
                continue
            problem, stop = short(failure), position + 1
            batch_end = failed_batch_end(failure)
            if batch_end is not None and batch_end > stop:
                stop = min(batch_end, high, position + max(1, max_records - len(found)))
                problem += f" (this or an earlier record of its batch, which ends at offset {batch_end - 1})"
            log.warning("cannot read %s/%d offsets %d-%d, moving past them: %s",
                        tp.topic, tp.partition, position, stop - 1, problem)
            found += [(tp, offset, problem) for offset in range(position, stop)]
            consumer.seek(tp, stop)
        if not found:
            raise BrokerError(f"the Kafka client failed while reading: {short(err)}") from err
        return found

    def _probe_at(self, tp: Any, offset: int) -> BaseException | None:
        """Read ``tp`` from ``offset`` with the probe: the error it fails with, or None once a record comes."""
        if self._probe is not None and offset <= self._failed_at.get(tp, -1):
            self.close()  # it failed on this partition at or after this offset: polled there again it would hang
        if self._probe is None:
            self._probe = self._make_probe()
        probe = self._probe
        probe.assign([tp])
        probe.seek(tp, offset)
        try:  # each poll waits up to 200 ms itself
            wait_until(lambda: probe.poll(timeout_ms=200, max_records=1), PROBE_TIMEOUT_S, interval=0)
        except Exception as failure:  # noqa: BLE001 - sorted out just below
            if not is_record_error(failure):
                raise
            self._failed_at[tp] = offset
            return failure
        return None  # a record came back (or none in time): not shown unreadable

    def close(self) -> None:
        self._failed_at.clear()
        if self._probe is not None:
            self._probe.close(autocommit=False)
            self._probe = None


def _position(consumer: kafka.KafkaConsumer, tp: Any) -> int | None:
    try:
        return consumer.position(tp, timeout_ms=1000)
    except kafka.errors.KafkaError:
        return None  # unassigned by a rebalance meanwhile, or not known yet


def _highwater(consumer: kafka.KafkaConsumer, tp: Any) -> int | None:
    try:
        return consumer.highwater(tp)
    except kafka.errors.KafkaError:
        return None


def failed_batch_end(err: BaseException) -> int | None:
    """The offset after the record batch kafka-python was parsing when ``err`` was raised, if its frames show it.

    This reads the parser's frames (its ``batch``, or ``self`` inside the batch), a detail of
    kafka-python 3 and not an API: None when they do not show a batch.

    >>> failed_batch_end(ValueError("raised outside any batch")) is None
    True
    """
    end, tb = None, err.__traceback__
    while tb is not None:
        frame_locals = tb.tb_frame.f_locals
        for name in ("batch", "self"):
            try:
                obj = frame_locals.get(name)
                base, after = getattr(obj, "base_offset", None), getattr(obj, "next_offset", None)
            except Exception:  # noqa: BLE001 - a property of someone else's object: no batch here
                continue
            if type(base) is int and type(after) is int and after > base:
                end = after  # the innermost one wins
        tb = tb.tb_next
    return end


def short(err: BaseException, limit: int = 300) -> str:
    """``Type: message`` of a client error, cut to ``limit`` characters (messages may quote whole records).

    >>> short(ValueError("x" * 1000))[-5:], len(short(ValueError("x" * 1000)))
    ('xxxx\u2026', 300)
    """
    text = f"{type(err).__name__}: {err}"
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"
