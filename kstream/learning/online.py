"""The online learner: a consumer of its own that learns every label once and hands its versions to the detectors.

``kstream detect --learn online`` and ``kstream run --learn online`` serve an online learner of the zoo
(:mod:`kstream.modeling.online`) from a *learn folder* and start an :class:`OnlineLearner` beside the
detectors, in a process of its own, so learning never holds up scoring. It reads the flows topic and the
labels topic in its own consumer group (``<group>.learner``), keeps the features of each flow until its
label comes (at most ``max_pending`` flows; the oldest go first), and learns the labels **in the order of
the labels topic**, in micro-batches. Every ``every`` labels learned it saves a new version of the model
into the learn folder (:func:`kstream.modeling.artifacts.save`): the detectors watching that folder swap
it in at their next batch (:mod:`kstream.detector.hotswap`), so every prediction names the version that
made it and the prequential windows score each version on labels it had not learned when it scored.

Exactly once. With each version the learner writes a checkpoint (``learner.joblib``, written whole and
renamed into place): the model, the next label offset of each labels partition, and how many labels it
learned, with a digest of their record ids. Only then does it commit its group's offsets: the labels at
the checkpoint's offsets, the flows at the oldest flow still waiting for its label (so a restart reads
those again). A learner killed at any point restarts from its checkpoint: the labels before the offsets
are in the model and are skipped if read again, the ones after are read again with their flows, so no
label is learned twice and none is forgotten (a label whose flow is older than the ``max_pending`` bound,
or that no flow ever matches, is skipped and counted either way).

A label waits at the head of the line until its flow has been read; once the learner has read every
flow there is and the label has waited ``LABEL_GRACE_S``, it is skipped as ``no flow``.

>>> digest_ids(["a", "b"]) == digest_ids(["b", "a"]), digest_ids(["a", "a"]) == digest_ids(["a"])
(True, False)
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import hmac
import io
import logging
import shutil
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import joblib
import numpy as np

from kstream.clients.protocols import Consumer
from kstream.errors import ConfigError, ModelError
from kstream.messages.labels import decode_labels
from kstream.messages.wire import SCHEMA_HEADER, decode_flows, record_id
from kstream.modeling import artifacts
from kstream.modeling.artifacts import TRAIN_VECTORS, TrainedModel
from kstream.modeling.online import is_online, learn
from kstream.modeling.trust import Trust

__all__ = ["OnlineLearner", "LabelledFlows", "LearnerState", "CHECKPOINT", "digest_ids", "prepare_learn_dir",
           "read_state", "write_checkpoint"]

log = logging.getLogger(__name__)

#: The checkpoint's file name in the learn folder.
CHECKPOINT = "learner.joblib"
#: Seconds a label waits for its flow once the learner has read every flow there is.
LABEL_GRACE_S = 2.0
_MASK = (1 << 64) - 1


def digest_ids(ids: Iterable[str], start: int = 0) -> int:
    """A digest of a multiset of record ids, whatever their order: each id learned once more changes it."""
    total = start
    for rid in ids:
        total = (total + int.from_bytes(hashlib.blake2b(rid.encode(), digest_size=8).digest(), "big")) & _MASK
    return total


@dataclass
class LearnerState:
    """What the checkpoint says the model has learned."""

    labels_topic: str
    next_offsets: dict[int, int] = field(default_factory=dict)  # labels partition -> next label offset to learn
    learned: int = 0  # labels learned into the model
    digest: int = 0  # digest_ids of their record ids
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> labels not learned
    versions: int = 0  # versions saved so far


def read_state(learn_dir: Path) -> LearnerState | None:
    """The state of the last checkpoint in ``learn_dir`` (None when there is none)."""
    saved = _read_checkpoint(Path(learn_dir))
    return None if saved is None else saved["state"]


def write_checkpoint(learn_dir: Path, pipeline: Any, state: LearnerState, trust: Trust | None = None) -> None:
    """Write the checkpoint whole, then rename it into place: a first line with its sha256 and, when
    ``KSTREAM_MODEL_KEY`` is set, its HMAC; then the pickled model and state."""
    buffer = io.BytesIO()
    joblib.dump({"pipeline": pipeline, "state": state}, buffer)
    blob = buffer.getvalue()
    key = (trust or Trust.from_env()).key
    signature = hmac.new(key, blob, hashlib.sha256).hexdigest() if key else ""
    tmp = Path(learn_dir) / f".{CHECKPOINT}.tmp"
    tmp.write_bytes(f"{hashlib.sha256(blob).hexdigest()} {signature}\n".encode() + blob)
    tmp.replace(Path(learn_dir) / CHECKPOINT)


def _read_checkpoint(learn_dir: Path, trust: Trust | None = None) -> dict[str, Any] | None:
    path = learn_dir / CHECKPOINT
    if not path.exists():
        return None
    head, _, blob = path.read_bytes().partition(b"\n")
    digest, _, signature = head.decode("ascii", "replace").partition(" ")
    key = (trust or Trust.from_env()).key
    if hashlib.sha256(blob).hexdigest() != digest:
        raise ModelError(f"{path} does not match its sha256 (refusing to unpickle it); delete it to learn again "
                         "from the model in the folder")
    if key and not hmac.compare_digest(signature, hmac.new(key, blob, hashlib.sha256).hexdigest()):
        raise ModelError(f"{path} is not signed with KSTREAM_MODEL_KEY (refusing to unpickle it); delete it to "
                         "learn again from the model in the folder")
    return joblib.load(io.BytesIO(blob))


def prepare_learn_dir(learn_dir: Path, base: TrainedModel) -> Path:
    """Make ``learn_dir`` serve ``base`` unless it holds a learner's model already (a restart goes on from it).

    The model's files are copied as they are (card, artifact, training vectors), so the detectors load and
    trust the copy exactly as they would the original.
    """
    learn_dir = Path(learn_dir)
    if (learn_dir / "model.json").exists():
        served = artifacts.ModelCard.read(learn_dir / "model.json")
        if (served.dataset, served.task, served.model) != (base.card.dataset, base.card.task, base.card.model):
            raise ConfigError(f"{learn_dir} holds a learner of {served.dataset}/{served.task}/{served.model}, not "
                              f"{base.card.dataset}/{base.card.task}/{base.card.model}; pass another --learn-dir")
        return learn_dir
    learn_dir.mkdir(parents=True, exist_ok=True)
    for name in ("model.joblib", TRAIN_VECTORS, "model.json"):  # the card last: it names the others' hashes
        if (base.path / name).exists():
            shutil.copyfile(base.path / name, learn_dir / f".{name}.tmp")
            (learn_dir / f".{name}.tmp").replace(learn_dir / name)
    return learn_dir


class LabelledFlows:
    """Flows joined to their labels, in the labels topic's order: what a learner learns from (see the module).

    ``consumer`` reads the flows topic and the labels topic. ``state`` holds the next label offset of each
    labels partition (labels before it were taken already: skipped when read again) and the counts of the
    labels skipped; :meth:`take` moves both on. :meth:`offsets` are the group offsets that go with them.
    """

    def __init__(self, consumer: Consumer, flows_topic: str, labels_topic: str, features: list[str],
                 classes: list[str], state: LearnerState, batch_size: int = 500, max_pending: int = 100_000,
                 poll_timeout_ms: int = 200) -> None:
        self.consumer = consumer
        self.flows_topic, self.labels_topic = flows_topic, labels_topic
        self.features, self.classes, self.state = features, classes, state
        self.batch_size, self.max_pending, self.poll_timeout_ms = batch_size, max_pending, poll_timeout_ms
        self._flows: collections.OrderedDict[str, tuple[int, int, np.ndarray]] = collections.OrderedDict()
        self._labels: collections.deque[tuple[int, int, str, str, float]] = collections.deque()
        self._positions: dict[tuple[str, int], int] = {}  # next offset read, per topic partition
        self._learned_ids: set[str] = set()  # ids of labels read again after a restart, taken before it
        self._caught_up_at = 0.0  # when the consumer last said it had read everything

    def idle(self) -> bool:
        """Nothing left to take now: every record read, and no label that could still meet its flow."""
        return self._caught_up_at > 0 and not self._labels

    def read(self) -> None:
        """One poll of both topics: flows kept until their label comes, labels put in line."""
        messages = self.consumer.poll(self.batch_size, self.poll_timeout_ms)
        if not messages:
            if self.consumer.caught_up(1000):
                self._caught_up_at = time.monotonic()
            return
        self._caught_up_at = 0.0
        flows = [m for m in messages if m.topic == self.flows_topic and m.error is None]
        labels = [m for m in messages if m.topic == self.labels_topic and m.error is None]
        for m in messages:
            self._positions[(m.topic, m.partition)] = m.offset + 1
        if flows:
            decoded = decode_flows([m.value for m in flows], self.features,
                                   schemas=[m.headers.get(SCHEMA_HEADER) for m in flows])
            for i, row in zip(decoded.rows, decoded.matrix):
                m = flows[i]
                rid = record_id(m.key, m.topic, m.partition, m.offset)
                if rid in self._learned_ids:  # its label was taken already: no need to keep it waiting
                    self._learned_ids.discard(rid)
                    continue
                self._flows[rid] = (m.partition, m.offset, row)
            while len(self._flows) > self.max_pending:  # the oldest flow's label is later than the bound allows
                self._flows.popitem(last=False)
        if labels:
            decoded_labels = decode_labels([m.key for m in labels], [m.value for m in labels],
                                           [m.headers for m in labels], self.classes)
            now = time.monotonic()
            line = [(i, rid, label) for i, rid, label, _ in decoded_labels.labels]
            line += [(i, "", "") for i, _ in decoded_labels.errors]  # a bad label: skipped in its place in line
            for i, rid, label in sorted(line):
                m = labels[i]
                if m.offset >= self.state.next_offsets.get(m.partition, 0):  # not taken before a restart
                    self._labels.append((m.partition, m.offset, rid, label, now))
                elif rid and self._flows.pop(rid, None) is None and len(self._learned_ids) < self.max_pending:
                    self._learned_ids.add(rid)  # its flow, when read again, is dropped as it comes

    def _pass(self, partition: int, offset: int, reason: str) -> None:
        """The label at the head of the line is not taken, for ``reason``."""
        self._labels.popleft()
        self.state.skipped[reason] = self.state.skipped.get(reason, 0) + 1
        self.state.next_offsets[partition] = offset + 1

    def take(self) -> tuple[np.ndarray, np.ndarray, list[str]] | None:
        """The labelled flows at the head of the line whose flows are here, in order (at most a batch): their
        features, labels and record ids; None when the head's flow has not come yet (or nothing waits)."""
        rows: list[np.ndarray] = []
        labels: list[str] = []
        ids: list[str] = []
        while self._labels and len(rows) < self.batch_size:
            partition, offset, rid, label, read_at = self._labels[0]
            if not rid:
                self._pass(partition, offset, "bad label")  # the detector dead-letters it with its reason
                continue
            flow = self._flows.pop(rid, None)
            if flow is None:
                waited = time.monotonic() - read_at
                if self._caught_up_at >= read_at and waited >= LABEL_GRACE_S:
                    self._pass(partition, offset, "no flow")  # every flow there is was read after it came
                    continue
                break
            self._labels.popleft()
            rows.append(flow[2])
            labels.append(label)
            ids.append(rid)
            self.state.next_offsets[partition] = offset + 1
        if not rows:
            return None
        return np.vstack(rows), np.array(labels, dtype=object), ids

    def offsets(self) -> dict[tuple[str, int], int]:
        """The group's offsets ``state`` allows: labels at the next to take, flows at the oldest waiting."""
        offsets = {(self.labels_topic, p): o for p, o in self.state.next_offsets.items()}
        oldest: dict[int, int] = {}
        for partition, offset, _ in self._flows.values():
            oldest[partition] = min(offset, oldest.get(partition, offset))
        for (topic, partition), position in self._positions.items():
            if topic == self.flows_topic:
                offsets[(topic, partition)] = oldest.get(partition, position)
        return offsets


