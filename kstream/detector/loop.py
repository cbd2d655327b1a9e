"""The detector: consume flows, classify them in micro-batches, write predictions.

One loop iteration handles one poll: decode every value into one feature
matrix in the model card's order, make one model call for the whole batch,
write the predictions to the results store, publish them and the dead letters
(records it could not read, decode or score, with the reason in a header),
wait until Kafka acknowledged every one, and only then commit the batch's
offsets. :meth:`Detector.run` polls, decodes and scores the next batch on a
read-ahead thread (:mod:`kstream.detector.readahead`) while this one is written, published
and committed; the order store -> publish acknowledged -> commit holds for every batch. A crash
at any point therefore loses nothing: uncommitted records are consumed again after a restart
and the store's upsert on the source identity keeps one row per record; the predictions and
dead-letter topics may then hold duplicates of that one batch (deduplicate on the source identity).

A store it cannot write, or publishes Kafka does not acknowledge, are retried
with backoff until ``outage_timeout_s``; then the detector stops with one line
and commits nothing. A commit refused after a rebalance is not an error: the
batch goes to the partition's new owner. SIGINT and SIGTERM finish the batch in
hand, commit and close.

With a drift monitor (:class:`~kstream.drift.monitor.DriftMonitor`), each batch's predicted rows, labels
and scores feed it as whole arrays; every window it closes is stored (the store's ``drift``
table) and published to the drift topic, and every alert rule that fires on it publishes an
alert to the alerts topic, in the same write step as the batch, before the commit. A window
closed by time while no record comes is written the same way. A restarted detector starts a
new monitor (its windows carry another monitor id): drift windows are not replayed.

With a label stream (:class:`~kstream.detector.labels.LabelStream`), the consumer reads the labels topic too:
each batch's labels are read with its flows (a bad one is dead-lettered with its reason), joined to the
predictions by record id on this thread, in batch order, and stored with their join and the prequential
windows they closed, in the same write step as the batch, before the commit; the windows are published to
the prequential topic. A restarted detector rebuilds the join from the store, so no label is lost or
counted twice.

Bad input never stops it: :meth:`Detector.process` turns every message, whatever its
bytes, key or headers, into exactly one prediction row (or, on the labels topic, one label) or exactly one
dead letter (:mod:`kstream.messages.deadletters`), which always fits the DLQ's record size.

A new model version takes over at a batch boundary (:meth:`Detector.swap`; with ``model_check_s`` a
thread watches the model's folder for one, :mod:`kstream.detector.hotswap`): each batch is scored by the
one version it started with, and its rows and windows carry that version's ``model_id``. Drift windows
never span a swap: the open window closes with the old version, and the monitor compares the new
version's batches with the new card's reference from then on.

For fault-injection tests, ``crash_at`` (:mod:`kstream.detector.crashpoints`, ``KSTREAM_CRASH_AT``)
makes the detector kill or freeze itself at one step of one batch.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import logging
import math
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from kstream.clients import Consumer, Message, Producer, Record
from kstream.clients.records import Assignment
from kstream.detector.crashpoints import CrashPoint
from kstream.detector.hotswap import ModelWatcher, SwapCheck
from kstream.detector.labels import LabelBatch, LabelStream
from kstream.detector.readahead import ReadAhead, still_ours
from kstream.drift.alerts import AlertRule
from kstream.drift.monitor import DriftMonitor, window_row
from kstream.drift.reference import FeatureReference
from kstream.errors import KstreamError, ModelError
from kstream.messages.deadletters import DEFAULT_BUDGET, DeadLetter, DeadLetterBuilder, bounded_text
from kstream.messages.wire import SCHEMA_HEADER, SEND_TIME_HEADER, decode_flows, encode_prediction, record_id, send_time
from kstream.modeling.artifacts import ModelCard, TrainedModel
from kstream.stores.protocol import Store

__all__ = ["Detector", "DetectorStats", "BatchResult", "joined"]


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
    windows: int = 0  # drift windows closed
    drifted: int = 0  # of which drifted
    alerts: int = 0  # alerts raised
    last_window: dict[str, Any] | None = None  # the latest drift window's row
    swaps: int = 0  # model versions that took over
    refused_models: int = 0  # new versions in the model's folder that were refused
    model_ids: list[str] = field(default_factory=list)  # the versions served, in the order they took over
    labels: dict[str, int] | None = None  # with a label stream: its counts (kstream.detector.labels.LabelCounts)
    last_prequential: dict[str, Any] | None = None  # the latest prequential window's row
    learner: dict[str, Any] | None = None  # with an online learner beside it: its final state (LearnerState)
    retrains: list[dict[str, Any]] | None = None  # with a retrainer beside it: its decisions (RETRAIN_FIELDS)


@dataclass
class BatchResult:
    """What one poll produced: prediction rows and dead letters, one of them per message."""

    predictions: list[dict[str, Any]]
    dead: list[DeadLetter]
    imputed: int = 0
    matrix: np.ndarray | None = None  # the predicted rows' features, in prediction order
    labels: list[Any] = field(default_factory=list)  # their predicted labels
    scores: list[float] = field(default_factory=list)  # and scores
    windows: list[dict[str, Any]] = field(default_factory=list)  # drift windows this batch closed (store rows)
    alerts: list[dict[str, Any]] = field(default_factory=list)  # alerts raised on them
    model_id: str = ""  # the model version that scored it
    label_rows: list[dict[str, Any]] = field(default_factory=list)  # labels read (not joined yet)
    joined_labels: LabelBatch | None = None  # the labels joined and the prequential windows closed (writer's thread)


def joined(first: BatchResult, second: BatchResult) -> BatchResult:
    """Two batches' results as one (rows, dead letters, and the predicted rows' features, labels and scores
    in order), so batches that waited can be written, watched and committed together. Both must have been
    scored by one model version (the detector never joins batches across a swap).

    >>> a = BatchResult([{"id": 1}], [], 1, np.zeros((1, 2)), ["attack"], [0.9])
    >>> both = joined(a, BatchResult([], [], 0, None))
    >>> len(both.predictions), both.imputed, both.matrix.shape, both.labels
    (1, 1, (1, 2), ['attack'])
    """
    matrices = [m for m in (first.matrix, second.matrix) if m is not None and len(m)]
    matrix = np.vstack(matrices) if len(matrices) > 1 else (matrices[0] if matrices else first.matrix)
    return BatchResult(first.predictions + second.predictions, first.dead + second.dead,
                       first.imputed + second.imputed, matrix, list(first.labels) + list(second.labels),
                       list(first.scores) + list(second.scores), first.windows + second.windows,
                       first.alerts + second.alerts, model_id=second.model_id or first.model_id,
                       label_rows=first.label_rows + second.label_rows)


class Detector:
    """Classify a stream of flow messages with one model.

    ``consumer``, ``producer`` and ``store`` are kstream's thin client and sink
    objects; tests may pass fakes with the same methods for pure logic.
    ``dlq_budget`` is the largest record the DLQ takes (see
    :class:`~kstream.messages.deadletters.DeadLetterBuilder`): a budget too small for any dead
    letter is a ConfigError here, at start. ``swap_check`` is what a model must match to take over
    (default: :meth:`SwapCheck.of` ``model``); with ``model_check_s`` above 0, :meth:`run` watches the
    model's folder for a new version that often (:class:`~kstream.detector.hotswap.ModelWatcher`).
    """

    def __init__(
        self,
        model: TrainedModel,
        consumer: Consumer,
        producer: Producer,
        store: Store,
        predictions_topic: str,
        dlq_topic: str,
        batch_size: int = 500,
        poll_timeout_ms: int = 500,
        clock_ns: Callable[[], int] = time.time_ns,
        outage_timeout_s: float = 300,
        crash_at: CrashPoint | None = None,
        dlq_budget: int = DEFAULT_BUDGET,
        monitor: DriftMonitor | None = None,
        alert_rules: list[AlertRule] | tuple[AlertRule, ...] = (),
        drift_topic: str = "flows.drift",
        alerts_topic: str = "flows.alerts",
        swap_check: SwapCheck | None = None,
        model_check_s: float = 0.0,
        labels: LabelStream | None = None,
        prequential_topic: str = "flows.prequential",
    ) -> None:
        self.dead_letters = DeadLetterBuilder(dlq_budget)
        self.model = model
        self.consumer = consumer
        self.producer = producer
        self.store = store
        self.predictions_topic = predictions_topic
        self.dlq_topic = dlq_topic
        self.batch_size = batch_size
        self.poll_timeout_ms = poll_timeout_ms
        self.clock_ns = clock_ns
        self.outage_timeout_s = outage_timeout_s
        self.crash_at = crash_at
        self.stats = DetectorStats()
        self.monitor = monitor
        self.alert_rules = list(alert_rules)
        self.drift_topic = drift_topic
        self.alerts_topic = alerts_topic
        self.monitor_id = uuid.uuid4().hex[:12]  # this detector's windows, in the store and on the drift topic
        self.labels = labels
        self.prequential_topic = prequential_topic
        self.last_result: BatchResult | None = None  # the latest batch handled (for live views)
        self.swap_check = swap_check or SwapCheck.of(model, drift=monitor is not None)
        self.model_check_s = float(model_check_s)
        self.stats.model_ids.append(model.card.model_id)
        #: the version given to :meth:`swap` that takes over at the next batch, with its drift reference
        self._pending: tuple[TrainedModel, FeatureReference | None] | None = None
        self._swap_lock = threading.Lock()
        self._watched = model.card.model_id  # the version whose reference the drift monitor compares with
        self._references: dict[str, FeatureReference] = {}  # of versions that took over and are not watched yet
        self._stop = threading.Event()
        #: batches read ahead but not handled when :meth:`run` returned, as (messages, rebalances): handled first next
        self._backlog: list[tuple[list[Message], int]] = []

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def stop(self) -> None:
        """Ask the loop to finish its current batch, commit and return."""
        self._stop.set()

    def swap(self, model: TrainedModel) -> None:
        """Serve ``model`` from the next batch on (a hot-swap); returns at once, from any thread.

        The batch being scored finishes with the version it started with; every later batch is
        scored by ``model`` (by the last one given, when this is called again before the next batch).
        Raises ModelError, naming what does not fit and the fix, when ``model`` cannot score this
        stream (:class:`~kstream.detector.hotswap.SwapCheck`); the served model is then unchanged. A
        model from disk should come through :func:`~kstream.modeling.artifacts.load_dir` (the trust
        checks), as the folder watcher's do.
        """
        problems = self.swap_check.problems(model.card)
        if problems:
            raise ModelError(f"{model.card.model_id} cannot take over this stream: {'; '.join(problems)}; train "
                             f"one for it with `{self.model.train_command()}`")
        reference = model.reference() if self.monitor is not None else None
        with self._swap_lock:
            same = model.card.sha256 == self.model.card.sha256
            self._pending = None if same else (model, reference)  # the served version again: nothing to do

    def next_card(self) -> ModelCard:
        """The card of the version that scores the next batch (the one given to :meth:`swap`, or the served one)."""
        pending = self._pending
        return pending[0].card if pending is not None else self.model.card

    def _count_refused(self) -> None:
        self.stats.refused_models += 1  # only the watcher's thread counts these

    def _serving(self) -> TrainedModel:
        """The model that scores the next batch: a model given to :meth:`swap` takes over here, between batches."""
        if self._pending is None:
            return self.model
        with self._swap_lock:
            if self._pending is None:
                return self.model
            (new, reference), old = self._pending, self.model
            self.model = new  # before the pending one is cleared: a batch starting now gets one or the other
            self._pending = None
            if reference is not None:
                self._references[new.card.model_id] = reference
            self.stats.swaps += 1
            if new.card.model_id not in self.stats.model_ids:
                self.stats.model_ids.append(new.card.model_id)
            if self.labels is not None:  # labels may name the classes of either version
                self.labels.classes += [c for c in new.card.label_classes if c not in self.labels.classes]
        log.info("model %s takes over from %s after batch %d", new.card.model_id, old.card.model_id,
                 self.stats.batches)
        return new

    def process(self, messages: list[Message]) -> BatchResult:
        """Decode, score and shape one batch (no I/O); never raises.

        Every message ends as exactly one prediction row or exactly one dead letter, scored by the
        one model version the batch starts with (``result.model_id``).
        Should the batch fail in a way no record explains (a bug), each message is
        handled alone and those that still fail are dead-lettered with the error.
        """
        model = self._serving()
        try:
            return self._process(messages, model)
        except Exception:  # noqa: BLE001 - no record may stop the detector
            log.exception("batch of %d failed unexpectedly; handling its messages one by one", len(messages))
            result = BatchResult([], [], model_id=model.card.model_id)
            for msg in messages:
                try:
                    one = self._process([msg], model)
                except Exception as one_err:  # noqa: BLE001
                    result.dead.append(self._dead_letter(msg, f"the detector failed on this record: {one_err!s:.300}"))
                    continue
                result.predictions += one.predictions
                result.dead += one.dead
                result.imputed += one.imputed
                if one.matrix is not None and len(one.matrix):
                    result.matrix = one.matrix if result.matrix is None else np.vstack([result.matrix, one.matrix])
                result.labels += one.labels
                result.scores += one.scores
                result.label_rows += one.label_rows
            return result

    def _process(self, messages: list[Message], model: TrainedModel) -> BatchResult:
        label_messages: list[Message] = []
        if self.labels is not None:
            labels_topic = self.labels.labels_topic
            flows = [m for m in messages if m.topic != labels_topic]
            if len(flows) < len(messages):
                label_messages = [m for m in messages if m.topic == labels_topic]
                messages = flows
        result = self._process_flows(messages, model)
        if label_messages:
            self._process_labels(label_messages, result)
        return result

    def _process_labels(self, messages: list[Message], result: BatchResult) -> None:
        """Read a batch's label messages onto ``result``: label rows, and dead letters for those it cannot take."""
        assert self.labels is not None
        readable = [m for m in messages if m.error is None]
        result.dead += [self._dead_letter(m, f"the Kafka client could not read this record: {m.error}")
                        for m in messages if m.error is not None]
        rows, bad = self.labels.decode(readable)
        result.label_rows += rows
        result.dead += [self._dead_letter(m, reason) for m, reason in bad]

    def _process_flows(self, messages: list[Message], model: TrainedModel) -> BatchResult:
        features = model.features
        # a record the Kafka client could not read is a placeholder: no value to decode
        decoded = decode_flows([m.value if m.error is None else None for m in messages], features,
                               schemas=[m.headers.get(SCHEMA_HEADER) for m in messages])
        dead = [
            self._dead_letter(messages[i], reason if messages[i].error is None else
                              f"the Kafka client could not read this record: {messages[i].error}")
            for i, reason in decoded.errors
        ]
        model_id = model.card.model_id
        predictions: list[dict[str, Any]] = []
        kept: list[int] = []
        kept_labels: list[Any] = []
        kept_scores: list[float] = []
        if decoded.rows:
            labels: np.ndarray | list[Any]  # the batch's arrays, or lists when scored row by row
            scores: np.ndarray | list[float]
            try:
                labels, scores = model.predict(decoded.matrix)
            except Exception as err:  # noqa: BLE001 - one bad row must not sink the batch
                log.warning("batch scoring failed (%s); scoring its %d rows one by one", err, len(decoded.rows))
                labels, scores, decoded_rows = self._score_rows(model, decoded.matrix, decoded.rows, messages, dead)
            else:
                decoded_rows = list(range(len(decoded.rows)))
            now = self.clock_ns()
            for j, label, score in zip(decoded_rows, labels, scores):
                msg = messages[decoded.rows[j]]
                score = float(score)
                if not math.isfinite(score):  # SQLite would store NULL; a score must be a probability
                    dead.append(self._dead_letter(msg, f"model gave a non-finite score: {score}"))
                    continue
                predictions.append(
                    {
                        "record_id": record_id(msg.key, msg.topic, msg.partition, msg.offset),
                        "predicted_label": str(label),
                        "score": score,
                        "model_id": model_id,
                        "send_ns": send_time(msg.headers.get(SEND_TIME_HEADER)),
                        "predicted_ns": now,
                        "topic": msg.topic,
                        "topic_id": msg.topic_id,
                        "partition": msg.partition,
                        "offset": msg.offset,
                    }
                )
                kept.append(j)
                kept_labels.append(label)
                kept_scores.append(score)
        imputed = sum(1 for n in decoded.missing if n)
        return BatchResult(predictions, dead, imputed, decoded.matrix[kept], kept_labels, kept_scores,
                           model_id=model_id)

    def _dead_letter(self, msg: Message, reason: str) -> DeadLetter:
        """The dead letter of ``msg``; a bare one (source and reason only) if building it fails."""
        try:
            return self.dead_letters.build(msg, reason)
        except Exception as err:  # noqa: BLE001 - a bug in the builder must not lose the record
            log.exception("could not build a dead letter for %s/%s/%s", msg.topic, msg.partition, msg.offset)
            bare = Message(msg.topic, msg.partition, msg.offset, None, None, {}, msg.topic_id)
            reason = f"{bounded_text(reason, 512)} (and its dead letter failed: {err!s:.200})"
            return self.dead_letters.build(bare, reason)

    def _score_rows(
        self, model: TrainedModel, matrix: np.ndarray, rows: list[int], messages: list[Message], dead: list[DeadLetter]
    ) -> tuple[list[Any], list[float], list[int]]:
        labels: list[Any] = []
        scores: list[float] = []
        good: list[int] = []
        for j in range(len(rows)):
            try:
                label, score = model.predict(matrix[j : j + 1])
            except Exception as err:  # noqa: BLE001
                dead.append(self._dead_letter(messages[rows[j]], f"model could not score the record: {err}"))
                continue
            labels.append(label[0])
            scores.append(float(score[0]))
            good.append(j)
        return labels, scores, good

    def watch(self, result: BatchResult | None = None, now_ns: int | None = None) -> None:
        """Feed a batch's predicted rows to the drift monitor (none: close a window whose time is up) and
        put the windows it closed, and the alerts their rules raise, on ``result``. Never raises: a
        failure is logged and the batch is handled without drift.

        The first batch of a version that took over closes the open window (with the version before)
        and rebases the monitor on the new card's reference."""
        if self.monitor is None or result is None:
            return
        try:
            now = self.clock_ns() if now_ns is None else now_ns
            if result.matrix is None or not len(result.matrix):
                closed = self.monitor.tick(now)
            else:
                if result.model_id and result.model_id != self._watched:
                    closed = self.monitor.rebase(self._references.pop(result.model_id))
                    self._add_windows(closed, result)
                    self._watched = result.model_id
                closed = self.monitor.update(result.matrix, np.asarray(result.labels).astype(str),
                                             np.asarray(result.scores, dtype=np.float64), now_ns=now)
            self._add_windows(closed, result)
        except Exception:  # noqa: BLE001 - drift monitoring must never stop detection
            log.exception("drift monitoring failed on a batch; the batch is handled without it")

    def _add_windows(self, closed: list[Any], result: BatchResult) -> None:
        """Closed windows as store rows on ``result``, with the alerts the rules raise on them."""
        model_id = self._watched
        topic = self.consumer.topics[0] if getattr(self.consumer, "topics", None) else ""
        for window in closed:
            fired = [alert for rule in self.alert_rules if (alert := rule.check(window)) is not None]
            result.windows.append(window_row(window, self.monitor_id, topic, model_id, [a.rule for a in fired]))
            result.alerts += [{**a.to_dict(), "monitor": self.monitor_id, "topic": topic, "model_id": model_id}
                              for a in fired]

    def join(self, result: BatchResult) -> None:
        """Join a batch's labels and predictions (with a label stream), on this thread in batch order; the labels
        to store and the prequential windows closed go on ``result``. A store that fails stops the detector as a
        write would; a failure of the join itself dead-letters the batch's labels (and the join starts over from
        the store), never the batch."""
        if self.labels is None:
            return
        assignment = getattr(self.consumer, "assignment", None)
        partitions = None
        if isinstance(assignment, Assignment):
            partitions = {p for t, p in assignment.owned if t in (self.labels.topic, self.labels.labels_topic)}
        try:
            result.joined_labels = self.labels.handle(result.predictions, result.label_rows,
                                               getattr(self.consumer, "rebalances", None), partitions or None)
        except KstreamError:
            raise
        except Exception as err:  # noqa: BLE001 - a label must never stop the detector
            log.exception("joining %d labels failed; they are dead-lettered and the join is rebuilt from the store",
                          len(result.label_rows))
            self.labels.forget()
            for row in result.label_rows:
                msg = Message(row["label_topic"], row["label_partition"], row["label_offset"],
                              row["record_id"].encode(), row["true_label"].encode(), {}, row["label_topic_id"])
                result.dead.append(self._dead_letter(msg, f"the detector failed to join this label: {err!s:.300}"))
            result.label_rows = []

    def write(self, result: BatchResult) -> None:
        """Store, publish and dead-letter one batch's results; durable and acknowledged when this returns."""
        self.store.write(result.predictions)
        if result.windows:
            self.store.write_windows(result.windows)
        joined = result.joined_labels
        if joined is not None:
            self.store.write_labels(joined.new)
            self.store.join_labels(joined.joins)
            self._crash_point("after-labels")
            self.store.write_prequential(joined.windows)
        self._crash_point("after-store")
        records = [Record(self.predictions_topic, encode_prediction(row), row["record_id"].encode())
                   for row in result.predictions]
        records += [Record(self.dlq_topic, letter.value, letter.key, tuple(letter.headers)) for letter in result.dead]
        records += [Record(self.drift_topic, orjson.dumps(row), row["monitor"].encode()) for row in result.windows]
        records += [Record(self.alerts_topic, orjson.dumps(alert), alert["monitor"].encode())
                    for alert in result.alerts]
        if joined is not None:
            records += [Record(self.prequential_topic, orjson.dumps(row), f"{row['topic']}/{row['partition']}".encode())
                        for row in joined.windows]
        self.producer.publish(records, self.outage_timeout_s)
        self._crash_point("after-publish")

    def step(self) -> int:
        """Poll once and handle what came, on this thread; returns the number of messages handled."""
        # batches an earlier run read ahead first, for the partitions still read from where they were
        while self._backlog:
            messages, read_at = self._backlog.pop(0)
            messages = still_ours(self.consumer, messages, read_at, self._stop)
            if messages:
                self._finish(messages, self.process(messages), self.consumer.commit)
                return len(messages)
        messages = self.consumer.poll(self.batch_size, self.poll_timeout_ms)
        if not messages:
            if self.monitor is not None and self.monitor.window_ns is not None:
                self._write_windows(BatchResult([], []))  # a window of seconds may be up
            return 0
        self._finish(messages, self.process(messages), self.consumer.commit)
        return len(messages)

    def _finish(self, messages: list[Message], result: BatchResult, commit: Callable[..., bool]) -> bool:
        """Store, publish and wait for the acknowledgements, then commit the batch's offsets (in that order).

        Returns False when the commit was refused after a rebalance."""
        self.watch(result)  # on this thread, in the order batches are written
        self.join(result)
        self.write(result)
        offsets: dict[tuple[str, int], int] = {}
        for m in messages:
            key = (m.topic, m.partition)
            offsets[key] = max(offsets.get(key, 0), m.offset + 1)
        committed = commit(offsets, self.outage_timeout_s)
        self._crash_point("after-commit")
        self._count(messages, result)
        self.last_result = result
        return committed is not False

    def _write_windows(self, result: BatchResult) -> None:
        """Close (by time, or at the end with :meth:`finish`) and write windows outside of a batch."""
        self.watch(result)
        if result.windows:
            self.write(result)
            self._count_windows(result)

    def finish(self) -> None:
        """Write the open drift and prequential windows, if any (at the end of a run); never raises."""
        if self.labels is not None:
            try:
                windows = self.labels.finish()
                if windows:
                    result = BatchResult([], [], joined_labels=LabelBatch(windows=windows))
                    self.write(result)
                    self._count_labels(result)
            except Exception:  # noqa: BLE001 - the last window is a report, not a delivery
                log.exception("could not write the last prequential windows")
        if self.monitor is None:
            return
        try:
            result = BatchResult([], [])
            self._add_windows(self.monitor.flush(), result)
            if result.windows:
                self.write(result)
                self._count_windows(result)
        except Exception:  # noqa: BLE001 - the last window is a report, not a delivery
            log.exception("could not write the last drift window")

    def _count_windows(self, result: BatchResult) -> None:
        s = self.stats
        s.windows += len(result.windows)
        s.drifted += sum(1 for w in result.windows if w["drifted"])
        s.alerts += len(result.alerts)
        if result.windows:
            s.last_window = result.windows[-1]
        for alert in result.alerts:
            log.warning("alert %s on window %d of %s: %s = %.4f", alert["rule"], alert["window_index"],
                        alert["monitor"], alert["metric"], alert["value"])

    def _crash_point(self, point: str) -> None:
        if self.crash_at is not None and self.crash_at[:2] == (point, self.stats.batches + 1):
            how = "crashing" if self.crash_at.signum == signal.SIGKILL else "freezing"
            log.warning("%s at %s of batch %d, as KSTREAM_CRASH_AT asks", how, point, self.stats.batches + 1)
            os.kill(os.getpid(), self.crash_at.signum)

    def _count_labels(self, result: BatchResult) -> None:
        if self.labels is None:
            return
        prefix = self.labels.labels_topic + "/"
        self.labels.counts.dead_lettered += sum(1 for letter in result.dead if letter.source.startswith(prefix))
        self.stats.labels = dataclasses.asdict(self.labels.counts)
        if result.joined_labels is not None and result.joined_labels.windows:
            self.stats.last_prequential = result.joined_labels.windows[-1]

    def _count(self, messages: list[Message], result: BatchResult) -> None:
        s = self.stats
        s.batches += 1
        s.records += len(messages)
        s.predicted += len(result.predictions)
        s.dead_lettered += len(result.dead)
        s.imputed += result.imputed
        self._count_windows(result)
        self._count_labels(result)
        for letter in result.dead:
            kind = letter.reason.split(":")[0]
            s.dlq_reasons[kind] = s.dlq_reasons.get(kind, 0) + 1
        if result.dead:
            log.warning("sent %d records to %s: %s", len(result.dead), self.dlq_topic, result.dead[0].reason)

    def run(
        self,
        max_records: int | None = None,
        idle_timeout_s: float | None = None,
        on_batch: Callable[[int], None] | None = None,
        handle_signals: bool = False,
    ) -> DetectorStats:
        """Loop until stopped, ``max_records`` handled, or no new record for ``idle_timeout_s``.

        Idle time counts only while this detector has partitions, has read all they hold, and
        the cluster answers: waiting for a rebalance or for a broker to come back is not idleness.
        With ``model_check_s`` set, a thread watches the model's folder while it runs.
        """
        previous: dict[signal.Signals, Any] = {}
        if handle_signals and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                previous[sig] = signal.signal(sig, lambda *_: self.stop())
        start = time.perf_counter()
        # the next batch is polled, decoded and scored on the read-ahead thread while this one is written
        reader = ReadAhead(self.consumer, self.process, self.batch_size, self.poll_timeout_ms,
                           backlog=self._backlog).start()
        watcher = None
        if self.model_check_s > 0:
            watcher = ModelWatcher(self.model.path, self.swap, self.next_card, self.model_check_s,
                                   on_refused=self._count_refused).start()
        refused_at = -1  # the assignment of the last batch whose commit the group refused
        held: collections.deque = collections.deque()  # batches taken out of the read-ahead's line, in order
        try:
            while not self._stop.is_set():
                item = held.popleft() if held else reader.next(0.05)
                if item is not None:
                    messages, result, read_at = item
                    if read_at <= refused_at:
                        # a refused commit means the group is changing: make room for the read-ahead thread to
                        # poll (which joins the new assignment), wait for it once, then keep only what is ours
                        held.extend(reader.drain())
                        still_ours(self.consumer, [], read_at, self._stop, expect_change=True)
                        refused_at = -1
                    elif not held:
                        room = self.batch_size - len(messages)
                        if max_records is not None:
                            room = min(room, max_records - self.stats.records - len(messages))
                        same_model = functools.partial(_scored_by, result.model_id)
                        for more, more_result, _ in reader.more(read_at, room, same_model):
                            # small batches that wait are written as one: one store transaction, flush, commit
                            messages = messages + more
                            result = joined(result, more_result)
                    mine = still_ours(self.consumer, messages, read_at, self._stop)
                    if not mine:
                        continue
                    if len(mine) < len(messages):
                        messages, result = mine, self.process(mine)
                    if not self._finish(messages, result, functools.partial(reader.commit, rebalances=read_at)):
                        refused_at = read_at
                    if on_batch:
                        on_batch(len(messages))
                elif self.monitor is not None and self.monitor.window_ns is not None:
                    self._write_windows(BatchResult([], []))  # a window of seconds may be up
                if item is None and self.labels is not None:
                    self.labels.expire()  # what waited past the bounds expires while no record comes
                    self.stats.labels = dataclasses.asdict(self.labels.counts)
                if item is None and idle_timeout_s is not None and reader.idle_s() >= idle_timeout_s:
                    log.info("no new record for %.1fs; stopping", idle_timeout_s)
                    break
                if max_records is not None and self.stats.records >= max_records:
                    break
            self.finish()
        finally:
            if watcher is not None:
                watcher.stop()
            self._backlog = [(m, read_at) for m, _, read_at in held] + reader.stop()
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


def _scored_by(model_id: str, result: BatchResult) -> bool:
    """Whether ``result`` was scored by the version ``model_id`` (batches of two versions are not joined)."""
    return result.model_id == model_id
