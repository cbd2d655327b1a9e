"""Labels joined to predictions by record id, in bounded memory, durable through the store.

The detector reads the labels topic (:mod:`kstream.messages.labels`) with the flows topic, in the same
consumer, group and polls: a batch's labels are read, joined, stored and committed with its flows, in the
order the detector's delivery guarantee already keeps (store, publish, acknowledged, commit).

:class:`LabelJoin` is the join itself, with no I/O. Predictions wait for their label in insertion order
(at most ``max_pending`` of them, none older than ``max_age_s`` seconds): a label for a waiting prediction
joins it; a prediction pushed out by the bound expires (counted in ``expired``). A label whose prediction is
not waiting (it comes first, with a delay of 0 or a lagging flows topic) waits for it under the same bounds
and then expires as ``unknown``. Ids joined lately are remembered (as many), so a prediction read again
after a restart does not wait for a label that has come already.

:class:`LabelStream` is the detector's side of it. Each batch: the labels the store has already (one
look-up of the batch's ids) are a redelivery when read from the same place (skipped: a restart reads again
what it had not committed) and a ``duplicate`` otherwise (counted, never joined twice); the others are
joined, placed in their prequential window (:mod:`kstream.detector.prequential`) and stored with their
join, before the batch's commit. The store is the durable side: every accepted label is stored once
(keyed by flows topic and record id), with the window it counted in, so after a crash or a rebalance the
join is rebuilt from the store (:meth:`LabelStream.rebuild`: the predictions no label reached, the labels
no prediction reached, within the bounds; the open window's labels) and nothing is lost or counted twice.
A label's window is per labels partition, so one detector owns each sequence; with more than one
partition, labels must be co-partitioned with their flows (same partition count, the producer's default
key partitioner), which the generator's labels are.

>>> join = LabelJoin(max_pending=2, max_age_s=60)
>>> join.predicted([dict(record_id=r, predicted_label="attack", model_id="m", send_ns=0, predicted_ns=0,
...                      partition=0, offset=i) for i, r in enumerate("abc")], now_ns=0)  # "a" is pushed out
[]
>>> label = dict(record_id="c", true_label="attack", received_ns=10**9, label_partition=0)
>>> [(row["record_id"], row["predicted_label"], row["delay_records"]) for row in join.labelled([label], 10**9)]
[('c', 'attack', 0)]
>>> join.pending, join.expired
(1, 1)
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from kstream.detector.prequential import PrequentialWindows
from kstream.messages.labels import decode_labels
from kstream.stores.protocol import LABEL_FIELDS, Store

__all__ = ["LabelJoin", "LabelStream", "LabelBatch", "LabelCounts"]

log = logging.getLogger(__name__)

#: The fields of a prediction the join keeps while it waits for its label.
_KEPT = ("predicted_label", "model_id", "send_ns", "predicted_ns", "partition", "offset")


class LabelJoin:
    """Predictions and labels waiting for each other, bounded (see the module); no I/O."""

    def __init__(self, max_pending: int, max_age_s: float) -> None:
        if max_pending < 1 or not max_age_s > 0:
            raise ValueError(f"a label join keeps at least one record for some time, not {max_pending}, {max_age_s}")
        self.max_pending, self.max_age_ns = int(max_pending), int(max_age_s * 1e9)
        #: record id -> the prediction's kept fields, oldest first
        self.waiting: collections.OrderedDict[str, tuple[Any, ...]] = collections.OrderedDict()
        #: record id -> a stored label row no prediction has reached, oldest first
        self.labels: collections.OrderedDict[str, dict[str, Any]] = collections.OrderedDict()
        self.joined: collections.OrderedDict[str, None] = collections.OrderedDict()  # ids joined lately
        self.positions: dict[int, int] = {}  # flows partition -> highest offset predicted
        self.expired = 0  # predictions whose label did not come within the bounds
        self.unknown = 0  # labels whose prediction did not come within the bounds

    @property
    def pending(self) -> int:
        """Predictions waiting for their label."""
        return len(self.waiting)

    def predicted(self, rows: Iterable[dict[str, Any]], now_ns: int) -> list[dict[str, Any]]:
        """Take a batch's prediction rows; returns the waiting labels they join (their rows, join fields set)."""
        out: list[dict[str, Any]] = []
        waiting, labels, positions = self.waiting, self.labels, self.positions
        for row in rows:
            rid = row["record_id"]
            partition, offset = row["partition"], row["offset"]
            if offset > positions.get(partition, -1):
                positions[partition] = offset
            if rid in waiting or rid in self.joined:  # read again after a restart: waits, or is joined, already
                continue
            label = labels.pop(rid, None)
            kept = tuple(row[k] for k in _KEPT)
            if label is not None:
                out.append(self._join(label, kept))
            else:
                waiting[rid] = kept
        self._bound(now_ns)
        return out

    def labelled(self, labels: Iterable[dict[str, Any]], now_ns: int) -> list[dict[str, Any]]:
        """Take new labels (rows of :data:`~kstream.stores.protocol.LABEL_FIELDS`, not stored before): the
        ones a waiting prediction joins get their join fields and are returned; the others wait."""
        out: list[dict[str, Any]] = []
        for label in labels:
            kept = self.waiting.pop(label["record_id"], None)
            if kept is not None:
                out.append(self._join(label, kept))
            else:
                self.labels[label["record_id"]] = label
        self._bound(now_ns)
        return out

    def _join(self, label: dict[str, Any], kept: tuple[Any, ...]) -> dict[str, Any]:
        predicted_label, model_id, send_ns, predicted_ns, partition, offset = kept
        label.update(predicted_label=predicted_label, model_id=model_id, joined_ns=max(label["received_ns"],
                     predicted_ns), delay_records=max(0, self.positions.get(partition, offset) - offset),
                     delay_s=None if send_ns is None else (label["received_ns"] - send_ns) / 1e9)
        self.joined[label["record_id"]] = None
        if len(self.joined) > self.max_pending:
            self.joined.popitem(last=False)
        return label

    def expire(self, now_ns: int) -> None:
        """Let what has waited longer than the bound expire (counted)."""
        self._bound(now_ns)

    def _bound(self, now_ns: int) -> None:
        oldest = now_ns - self.max_age_ns
        waiting, labels = self.waiting, self.labels
        while waiting and (len(waiting) > self.max_pending or next(iter(waiting.values()))[3] < oldest):
            waiting.popitem(last=False)
            self.expired += 1
        while labels and (len(labels) > self.max_pending or next(iter(labels.values()))["received_ns"] < oldest):
            labels.popitem(last=False)
            self.unknown += 1


