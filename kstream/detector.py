"""The detector: consume flows, classify them in micro-batches, write predictions.

One loop iteration handles one poll: decode every value into one feature
matrix in the model card's order, make one model call for the whole batch,
write the predictions to the results store and the predictions topic, send the
records it could not decode or score to the dead-letter topic with the reason
in a header, and only then commit the offsets. A crash at any point therefore
loses nothing: uncommitted records are consumed again after a restart and the
store's upsert on (topic, partition, offset) keeps one row per record.

SIGINT and SIGTERM finish the batch in hand, commit and close.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kstream.clients import Consumer, Message, Producer
from kstream.artifacts import TrainedModel
from kstream.serialization import REASON_HEADER, SEND_TIME_HEADER, decode_flows, encode_prediction
from kstream.sinks import SQLiteStore

__all__ = ["Detector", "DetectorStats", "BatchResult"]

log = logging.getLogger(__name__)


@dataclass
class DetectorStats:
    """Running totals of one detector."""

    batches: int = 0
    records: int = 0
    predicted: int = 0
    dead_lettered: int = 0
    imputed: int = 0
    seconds: float = 0.0
    dlq_reasons: dict[str, int] = field(default_factory=dict)


@dataclass
class BatchResult:
    """What one poll produced: prediction rows and (message, reason) pairs for the DLQ."""

    predictions: list[dict[str, Any]]
    dead: list[tuple[Message, str]]
    imputed: int = 0


class Detector:
    """Classify a stream of flow messages with one model.

    ``consumer``, ``producer`` and ``store`` are kstream's thin client and sink
    objects; tests may pass fakes with the same methods for pure logic.
    """

    def __init__(
        self,
        model: TrainedModel,
        consumer: Consumer,
        producer: Producer,
        store: SQLiteStore,
        predictions_topic: str,
        dlq_topic: str,
        batch_size: int = 500,
        poll_timeout_ms: int = 500,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.model = model
        self.consumer = consumer
        self.producer = producer
        self.store = store
        self.predictions_topic = predictions_topic
        self.dlq_topic = dlq_topic
        self.batch_size = batch_size
        self.poll_timeout_ms = poll_timeout_ms
        self.clock_ns = clock_ns
        self.stats = DetectorStats()
        self._stop = threading.Event()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def stop(self) -> None:
        """Ask the loop to finish its current batch, commit and return."""
        self._stop.set()

    def process(self, messages: list[Message]) -> BatchResult:
        """Decode, score and shape one batch (no I/O)."""
        features = self.model.features
        decoded = decode_flows([m.value for m in messages], features)
        dead = [(messages[i], reason) for i, reason in decoded.errors]
        predictions: list[dict[str, Any]] = []
        if decoded.rows:
            try:
                labels, scores = self.model.predict(decoded.matrix)
            except Exception as err:  # noqa: BLE001 - one bad row must not sink the batch
                log.warning("batch scoring failed (%s); scoring its %d rows one by one", err, len(decoded.rows))
                labels, scores, good = self._score_rows(decoded.matrix, decoded.rows, messages, dead)
                decoded_rows = good
            else:
                decoded_rows = list(range(len(decoded.rows)))
            now = self.clock_ns()
            model_id = self.model.card.model_id
            for j, label, score in zip(decoded_rows, labels, scores):
                msg = messages[decoded.rows[j]]
                predictions.append(
                    {
                        "record_id": msg.key.decode("utf-8", "replace") if msg.key else f"{msg.topic}-{msg.partition}-{msg.offset}",
                        "predicted_label": str(label),
                        "score": float(score),
                        "model_id": model_id,
                        "send_ns": _send_ns(msg),
                        "predicted_ns": now,
                        "topic": msg.topic,
                        "partition": msg.partition,
                        "offset": msg.offset,
                    }
                )
        imputed = sum(1 for n in decoded.missing if n)
        return BatchResult(predictions, dead, imputed)

    def _score_rows(
        self, matrix: np.ndarray, rows: list[int], messages: list[Message], dead: list[tuple[Message, str]]
    ) -> tuple[list[Any], list[float], list[int]]:
        labels: list[Any] = []
        scores: list[float] = []
        good: list[int] = []
        for j in range(len(rows)):
            try:
                label, score = self.model.predict(matrix[j : j + 1])
            except Exception as err:  # noqa: BLE001
                dead.append((messages[rows[j]], f"model could not score the record: {err}"))
                continue
            labels.append(label[0])
            scores.append(float(score[0]))
            good.append(j)
        return labels, scores, good

    def write(self, result: BatchResult) -> None:
        """Store, publish and dead-letter one batch's results; durable when this returns."""
        self.store.write(result.predictions)
        for row in result.predictions:
            self.producer.send(self.predictions_topic, encode_prediction(row), key=row["record_id"].encode())
        for msg, reason in result.dead:
            headers = dict(msg.headers)
            headers[REASON_HEADER] = reason.encode()
            headers["kstream-source"] = f"{msg.topic}/{msg.partition}/{msg.offset}".encode()
            self.producer.send(self.dlq_topic, msg.value if msg.value is not None else b"", key=msg.key, headers=headers)
        self.producer.flush()

    def step(self) -> int:
        """Poll once and handle what came; returns the number of messages handled."""
        messages = self.consumer.poll(self.batch_size, self.poll_timeout_ms)
        if not messages:
            return 0
        result = self.process(messages)
        self.write(result)
        self.consumer.commit()
        self._count(messages, result)
        return len(messages)

    def _count(self, messages: list[Message], result: BatchResult) -> None:
        s = self.stats
        s.batches += 1
        s.records += len(messages)
        s.predicted += len(result.predictions)
        s.dead_lettered += len(result.dead)
        s.imputed += result.imputed
        for _, reason in result.dead:
            kind = reason.split(":")[0]
            s.dlq_reasons[kind] = s.dlq_reasons.get(kind, 0) + 1
        if result.dead:
            log.warning("sent %d records to %s: %s", len(result.dead), self.dlq_topic, result.dead[0][1])

    def run(
        self,
        max_records: int | None = None,
        idle_timeout_s: float | None = None,
        on_batch: Callable[[int], None] | None = None,
        handle_signals: bool = False,
    ) -> DetectorStats:
        """Loop until stopped, ``max_records`` handled, or no message for ``idle_timeout_s``.

        Idle time counts only while the group has assigned partitions to this
        detector, so waiting for a rebalance (after a crashed peer) is not idleness.
        """
        previous: dict[int, Any] = {}
        if handle_signals and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                previous[sig] = signal.signal(sig, lambda *_: self.stop())
        start = time.perf_counter()
        last_message = start
        try:
            while not self._stop.is_set():
                handled = self.step()
                now = time.perf_counter()
                if handled or not self.consumer.assigned():
                    last_message = now  # idleness counts only while partitions are assigned
                if handled and on_batch:
                    on_batch(handled)
                if max_records is not None and self.stats.records >= max_records:
                    break
                if idle_timeout_s is not None and now - last_message >= idle_timeout_s:
                    log.info("no message for %.1fs; stopping", idle_timeout_s)
                    break
        finally:
            self.stats.seconds = time.perf_counter() - start
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        log.info(
            "detector done: %d records, %d predicted, %d dead-lettered, %d imputed",
            self.stats.records,
            self.stats.predicted,
            self.stats.dead_lettered,
            self.stats.imputed,
        )
        return self.stats


def _send_ns(msg: Message) -> int | None:
    raw = msg.headers.get(SEND_TIME_HEADER)
    try:
        return int(raw) if raw is not None else None
    except ValueError:
        return None
