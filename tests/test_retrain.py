"""Retraining with champion and challenger: the triggers, a promotion only over a margin, failed attempts that leave
the champion serving, and decisions stored once (pure logic on in-memory topics; the real broker's run is in
tests/test_learning_stream.py)."""

from __future__ import annotations

import dataclasses
import os
import threading

import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.pipeline import Pipeline
from test_learning import FLOWS, LABELS, _stream, _Topics

from kstream.errors import ConfigError
from kstream.learning.online import prepare_learn_dir
from kstream.learning.retrain import Retrainer, RetrainPolicy
from kstream.modeling import artifacts, training
from kstream.modeling.artifacts import ModelRef
from kstream.stores.mongodb import MongoStore
from kstream.stores.protocol import RETRAIN_FIELDS
from kstream.stores.sqlite import open_store

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def tree(tmp_path_factory, cicids):
    """A decision tree trained on the bundled sample's Monday and Tuesday (benign, FTP- and SSH-Patator)."""
    ref = ModelRef("cicids2017", "binary_class", "decision-tree", models_dir=tmp_path_factory.mktemp("m"),
                   split_mode="temporal", train_until="2017-07-05")
    return training.train(ref, cicids)


class _Stop(threading.Event):
    """Set once the topics are read and what was read last is taken: the retrainer's run then ends."""

    def __init__(self, consumer) -> None:
        super().__init__()
        self.consumer, self._drained = consumer, False

    def is_set(self) -> bool:
        done, self._drained = self._drained, not self.consumer.unread
        return done


def _retrain(model, cicids, tmp_path, policy, n=4000, delay=200, rows=None, **kwargs):
    topics = _Topics()
    _stream(model, cicids, topics, n, delay, rows)
    learn_dir = prepare_learn_dir(tmp_path / "learner", model)
    decided: list[dict] = []
    consumer = topics.consumer(chunk=250)
    retrainer = Retrainer(learn_dir, consumer, FLOWS, LABELS, policy, decided.append, **kwargs)
    retrainer.run(_Stop(consumer))
    return retrainer, decided, learn_dir


def _training(model, cicids):
    rows = model.card.rows(cicids, "train")
    return rows.features[model.features].to_numpy(dtype=np.float64), rows.target("binary_class").to_numpy()


def test_every_n_labels_a_challenger_is_trained_and_promoted_only_over_the_margin(tree, cicids, tmp_path):
    """In time order a window of 1,000 labelled flows often holds one class (Wednesday morning is benign, then
    DoS): with the training split beside it, each challenger has both."""
    policy = RetrainPolicy(trigger="labels", every=1000, window=1000, holdout=500, margin=0.01, with_training=True)
    retrainer, decided, learn_dir = _retrain(tree, cicids, tmp_path, policy, training=_training(tree, cicids))
    assert [d["attempt"] for d in decided] == [1, 2, 3]  # 4,000 labels: one attempt per 1,000 after the first
    assert all(set(d) == set(RETRAIN_FIELDS) and not d["error"] for d in decided)
    assert all(d["training_rows"] == tree.card.train_rows for d in decided)
    assert all(d["holdout_records"] == 500 and d["window_records"] >= 500 for d in decided)
    for d in decided:  # promoted exactly when the challenger beat the champion by the margin
        assert d["promoted"] == (d["challenger_f1"] >= d["champion_f1"] + 0.01)
    promoted = [d for d in decided if d["promoted"]]
    assert promoted and promoted[0]["champion_id"] == tree.card.model_id  # the Wednesday DoS: the tree never saw it
    served = artifacts.load_dir(learn_dir)  # the last promoted challenger, saved whole for the detectors
    assert served.card.model_id == promoted[-1]["challenger_id"] == retrainer.champion.card.model_id
    assert served.card.params["retrained"]["attempt"] == promoted[-1]["attempt"]


def test_a_falling_score_triggers_an_attempt(tree, cicids, tmp_path):
    policy = RetrainPolicy(trigger="score", drop=0.2, window=1000, holdout=500)
    _, decided, _ = _retrain(tree, cicids, tmp_path, policy, n=3000)
    assert decided and "fell to" in decided[0]["reason"] and decided[0]["trigger"] == "score"


def test_a_drifting_window_triggers_an_attempt(tree, cicids, tmp_path):
    from kstream.settings import Settings

    monitor = Settings(drift_window=500).drift_monitor(tree.reference())
    policy = RetrainPolicy(trigger="drift", window=1000, holdout=500)
    _, decided, _ = _retrain(tree, cicids, tmp_path, policy, n=2500, monitor=monitor)
    assert decided and decided[0]["reason"].startswith("drift window") and decided[0]["trigger"] == "drift"