class OnlineLearner:
    """Learns the labels of ``labels_topic`` into the model in ``learn_dir`` (see the module).

    ``consumer`` reads the flows topic and the labels topic in the learner's own group. :meth:`run` goes on
    until ``stop`` is set, then learns what the topics hold already (for at most ``drain_s`` seconds),
    checkpoints and returns its state.
    """

    def __init__(self, learn_dir: Path, consumer: Consumer, flows_topic: str, labels_topic: str,
                 every: int = 1000, batch_size: int = 500, max_pending: int = 100_000,
                 poll_timeout_ms: int = 200) -> None:
        self.learn_dir = Path(learn_dir)
        self.consumer = consumer
        self.every = every
        saved = _read_checkpoint(self.learn_dir)
        if saved is not None:
            self.pipeline, self.state = saved["pipeline"], saved["state"]
            if self.state.labels_topic != labels_topic:
                raise ConfigError(f"the learner in {self.learn_dir} learned from {self.state.labels_topic}, not "
                                  f"{labels_topic}; pass another --learn-dir")
            log.info("learner resumes from its checkpoint: %d labels learned, version %d", self.state.learned,
                     self.state.versions)
        else:
            self.state = LearnerState(labels_topic)
            self.pipeline = artifacts.load_dir(self.learn_dir).pipeline
        if not is_online(self.pipeline):
            raise ConfigError(f"the model in {self.learn_dir} cannot learn online; train one of the online learners "
                              "(kstream train -m hoeffding-adaptive-tree, adaptive-random-forest or sgd-classifier)")
        self.served = artifacts.load_dir(self.learn_dir)  # the card each version is saved with
        self.stream = LabelledFlows(consumer, flows_topic, labels_topic, self.served.features,
                                    self.served.card.label_classes, self.state, batch_size, max_pending,
                                    poll_timeout_ms)
        self._since_version = 0

    def run(self, stop: threading.Event | Any, drain_s: float = 60.0) -> LearnerState:
        draining_until: float | None = None
        while True:
            if draining_until is None and stop.is_set():
                draining_until = time.monotonic() + drain_s
            self.stream.read()
            while (batch := self.stream.take()) is not None:
                self._learn(*batch)
            if self._since_version >= self.every:
                self.checkpoint()
            if draining_until is not None and (self.stream.idle() or time.monotonic() > draining_until):
                break
        self.checkpoint()
        return self.state

    def _learn(self, x: np.ndarray, y: np.ndarray, ids: list[str]) -> None:
        learned = learn(self.pipeline, x, y)
        if learned < len(y):
            skipped = self.state.skipped
            skipped["class not learnable"] = skipped.get("class not learnable", 0) + len(y) - learned
        self.state.learned += learned
        self.state.digest = digest_ids(ids, self.state.digest)
        self._since_version += len(y)

    def checkpoint(self) -> None:
        """Save a version for the detectors and the checkpoint, then commit the group's offsets (see the module)."""
        if self._since_version or not (self.learn_dir / CHECKPOINT).exists():
            if self._since_version:
                self.state.versions += 1
                params = {k: v for k, v in self.served.card.params.items() if k not in ("labels_learned", "version")}
                params.update(labels_learned=self.state.learned, version=self.state.versions)
                # a River learner's classes grow with the labels: the card names the ones it predicts now
                card = dataclasses.replace(self.served.card, classes=[str(c) for c in self.pipeline.classes_],
                                           params=params)
                artifacts.save(self.pipeline, card, self.learn_dir, train_vectors=self.served.train_vectors)
                log.info("learner saved version %d (%d labels learned; %s)", self.state.versions, self.state.learned,
                         card.model_id)
            write_checkpoint(self.learn_dir, self.pipeline, self.state)
            self._since_version = 0
        self.consumer.commit(self.stream.offsets())