@dataclass
class LabelCounts:
    """What a detector's labels came to: accepted (stored), joined, duplicates (another label for an id that has one),
    expired predictions and unknown labels (their other half never came within the bounds), dead-lettered labels,
    redeliveries skipped, and predictions waiting for a label now."""

    accepted: int = 0
    joined: int = 0
    duplicates: int = 0
    expired: int = 0
    unknown: int = 0
    dead_lettered: int = 0
    redelivered: int = 0
    pending: int = 0
    windows: int = 0  # prequential windows closed


@dataclass
class LabelBatch:
    """One batch's labels, joined: rows to store (``new``: labels read now; ``joins``: labels stored before that a
    prediction of this batch joined) and the prequential windows it closed (rows to store and publish)."""

    new: list[dict[str, Any]] = field(default_factory=list)
    joins: list[dict[str, Any]] = field(default_factory=list)
    windows: list[dict[str, Any]] = field(default_factory=list)
    duplicates: int = 0
    redelivered: int = 0


class LabelStream:
    """The detector's labels: read, joined to its predictions through ``store``, scored in prequential windows.

    ``topic`` is the flows topic, ``labels_topic`` the labels topic, ``classes`` the classes a label may name
    (the model card's), ``task`` the model's task; ``window`` labels per prequential window; ``max_pending`` and
    ``max_age_s`` the join's bounds (:class:`LabelJoin`).
    """

    def __init__(self, store: Store, topic: str, labels_topic: str, classes: Sequence[str], task: str,
                 window: int = 1000, max_pending: int = 100_000, max_age_s: float = 3600.0,
                 clock_ns: Callable[[], int] = time.time_ns) -> None:
        self.store, self.topic, self.labels_topic = store, topic, labels_topic
        self.classes, self.task = list(classes), task
        self.max_pending, self.max_age_s = int(max_pending), float(max_age_s)
        self.clock_ns = clock_ns
        self.window = int(window)
        self.join = LabelJoin(max_pending, max_age_s)
        self.windows = PrequentialWindows(topic, window, task)
        self.counts = LabelCounts()
        self._built_at: int | None = None  # the assignment the join state was rebuilt for
        self._since = LabelCounts()  # the counts when the last window closed

    def decode(self, messages: Sequence[Any]) -> tuple[list[dict[str, Any]], list[tuple[Any, str]]]:
        """A batch's label messages as label rows (no join yet), and ``(message, reason)`` for the others; no I/O."""
        decoded = decode_labels([m.key for m in messages], [m.value for m in messages],
                                [m.headers for m in messages], self.classes)
        now = self.clock_ns()
        rows = []
        for i, rid, label, stamp in decoded.labels:
            m = messages[i]
            rows.append({"topic": self.topic, "record_id": rid, "true_label": label, "label_ns": stamp,
                         "received_ns": now, "label_topic": m.topic, "label_topic_id": m.topic_id,
                         "label_partition": m.partition, "label_offset": m.offset, "window": None,
                         "predicted_label": None, "model_id": None, "joined_ns": None, "delay_records": None,
                         "delay_s": None})
        return rows, [(messages[i], reason) for i, reason in decoded.errors]

    def handle(self, predictions: Sequence[dict[str, Any]], labels: Sequence[dict[str, Any]],
               assignment: int | None = None, partitions: Collection[int] | None = None) -> LabelBatch:
        """Join a batch: its prediction rows, then its decoded labels (:meth:`decode`). ``assignment`` is the
        consumer's count of assignments and ``partitions`` the partitions it holds (None: all): the join state is
        rebuilt from the store first when the assignment changed since it was last built."""
        out = LabelBatch()
        if self._built_at is None or (assignment is not None and assignment != self._built_at):
            out.windows += self.rebuild(partitions)
            self._built_at = assignment if assignment is not None else 0
        now = self.clock_ns()
        joined = self.join.predicted(predictions, now)
        fresh = self._fresh(labels, out)
        newly = self.join.labelled(fresh, now)
        out.joins, out.new = joined, fresh
        self.counts.accepted += len(fresh)
        self.counts.joined += len(joined) + len(newly)
        self.counts.duplicates += out.duplicates
        self.counts.redelivered += out.redelivered
        self._tally()
        for row in joined + newly:
            out.windows += self._close_all(self.windows.place(row))
        return out

    def _fresh(self, labels: Sequence[dict[str, Any]], out: LabelBatch) -> list[dict[str, Any]]:
        """The labels of a batch not stored before: a label the store has from the same place is a redelivery, one
        from elsewhere (or a second one in the batch) a duplicate."""
        if not labels:
            return []
        stored = self.store.known_labels(self.topic, [row["record_id"] for row in labels])
        fresh, seen = [], set()
        for row in labels:
            rid = row["record_id"]
            where = stored.get(rid)
            if where == f"{row['label_topic']}/{row['label_partition']}/{row['label_offset']}":
                out.redelivered += 1
            elif where is not None or rid in seen:
                out.duplicates += 1
            else:
                seen.add(rid)
                fresh.append(row)
        return fresh

    def forget(self) -> None:
        """Rebuild the join from the store before the next batch (after a failure left it in doubt)."""
        self._built_at = None

    def expire(self) -> None:
        """Let what waited past the bounds expire now (between batches, when no record comes)."""
        self.join.expire(self.clock_ns())
        self._tally()

    def finish(self) -> list[dict[str, Any]]:
        """The rows of the windows left open (the detector stops): each is closed with what it holds."""
        return self._close_all(self.windows.flush())

    def rebuild(self, partitions: Collection[int] | None = None) -> list[dict[str, Any]]:
        """Start the join over from the store, for ``partitions`` (None: all): what waits within the bounds, the open
        windows' labels; returns the rows of windows whose labels were stored but not the window itself."""
        now = self.clock_ns()
        state = self.store.label_state(self.topic, partitions, now - int(self.max_age_s * 1e9), self.max_pending)
        join = LabelJoin(self.max_pending, self.max_age_s)
        join.expired, join.unknown = self.join.expired, self.join.unknown
        join.positions = dict(state.positions)
        join.joined = collections.OrderedDict.fromkeys(state.joined)
        for row in state.predictions:
            join.waiting[row["record_id"]] = tuple(row[k] for k in _KEPT)
        for row in state.labels:
            join.labels[row["record_id"]] = {k: row.get(k) for k in LABEL_FIELDS}
        self.join = join
        self.windows = PrequentialWindows(self.topic, self.window, self.task)
        closed = []
        for partition in sorted(set(state.closed) | set(state.unclosed)):
            closed += self.windows.restore(partition, state.closed.get(partition, -1),
                                           state.unclosed.get(partition, []))
        log.info("label join of %s rebuilt from the store: %d predictions and %d labels waiting, %d labels in open "
                 "windows", self.topic, len(join.waiting), len(join.labels),
                 sum(len(w) for w in self.windows.open.values()))
        self._tally()
        return self._close_all(closed)

    def _close_all(self, windows: list[Any]) -> list[dict[str, Any]]:
        rows = []
        for window in windows:
            c, s = self.counts, self._since
            rows.append(self.windows.close(window, None, self.join.pending, c.expired - s.expired,
                                           c.unknown - s.unknown, c.duplicates - s.duplicates))
            self._since = dataclasses.replace(c)
        self.counts.windows += len(rows)
        return rows

    def _tally(self) -> None:
        self.counts.expired, self.counts.unknown = self.join.expired, self.join.unknown
        self.counts.pending = self.join.pending
