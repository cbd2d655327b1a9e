"""Online learners and the online learner's loop: every label learned once, through restarts at any point.

The loop's tests give it a plain in-memory consumer (pure logic: what it reads, in what order, what it
commits); the real broker's runs are in tests/test_learning_stream.py.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading

import numpy as np
import pytest

from kstream.clients.records import Message
from kstream.detector.pool import LearnerProcess
from kstream.errors import ConfigError, ModelError
from kstream.learning import online
from kstream.learning.online import OnlineLearner, digest_ids, prepare_learn_dir, read_state
from kstream.messages.labels import encode_label
from kstream.messages.wire import encode_flow
from kstream.modeling import artifacts, training, zoo
from kstream.modeling.artifacts import ModelRef
from kstream.modeling.online import learn
from kstream.settings import Settings

FLOWS, LABELS = "flows", "flows.labels"


@pytest.fixture(scope="module")
def sgd(tmp_path_factory, cicids):
    """An sgd-classifier trained on the bundled sample's Monday and Tuesday (a temporal split)."""
    ref = ModelRef("cicids2017", "binary_class", "sgd-classifier", models_dir=tmp_path_factory.mktemp("m"),
                   split_mode="temporal", train_until="2017-07-05")
    return training.train(ref, cicids)


@pytest.mark.parametrize("name", zoo.LEARNERS)
def test_each_learner_trains_scores_and_goes_on_learning(name, cicids):
    rows = np.random.default_rng(0).choice(len(cicids), 1500, replace=False)
    x = cicids.features.to_numpy(dtype=np.float64)[rows]
    y = cicids.target("binary_class").to_numpy()[rows]
    pipe = zoo.build_pipeline(name, feature_names=cicids.feature_names).fit(x[:1000], y[:1000])
    before = pipe.predict_proba(x[1000:])
    assert before.shape == (500, 2) and np.allclose(before.sum(axis=1), 1)
    assert (pipe.predict(x[1000:]) == y[1000:]).mean() > 0.8
    assert learn(pipe, x[1000:], y[1000:]) == 500
    assert not np.array_equal(pipe.predict_proba(x[1000:]), before)  # it learned: its scores moved


def test_a_river_learner_learns_a_class_it_never_saw_and_sgd_skips_it(cicids):
    rows = np.random.default_rng(1).choice(len(cicids), 800, replace=False)
    x = cicids.features.to_numpy(dtype=np.float64)[rows]
    y = np.where(cicids.target("binary_class").to_numpy()[rows] == "benign", "benign", "attack")
    river = zoo.build_pipeline("hoeffding-adaptive-tree").fit(x[:600], y[:600])
    sgd = zoo.build_pipeline("sgd-classifier").fit(x[:600], y[:600])
    new = np.array(["dos"] * 200, dtype=object)
    assert learn(river, x[600:], new) == 200 and river.classes_.tolist() == ["attack", "benign", "dos"]
    assert river.predict_proba(x[:3]).shape == (3, 3)
    assert learn(sgd, x[600:], new) == 0 and sgd.classes_.tolist() == ["attack", "benign"]


class _Topics:
    """Two topics in memory, read in the order their records were produced by a consumer that commits: what a
    restart reads again is what was not committed."""

    def __init__(self) -> None:
        self.log: dict[str, list[Message]] = {FLOWS: [], LABELS: []}
        self.produced: list[Message] = []  # both topics, in the order they were written
        self.committed: dict[tuple[str, int], int] = {}

    def add(self, topic: str, key: str, value: bytes) -> None:
        message = Message(topic, 0, len(self.log[topic]), key.encode(), value, {})
        self.log[topic].append(message)
        self.produced.append(message)

    def consumer(self, chunk: int = 37) -> _Consumer:
        return _Consumer(self, chunk)


class _Consumer:
    def __init__(self, topics: _Topics, chunk: int) -> None:
        self.topics, self.chunk = topics, chunk
        start = {t: topics.committed.get((t, 0), 0) for t in topics.log}
        self.unread = [m for m in topics.produced if m.offset >= start[m.topic]]

    def poll(self, max_records: int, timeout_ms: int) -> list[Message]:
        out, self.unread = self.unread[:self.chunk], self.unread[self.chunk:]
        return out

    def caught_up(self, timeout_ms: int = 3000) -> bool:
        return not self.unread

    def commit(self, offsets, deadline_s: float = 300) -> bool:
        self.topics.committed.update(offsets)
        return True


def _stream(model, cicids, topics: _Topics, n: int, delay: int, rows=None) -> list[str]:
    """``n`` held-out flows (or of ``rows``) on the flows topic, each label ``delay`` flows after its flow; the
    labelled ids."""
    rows = model.held_out(cicids) if rows is None else rows
    x = rows.features[model.features].to_numpy(dtype=np.float64)[:n]
    y = rows.target("binary_class").to_numpy()[:n]
    ids = [f"r{i}" for i in range(n)]
    for i in range(n + delay):
        if i < n:
            topics.add(FLOWS, ids[i], encode_flow(model.features, x[i]))
        if i >= delay:
            topics.add(LABELS, ids[i - delay], encode_label(y[i - delay]))
    return ids


def _stopped() -> threading.Event:
    stop = threading.Event()
    stop.set()  # learn what the topics hold, then end
    return stop