class _DiesInAChild(ClassifierMixin, BaseEstimator):
    """Fits in the process that made it; a clone fitted in another process kills it (a training process killed)."""

    def __init__(self, parent: int = 0) -> None:
        self.parent = parent

    fails = False  # a subclass that raises in the child instead: a challenger that cannot train

    def fit(self, x, y):
        if os.getpid() != self.parent:
            if self.fails:
                raise ValueError("this challenger cannot train on these rows")
            os._exit(9)
        self.classes_ = np.unique(y)
        return self

    def predict(self, x):
        return np.full(len(x), self.classes_[0])


class _FailsInAChild(_DiesInAChild):
    fails = True


def test_failed_attempts_are_decisions_with_their_reason_and_the_champion_keeps_serving(tree, cicids, tmp_path):
    policy = RetrainPolicy(trigger="labels", every=1000, window=1000, holdout=500)
    # a window of one class: the held-out rows of one attack family only
    rows = tree.held_out(cicids)
    one = rows.take(np.flatnonzero(rows.target("binary_class").to_numpy() == "attack")[:2000])
    retrainer, decided, learn_dir = _retrain(tree, cicids, tmp_path / "one", policy, n=2000, rows=one)
    assert decided and all("one class only" in d["error"] and not d["promoted"] for d in decided)
    assert artifacts.load_dir(learn_dir).card.model_id == tree.card.model_id
    # a training process that dies
    dying = artifacts.TrainedModel(Pipeline([("classifier", _DiesInAChild(os.getpid()))]).fit(
        np.zeros((2, len(tree.features))), ["attack", "benign"]), tree.card, tree.path)
    saved = artifacts.save(dying.pipeline, tree.card, tmp_path / "dying")
    dying = artifacts.load_dir(tmp_path / "dying")
    retrainer, decided, learn_dir = _retrain(dying, cicids, tmp_path / "dies",
                                             dataclasses.replace(policy, with_training=True), n=2000,
                                             training=_training(tree, cicids))
    assert decided and "training process died" in decided[0]["error"] and not decided[0]["promoted"]
    assert artifacts.load_dir(learn_dir).card.sha256 == saved.sha256
    assert retrainer.attempts == len(decided)  # it went on after the failure
    # a challenger whose fit raises (in the training process): the error, named
    failing = artifacts.save(Pipeline([("classifier", _FailsInAChild(os.getpid()))]).fit(
        np.zeros((2, len(tree.features))), ["attack", "benign"]), tree.card, tmp_path / "failing")
    retrainer, decided, learn_dir = _retrain(artifacts.load_dir(tmp_path / "failing"), cicids, tmp_path / "fails",
                                             dataclasses.replace(policy, with_training=True), n=2000,
                                             training=_training(tree, cicids))
    assert decided and all("ValueError: this challenger cannot train" in d["error"] for d in decided)
    assert not any(d["promoted"] for d in decided)
    assert artifacts.load_dir(learn_dir).card.sha256 == failing.sha256


def test_a_policy_that_cannot_work_is_refused_at_the_edge():
    with pytest.raises(ConfigError, match="unknown retraining trigger"):
        RetrainPolicy(trigger="sometimes")
    with pytest.raises(ConfigError, match="holdout must be a positive"):
        RetrainPolicy(holdout=0)


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("mongodb", marks=pytest.mark.mongodb)])
def test_decisions_are_stored_once_each(kind, tmp_path, request):
    rows = [{**dict.fromkeys(RETRAIN_FIELDS, None), "topic": "flows", "attempt": i, "promoted": i == 2, "error": "",
             "champion_f1": 0.5, "reason": "test"} for i in (1, 2)]
    if kind == "sqlite":
        opened = open_store("sqlite", str(tmp_path / "p.sqlite"))
    else:
        opened = MongoStore(request.getfixturevalue("mongo_server").url, f"r{os.getpid()}", collection="p")
    with opened as store:
        store.write_retrains(rows)
        store.write_retrains(rows[1:])  # a redelivered write: the first stands
        back = store.retrains("flows")
    assert back["attempt"].tolist() == [1, 2] and back["promoted"].tolist() == [False, True]
    assert back["champion_f1"].tolist() == [0.5, 0.5]
