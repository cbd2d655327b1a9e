"""Retraining with champion and challenger: a batch model trained again on recent labelled flows when a trigger
fires, and promoted over the one serving only when it beats it.

``kstream detect --learn retrain`` and ``kstream run --learn retrain`` serve the trained model (the
*champion*) from a learn folder and start a :class:`Retrainer` beside the detectors, in a process of its
own. It reads the labelled flows (:class:`~kstream.learning.online.LabelledFlows`: each flow joined to its
label, in the labels topic's order) and keeps the most recent ``window + holdout`` of them. A trigger
(:class:`RetrainPolicy`) starts an attempt:

- ``score``: the champion's macro-F1 over the last ``holdout`` labelled flows fell more than ``drop``
  below the best it reached over such a stretch since it started serving;
- ``drift``: a drift window of the labelled flows drifted (the monitor and thresholds of ``--drift``);
- ``labels``: ``every`` labelled flows since the last attempt.

An attempt trains a *challenger* (an unfitted clone of the champion's Pipeline: same model, same
hyperparameters) in a process of its own on the ``window`` labelled flows before the last ``holdout``
(with the original training split too when ``with_training``), then scores champion and challenger on
those last ``holdout`` flows, which neither trained on. The challenger is promoted only if its macro-F1
there beats the champion's by ``margin``: it is saved into the learn folder (the atomic save of
``kstream train``), where the detectors swap it in at their next batch, and it is the champion from then
on. Every attempt is a decision (:data:`~kstream.stores.protocol.RETRAIN_FIELDS`): stored, sent to the
retrains topic and returned, whether it promoted, kept the champion, or failed (a window of one class, a
challenger that cannot train, its process killed): a failed attempt leaves the champion serving and names
its reason.

>>> policy = RetrainPolicy(trigger="labels", every=100, window=50, holdout=20)  # a holdout and as many to train
>>> policy.due(since=99, rows=40), policy.due(since=100, rows=39), policy.due(since=100, rows=40)
(False, False, True)
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import logging
import multiprocessing
import threading
import time
from collections.abc import Callable
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import clone

from kstream.clients.protocols import Consumer
from kstream.drift.monitor import DriftMonitor
from kstream.errors import ConfigError
from kstream.learning.online import LabelledFlows, LearnerState
from kstream.modeling import artifacts
from kstream.modeling.artifacts import TrainedModel
from kstream.modeling.quality import score

__all__ = ["TRIGGERS", "RetrainPolicy", "Retrainer", "fit_challenger"]

log = logging.getLogger(__name__)

#: What starts a retraining attempt (see the module).
TRIGGERS = ("score", "drift", "labels")
#: Seconds a challenger may train before the attempt fails.
TRAIN_TIMEOUT_S = 600.0
_SPAWN = multiprocessing.get_context("spawn")


@dataclass(frozen=True)
class RetrainPolicy:
    """When to retrain, on what, and what a challenger must do to be promoted (see the module)."""

    trigger: str = "score"
    every: int = 5000  # labels: labelled flows between two attempts
    drop: float = 0.1  # score: how far below its best the champion's macro-F1 may fall
    window: int = 5000  # labelled flows a challenger trains on
    holdout: int = 1000  # the most recent labelled flows, scored by both and trained on by neither
    margin: float = 0.01  # macro-F1 a challenger must gain over the champion on the holdout
    with_training: bool = False  # train the challenger on the original training split too

    def __post_init__(self) -> None:
        if self.trigger not in TRIGGERS:
            raise ConfigError(f"unknown retraining trigger {self.trigger!r}; choose one of: {', '.join(TRIGGERS)}")
        for name in ("every", "window", "holdout"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"the retraining {name} must be a positive whole number, not {getattr(self, name)!r}")
        if not 0 < self.drop < 1 or not -1 < self.margin < 1:
            raise ConfigError(f"the retraining drop must be in (0, 1) and the margin in (-1, 1), not {self.drop!r} "
                              f"and {self.margin!r}")

    def due(self, since: int, rows: int) -> bool:
        """For the ``labels`` trigger: ``since`` labelled flows since the last attempt, ``rows`` kept."""
        return since >= self.every and rows >= self.holdout + min(self.window, self.holdout)

    def enough(self, rows: int) -> bool:
        """Whether ``rows`` kept labelled flows make an attempt: a holdout and at least as many to train on."""
        return rows >= self.holdout + min(self.window, self.holdout)


def fit_challenger(pipeline: Any, x: np.ndarray, y: np.ndarray) -> Any:
    """An unfitted clone of ``pipeline`` fitted on ``x``, ``y`` (run in the retrainer's training process)."""
    return clone(pipeline).fit(x, y)


class Retrainer:
    """Retrains the champion in ``learn_dir`` when ``policy`` says so (see the module).

    ``on_decision`` gets each decision as it is made (the caller stores it and sends it to a topic);
    ``monitor`` is the drift monitor of the ``drift`` trigger; ``training`` the original training split's
    rows and labels, for ``policy.with_training``; ``attempts`` the number of the last attempt made before
    (a restart numbers on).
    """

    def __init__(self, learn_dir: Path, consumer: Consumer, flows_topic: str, labels_topic: str,
                 policy: RetrainPolicy, on_decision: Callable[[dict[str, Any]], None],
                 monitor: DriftMonitor | None = None, training: tuple[np.ndarray, np.ndarray] | None = None,
                 attempts: int = 0, batch_size: int = 500, max_pending: int = 100_000) -> None:
        self.learn_dir, self.flows_topic, self.policy = Path(learn_dir), flows_topic, policy
        self.on_decision, self.monitor, self.training = on_decision, monitor, training
        if policy.trigger == "drift" and monitor is None:
            raise ConfigError("the drift trigger needs drift monitoring: add --drift")
        if policy.with_training and training is None:
            raise ConfigError("retraining with the training split needs its rows")
        self.champion: TrainedModel = artifacts.load_dir(self.learn_dir)
        self.state = LearnerState(labels_topic)
        self.stream = LabelledFlows(consumer, flows_topic, labels_topic, self.champion.features,
                                    self.champion.card.label_classes, self.state, batch_size, max_pending)
        self.consumer = consumer
        keep = policy.window + policy.holdout
        self._x: collections.deque[np.ndarray] = collections.deque(maxlen=keep)
        self._y: collections.deque[str] = collections.deque(maxlen=keep)
        self._since = 0  # labelled flows since the last attempt
        self._scored: list[tuple[np.ndarray, np.ndarray]] = []  # the champion's (truth, predictions) being gathered
        self._best: float | None = None  # the champion's best macro-F1 over a holdout-sized stretch
        self.attempts = attempts
        self.decisions: list[dict[str, Any]] = []
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None

    def run(self, stop: threading.Event | Any, drain_s: float = 60.0) -> list[dict[str, Any]]:
        """Read, keep and retrain until ``stop`` is set, then take what the topics hold already (for at most
        ``drain_s`` seconds, the attempts it triggers included); the decisions made."""
        committed: dict[tuple[str, int], int] = {}
        draining_until: float | None = None
        self._training_process()  # started now: the first attempt does not wait for its interpreter and imports
        try:
            while draining_until is None or (not self.stream.idle() and time.monotonic() < draining_until):
                if draining_until is None and stop.is_set():
                    draining_until = time.monotonic() + drain_s
                self.stream.read()
                while (batch := self.stream.take()) is not None:
                    reason = self._add(batch[0], batch[1])
                    if reason:
                        self.attempt(reason)
                offsets = self.stream.offsets()
                if offsets != committed:  # what was taken (and the flows still waiting) moved on
                    self.consumer.commit(offsets)
                    committed = offsets
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=False, cancel_futures=True)
        return self.decisions

    def _add(self, x: np.ndarray, y: np.ndarray) -> str:
        """Keep a batch of labelled flows; the reason an attempt is due now (empty: none is)."""
        self._x.extend(x)
        self._y.extend(y.tolist())
        self._since += len(y)
        rows, policy = len(self._y), self.policy
        if policy.trigger == "labels":
            return f"{self._since} labelled flows since the last attempt" if policy.due(self._since, rows) else ""
        if policy.trigger == "drift":
            predicted, scores = self.champion.predict(x)
            drifted = [w for w in self.monitor.update(x, predicted, scores) if w.drifted]  # type: ignore[union-attr]
            if drifted and policy.enough(rows):
                return f"drift window {drifted[-1].index} drifted: {'; '.join(drifted[-1].reasons)}"
            return ""
        self._scored.append((y, self.champion.predict(x)[0]))
        if sum(len(t) for t, _ in self._scored) < policy.holdout:
            return ""
        truth = np.concatenate([t for t, _ in self._scored])
        predicted = np.concatenate([p for _, p in self._scored])
        self._scored = []
        f1 = score(truth, predicted, self.champion.card.label_classes, self.champion.card.task).get("macro_f1", 0.0)
        self._best = f1 if self._best is None else max(self._best, f1)
        if f1 < self._best - policy.drop and policy.enough(rows):
            return f"the champion's macro-F1 over the last {len(truth)} labelled flows fell to {f1:.4f}, from " \
                   f"{self._best:.4f}"
        return ""

    def attempt(self, reason: str) -> dict[str, Any]:
        """One retraining attempt now, on the flows kept (see the module); its decision."""
        clock = time.monotonic()
        x, y = np.array(self._x), np.array(self._y, dtype=object)
        holdout = self.policy.holdout
        train_x, train_y, test_x, test_y = x[:-holdout], y[:-holdout], x[-holdout:], y[-holdout:]
        decision = self._decision(self.policy.trigger, reason, window=len(train_y), holdout=len(test_y))
        try:
            if self.training is not None and self.policy.with_training:
                decision["training_rows"] = len(self.training[1])
                train_x = np.vstack([self.training[0], train_x])
                train_y = np.concatenate([self.training[1].astype(object), train_y])
            if len(set(train_y.tolist())) < 2:
                raise ValueError(f"the window holds one class only ({train_y[0]}): nothing to tell apart")
            challenger = self._fit(train_x, train_y)
            classes, task = self.champion.card.label_classes, self.champion.card.task
            decision["champion_f1"] = score(test_y, self.champion.predict(test_x)[0], classes, task)["macro_f1"]
            decision["challenger_f1"] = score(test_y, challenger.predict(test_x), classes, task)["macro_f1"]
            if decision["challenger_f1"] >= decision["champion_f1"] + self.policy.margin:
                self._promote(challenger, len(train_y), decision)
        except Exception as err:  # noqa: BLE001 - a failed attempt is a decision; the champion keeps serving
            decision["error"] = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
            log.warning("retraining attempt %d failed (%s); %s keeps serving", self.attempts, decision["error"],
                        self.champion.card.model_id)
        decision["seconds"] = round(time.monotonic() - clock, 3)
        self._since, self._scored = 0, []
        self.decisions.append(decision)
        self.on_decision(decision)
        if not decision["error"]:
            log.info("retraining attempt %d (%s): challenger %s macro-F1 %.4f, champion %.4f: %s", self.attempts,
                     reason, decision["challenger_id"] or "-", decision["challenger_f1"], decision["champion_f1"],
                     "promoted" if decision["promoted"] else "champion kept")
        return decision

    def restarted(self, reason: str) -> dict[str, Any]:
        """Store that the retrainer's process before this one died (``reason``), as a failed decision of
        trigger ``restart``: an attempt it was making is lost, the serving model stays."""
        decision = self._decision("restart", reason, window=0, holdout=0)
        decision["error"] = "the retrainer process died"
        self.decisions.append(decision)
        self.on_decision(decision)
        log.warning("retraining attempt %d: %s; %s keeps serving", self.attempts, reason, self.champion.card.model_id)
        return decision

    def _decision(self, trigger: str, reason: str, window: int, holdout: int) -> dict[str, Any]:
        """A new attempt's decision, before anything is known of it."""
        self.attempts += 1
        return {
            "topic": self.flows_topic, "attempt": self.attempts, "trigger": trigger, "reason": reason,
            "started_ns": time.time_ns(), "seconds": 0.0, "window_records": window, "holdout_records": holdout,
            "training_rows": 0, "champion_id": self.champion.card.model_id, "challenger_id": "",
            "champion_f1": None, "challenger_f1": None, "margin": self.policy.margin, "promoted": False, "error": "",
        }

    def _training_process(self) -> concurrent.futures.ProcessPoolExecutor:
        """The process challengers train in, started (with scikit-learn imported) if there is none."""
        if self._pool is None:
            self._pool = concurrent.futures.ProcessPoolExecutor(1, mp_context=_SPAWN)
            self._pool.submit(clone, self.champion.pipeline)  # the worker starts and imports what fitting needs
        return self._pool

    def _fit(self, x: np.ndarray, y: np.ndarray) -> Any:
        """The challenger, fitted in the training process (made again if it died)."""
        pool = self._training_process()
        try:
            return pool.submit(fit_challenger, self.champion.pipeline, x, y).result(timeout=TRAIN_TIMEOUT_S)
        except (BrokenProcessPool, concurrent.futures.TimeoutError) as err:
            pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
            raise RuntimeError("the training process died or timed out before the challenger was fitted") from err

    def _promote(self, pipeline: Any, rows: int, decision: dict[str, Any]) -> None:
        params = {k: v for k, v in self.champion.card.params.items() if k != "retrained"}
        params["retrained"] = {"attempt": self.attempts, "window_records": rows,
                               "holdout_f1": decision["challenger_f1"]}
        card = dataclasses.replace(self.champion.card, train_rows=rows, classes=[str(c) for c in pipeline.classes_],
                                   params=params)
        saved = artifacts.save(pipeline, card, self.learn_dir, train_vectors=self.champion.train_vectors)
        self.champion = TrainedModel(pipeline, saved, self.learn_dir, self.champion.train_vectors)
        decision["challenger_id"], decision["promoted"] = saved.model_id, True
        self._best = None  # the new champion's best is its own