def test_the_learner_learns_every_label_once_in_versions_and_commits_what_its_checkpoint_holds(sgd, cicids, tmp_path):
    topics = _Topics()
    ids = _stream(sgd, cicids, topics, 1200, delay=100)
    learn_dir = prepare_learn_dir(tmp_path / "learner", sgd)
    first = artifacts.load_dir(learn_dir).card.sha256
    state = OnlineLearner(learn_dir, topics.consumer(), FLOWS, LABELS, every=500).run(_stopped(), drain_s=30)
    assert (state.learned, state.digest, state.skipped) == (1200, digest_ids(ids), {})
    assert state.versions == 3 and state.next_offsets == {0: 1200}  # 500, 1,000, then the last 200
    card = artifacts.load_dir(learn_dir).card  # the version the detectors swap in, trusted as any model
    assert card.sha256 != first and card.params["labels_learned"] == 1200 and card.params["version"] == 3
    assert topics.committed == {(LABELS, 0): 1200, (FLOWS, 0): 1200}
    assert read_state(learn_dir) == state


@pytest.mark.parametrize("crash_after", [1, 2, 5])
def test_a_learner_killed_at_any_point_goes_on_from_its_checkpoint_and_learns_every_label_once(
    sgd, cicids, tmp_path, monkeypatch, crash_after
):
    """Killed after its Nth checkpoint: before the commit that follows it (the worst case), the restart
    reads again from older offsets; labels the checkpoint holds are skipped, the others learned once."""
    topics = _Topics()
    ids = _stream(sgd, cicids, topics, 1500, delay=300)
    learn_dir = prepare_learn_dir(tmp_path / "learner", sgd)
    learner = OnlineLearner(learn_dir, topics.consumer(), FLOWS, LABELS, every=200)
    commit, checkpoints = learner.consumer.commit, []

    def killed(offsets, deadline_s=300):
        checkpoints.append(offsets)
        if len(checkpoints) == crash_after:
            raise KeyboardInterrupt("killed")  # after the checkpoint's rename, before its commit
        return commit(offsets)

    monkeypatch.setattr(learner.consumer, "commit", killed)
    with pytest.raises(KeyboardInterrupt):
        learner.run(threading.Event())
    held = read_state(learn_dir)
    assert 0 < held.learned < 1500
    state = OnlineLearner(learn_dir, topics.consumer(), FLOWS, LABELS, every=200).run(_stopped(), drain_s=30)
    assert (state.learned, state.digest) == (1500, digest_ids(ids))
    # the flows read again for labels learned before the kill are let go: none holds the group's offsets back
    assert topics.committed == {(LABELS, 0): 1500, (FLOWS, 0): 1500}


def test_labels_without_a_flow_or_with_a_bad_value_are_skipped_in_their_place(sgd, cicids, tmp_path, monkeypatch):
    monkeypatch.setattr(online, "LABEL_GRACE_S", 0.0)
    topics = _Topics()
    ids = _stream(sgd, cicids, topics, 300, delay=10)
    topics.add(LABELS, "no-such-flow", b"attack")
    topics.add(LABELS, "r1", b"\xff\xfe")  # not UTF-8: the detector dead-letters it
    topics.add(LABELS, "r2", b"dos")  # a class the model does not name
    learn_dir = prepare_learn_dir(tmp_path / "learner", sgd)
    state = OnlineLearner(learn_dir, topics.consumer(), FLOWS, LABELS).run(_stopped(), drain_s=30)
    assert (state.learned, state.digest) == (300, digest_ids(ids))
    assert state.skipped == {"no flow": 1, "bad label": 2} and state.next_offsets == {0: 303}


def test_a_checkpoint_changed_on_disk_is_refused_before_it_is_unpickled(sgd, cicids, tmp_path):
    topics = _Topics()
    _stream(sgd, cicids, topics, 100, delay=0)
    learn_dir = prepare_learn_dir(tmp_path / "learner", sgd)
    OnlineLearner(learn_dir, topics.consumer(), FLOWS, LABELS).run(_stopped(), drain_s=30)
    path = learn_dir / online.CHECKPOINT
    path.write_bytes(path.read_bytes()[:-1] + b"!")
    with pytest.raises(ModelError, match="does not match its sha256"):
        OnlineLearner(learn_dir, topics.consumer(), FLOWS, LABELS)
    with pytest.raises(ConfigError, match="learned from"):
        path.unlink()
        OnlineLearner(learn_dir, topics.consumer(), FLOWS, LABELS).run(_stopped(), drain_s=30)
        OnlineLearner(learn_dir, topics.consumer(), FLOWS, "other.labels")


def test_a_batch_model_is_refused_as_a_learner(tmp_path, models_dir):
    model = artifacts.load(ModelRef("cicids2017", "binary_class", "decision-tree", models_dir=models_dir))
    learn_dir = prepare_learn_dir(tmp_path / "learner", model)
    with pytest.raises(ConfigError, match="cannot learn online"):
        OnlineLearner(learn_dir, _Topics().consumer(), FLOWS, LABELS)


def test_a_learner_that_dies_as_it_is_asked_to_stop_ends_with_a_warning_not_an_error(caplog, tmp_path):
    """Killed after the watcher's last look and before the stop: nothing is left to restart, and the run's end must
    not fail for it (the learner's last checkpoint is what it learned)."""
    learner = LearnerProcess(Settings(), tmp_path)
    learner._proc = multiprocessing.get_context("spawn").Process(target=os._exit, args=(9,))  # dies without a word
    learner._proc.start()
    learner._proc.join()
    with caplog.at_level(logging.WARNING):
        assert learner.stop() is None
    assert "died (exit code 9) as it was asked to stop" in caplog.text
