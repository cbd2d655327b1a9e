"""Detectors in one consumer group, so Kafka spreads a topic's partitions over them; and the generator apart.

:class:`DetectorProcesses` runs each detector in a process of its own (``kstream run``, the
``2.0-stream`` notebook and sweeps use it), so detectors and the generator
(:func:`generate_in_process`) never share an interpreter lock. Each process builds its own Kafka
clients and results-store connection from the run's settings, waits for a partition, says it is
ready, and runs until asked to stop: it then finishes its batch, commits, and sends its
:class:`~kstream.detector.loop.DetectorStats` back. Processes are started with ``spawn`` (a fresh
interpreter, no client threads copied by a fork). :class:`DetectorPool` is the same interface
with threads of one process (for callers that already hold a model and store in memory).

>>> pool = DetectorPool(lambda: None, 0)
Traceback (most recent call last):
...
kstream.errors.ConfigError: a detector pool needs at least one detector, not 0
"""

from __future__ import annotations

import dataclasses
import json
import logging
import multiprocessing
import queue
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from kstream.data import datasets
from kstream.data.datasets import Dataset
from kstream.detector.crashpoints import crash_point_from_env
from kstream.detector.hotswap import SwapCheck
from kstream.detector.labels import LabelStream
from kstream.detector.loop import Detector, DetectorStats
from kstream.errors import BrokerError, ConfigError, KstreamError
from kstream.generator import GenerateStats, LabelPlan, generate
from kstream.learning.online import LearnerState, OnlineLearner
from kstream.learning.retrain import Retrainer
from kstream.messages.deadletters import RECORD_OVERHEAD
from kstream.modeling import artifacts
from kstream.modeling.artifacts import TrainedModel
from kstream.paths import PROJECT_ROOT
from kstream.retry import Deadline, wait_until
from kstream.settings import Settings
from kstream.stores.sqlite import Store

__all__ = ["DetectorPool", "DetectorProcesses", "LearnerProcess", "generate_in_process", "build_detector",
           "dead_letter_budget", "learner_group"]

log = logging.getLogger(__name__)

BROKER_DEFAULT_MAX_MESSAGE_BYTES = 1_048_588  # Kafka's default message.max.bytes
STOP_TIMEOUT_S = 120.0  # how long a detector process may take to finish its batch and commit once asked to stop
_SPAWN = multiprocessing.get_context("spawn")


def build_detector(settings: Settings, model: TrainedModel, store: Store, dlq_budget: int | None = None,
                   swap_check: SwapCheck | None = None) -> Detector:
    """A detector reading ``settings.topic`` in group ``settings.group`` of ``settings.bootstrap``,
    with the clients of ``settings.kafka`` (the backend ``--client`` picks).

    ``dlq_budget`` (default: :func:`dead_letter_budget`) bounds a dead letter's size so every one fits.
    With ``settings.drift`` it monitors drift against the model card's reference (a card without
    one stops here, naming the retrain command). It looks for a new version of the model in its
    folder every ``settings.model_check_s`` seconds (0: never), and swaps one in that passes
    ``swap_check`` (default: :meth:`SwapCheck.of` ``model``; see :mod:`kstream.detector.hotswap`).
    With ``settings.labels`` it reads ``settings.labels_topic``
    too (same consumer, same group), joins the labels to its predictions and scores prequential windows
    (:class:`~kstream.detector.labels.LabelStream`).
    """
    monitor = settings.drift_monitor(model.reference()) if settings.drift else None
    topics = [settings.topic, settings.labels_topic] if settings.labels else [settings.topic]
    consumer = settings.kafka.Consumer(settings.bootstrap, topics, settings.group, settings.kafka_options)
    producer = settings.kafka.Producer(settings.bootstrap, settings.kafka_options)
    labels = LabelStream(store, settings.topic, settings.labels_topic, model.card.label_classes, model.card.task,
                         settings.prequential_window, settings.label_pending,
                         settings.label_wait_s) if settings.labels else None
    return Detector(model, consumer, producer, store, settings.predictions_topic, settings.dlq_topic,
                    batch_size=settings.batch_size, poll_timeout_ms=settings.poll_timeout_ms,
                    outage_timeout_s=settings.outage_timeout_s, crash_at=crash_point_from_env(),
                    dlq_budget=dlq_budget if dlq_budget is not None else dead_letter_budget(settings),
                    monitor=monitor, alert_rules=settings.alert_rules() if settings.drift else (),
                    drift_topic=settings.drift_topic, alerts_topic=settings.alerts_topic,
                    swap_check=swap_check or SwapCheck.of(model, drift=settings.drift),
                    model_check_s=settings.model_check_s, labels=labels,
                    prequential_topic=settings.prequential_topic)


def dead_letter_budget(settings: Settings) -> int:
    """The largest dead letter the DLQ topic and the producer both take: the smaller of the topic's
    ``max.message.bytes`` (the broker default when it cannot be read) and the producer's largest
    request, less the client's per-record overhead. A DLQ too small for any dead letter stops the
    detector at start, in one line."""
    topic_limit = settings.kafka.topic_max_message_bytes(settings.bootstrap, settings.dlq_topic, settings.kafka_options)
    producer_limit = settings.kafka.Producer(settings.bootstrap, settings.kafka_options).max_request_size
    return min(topic_limit or BROKER_DEFAULT_MAX_MESSAGE_BYTES, producer_limit) - RECORD_OVERHEAD


class _Waiting:
    """What both pools share: waiting for a condition while watching for a failed detector."""

    def raise_failure(self) -> None:  # pragma: no cover - each pool says how its detectors fail
        raise NotImplementedError

    def wait_until(self, done: Callable[[], bool], timeout_s: float, every_s: float = 0.05) -> bool:
        """Poll ``done()`` until it holds, a detector fails, or ``timeout_s`` passes; returns ``done()``."""
        def done_unless_failed() -> bool:
            held = done()
            self.raise_failure()
            return held

        return wait_until(done_unless_failed, timeout_s, every_s)


class DetectorPool(_Waiting):
    """``n`` detectors made by ``make``, each on its own thread; a context manager."""

    def __init__(self, make: Callable[[], Detector], n: int) -> None:
        if n < 1:
            raise ConfigError(f"a detector pool needs at least one detector, not {n}")
        self._make = make
        self.n = n
        self.detectors: list[Detector] = []
        self._threads: list[threading.Thread] = []
        self._ready: list[threading.Event] = []
        self._failures: list[BaseException] = []

    def __enter__(self) -> DetectorPool:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Make the detectors and start their threads (each connects, then waits for a partition)."""
        for i in range(self.n):
            detector, ready = self._make(), threading.Event()
            thread = threading.Thread(target=self._work, args=(detector, ready), name=f"kstream-detector-{i}",
                                      daemon=True)
            self.detectors.append(detector)
            self._ready.append(ready)
            self._threads.append(thread)
            thread.start()

    def _work(self, detector: Detector, ready: threading.Event) -> None:
        try:
            _serve(detector, ready.set)
        except BaseException as err:  # noqa: BLE001 - re-raised in the caller's thread
            self._failures.append(err)
            ready.set()

    def wait_ready(self, timeout_s: float) -> None:
        """Block until every detector has a partition; BrokerError after ``timeout_s``."""
        deadline = Deadline(timeout_s)
        for event in self._ready:
            if not event.wait(deadline.remaining()):
                raise BrokerError(f"a detector got no partition within {timeout_s:.0f}s; is the topic there?")
        self.raise_failure()

    def raise_failure(self) -> None:
        """Re-raise the first error a detector thread ended with, if any."""
        if self._failures:
            raise self._failures[0]

    def stop(self) -> None:
        """Ask every detector to finish its batch and commit; wait for the threads."""
        for detector in self.detectors:
            detector.stop()
        for thread in self._threads:
            thread.join()

    @property
    def dead_lettered(self) -> int:
        """Dead letters written so far by all the detectors."""
        return sum(d.stats.dead_lettered for d in self.detectors)

    @property
    def stats(self) -> list[DetectorStats]:
        return [d.stats for d in self.detectors]


def _serve(detector: Detector, ready: Callable[[], None],
           on_batch: Callable[[int], None] | None = None) -> DetectorStats:
    with detector.consumer.connect(), detector.producer.connect():
        while not detector.consumer.assigned() and not detector.stopped:
            detector.step()
        ready()
        return detector.run(on_batch=on_batch)


def _stop_when_set(stop: Any, detector: Detector) -> None:
    """Stop ``detector`` once the parent sets ``stop`` (an event shared across processes)."""
    stop.wait()
    detector.stop()


def _portable(err: BaseException, what: str) -> KstreamError:
    """``err`` as an error that crosses a process boundary intact (kstream's own are kept as they are)."""
    if isinstance(err, KstreamError) and type(err).__module__ == "kstream.errors":
        return err
    return KstreamError(f"{what} failed: {type(err).__name__}: {err}")


def _child_setup(level: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the parent stops us in order
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("kafka").setLevel(logging.DEBUG if level <= logging.DEBUG else logging.CRITICAL)


def _detector_process(index: int, settings: Settings, model: TrainedModel, budget: int, ready: Any, stop: Any,
                      results: Any, level: int, dead_letters: Any, swap_check: SwapCheck | None) -> None:
    _child_setup(level)
    detector: Detector | None = None
    try:
        settings = settings.replace()  # checked again here, which registers its secrets with this process's logs
        with settings.open_store() as store:
            detector = build_detector(settings, model, store, budget, swap_check)
            watcher = threading.Thread(target=_stop_when_set, args=(stop, detector), daemon=True)
            watcher.start()
            # the parent's live view reads the dead-letter count as it grows (the rows it reads from the store)
            stats = _serve(detector, ready.set, lambda _: setattr(dead_letters, "value", detector.stats.dead_lettered))
        results.put((index, dataclasses.asdict(stats), None))
    except BaseException as err:  # noqa: BLE001 - sent to the parent, which raises it
        results.put((index, None, _portable(err, f"detector process {index}")))
    finally:
        ready.set()


class DetectorProcesses(_Waiting):
    """``n`` detector processes in one consumer group, the interface of :class:`DetectorPool`; a context manager.

    ``settings`` name the group, topics, store and client; ``budget`` is the dead-letter budget
    (:func:`dead_letter_budget`, measured once by the parent); ``swap_check`` what a new version of
    the model must match to take over (see :func:`build_detector`).
    """

    def __init__(self, settings: Settings, model: TrainedModel, n: int, budget: int,
                 swap_check: SwapCheck | None = None) -> None:
        if n < 1:
            raise ConfigError(f"a detector pool needs at least one detector, not {n}")
        self.settings, self.model, self.n, self.budget = settings, model, n, budget
        self.swap_check = swap_check
        self._stop = _SPAWN.Event()
        self._results = _SPAWN.Queue()
        self._ready: list[Any] = []
        self._procs: list[Any] = []
        self._stats: dict[int, DetectorStats] = {}
        self._failures: list[BaseException] = []
        self._dead_letters: list[Any] = []  # per process, shared: its dead letters so far

    def __enter__(self) -> DetectorProcesses:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Start the processes (each connects, then waits for a partition)."""
        level = logging.getLogger().getEffectiveLevel()
        for i in range(self.n):
            ready, dead_letters = _SPAWN.Event(), _SPAWN.Value("q", 0, lock=False)
            proc = _SPAWN.Process(target=_detector_process, name=f"kstream-detector-{i}", daemon=True,
                                  args=(i, self.settings, self.model, self.budget, ready, self._stop, self._results,
                                        level, dead_letters, self.swap_check))
            self._dead_letters.append(dead_letters)
            proc.start()
            self._ready.append(ready)
            self._procs.append(proc)

    def wait_ready(self, timeout_s: float) -> None:
        """Block until every detector has a partition; BrokerError after ``timeout_s``."""
        deadline = Deadline(timeout_s)
        for event in self._ready:
            while not event.wait(deadline.remaining(cap=0.2)):
                self.raise_failure()
                if deadline.expired:
                    raise BrokerError(f"a detector got no partition within {timeout_s:.0f}s; is the topic there?")
        self.raise_failure()

    def _collect(self, wait_s: float = 0.0) -> None:
        try:
            while True:
                index, stats, err = self._results.get(timeout=wait_s) if wait_s else self._results.get_nowait()
                if err is not None:
                    self._failures.append(err)
                else:
                    self._stats[index] = DetectorStats(**stats)
                wait_s = 0.0
        except queue.Empty:
            pass

    def raise_failure(self) -> None:
        """Raise the first error a detector process ended with (or its unexpected exit), if any."""
        self._collect()
        if self._failures:
            raise self._failures[0]
        for i, proc in enumerate(self._procs):
            if proc.exitcode is not None and i not in self._stats:
                self._collect(wait_s=1.0)  # its last words may still be on their way
                if self._failures:
                    raise self._failures[0]
                if i not in self._stats:
                    raise KstreamError(f"detector process {i} exited with code {proc.exitcode} before it finished; "
                                       "see its log above")

    def stop(self) -> None:
        """Ask every detector to finish its batch and commit; wait for the processes and their stats."""
        self._stop.set()
        deadline = Deadline(STOP_TIMEOUT_S)
        for proc in self._procs:
            proc.join(deadline.remaining(floor=0.1))
        self._collect(wait_s=0.5 if len(self._stats) + len(self._failures) < len(self._procs) else 0.0)
        for i, proc in enumerate(self._procs):
            if proc.is_alive():
                log.warning("detector process %d did not stop within %.0fs; terminating it", i, STOP_TIMEOUT_S)
                proc.terminate()
                proc.join(10)

    @property
    def dead_lettered(self) -> int:
        """Dead letters written so far by all the processes (read while they run)."""
        return sum(int(v.value) for v in self._dead_letters)

    @property
    def stats(self) -> list[DetectorStats]:
        """Each detector's totals (empty ones for a process that sent none back)."""
        return [self._stats.get(i, DetectorStats()) for i in range(len(self._procs))]


def learner_group(settings: Settings) -> str:
    """The consumer group of the online learner beside the detectors of ``settings.group``."""
    return f"{settings.group}.learner"


def _learner_process(settings: Settings, learn_dir: Path, stop: Any, results: Any, level: int,
                     restarted: str = "") -> None:
    _child_setup(level)
    try:
        settings = settings.replace()
        parent = multiprocessing.parent_process()
        log.info("%s started (pid %d)", "retrainer" if settings.learn == "retrain" else "online learner",
                 multiprocessing.current_process().pid)

        def orphaned() -> None:  # a parent killed outright cannot ask: the learner checkpoints and ends
            if parent is not None:
                parent.join()
                stop.set()

        threading.Thread(target=orphaned, daemon=True, name="kstream-learner-parent").start()
        with settings.kafka.Consumer(settings.bootstrap, [settings.topic, settings.labels_topic],
                                     learner_group(settings), settings.kafka_options).connect() as consumer:
            if settings.learn == "retrain":
                results.put((_retrain(settings, learn_dir, consumer, stop, restarted), None))
                return
            learner = OnlineLearner(learn_dir, consumer, settings.topic, settings.labels_topic,
                                    every=settings.learn_every, batch_size=settings.batch_size,
                                    max_pending=settings.label_pending)
            state = learner.run(stop)
        results.put((dataclasses.asdict(state), None))
    except BaseException as err:  # noqa: BLE001 - sent to the parent, which raises it
        results.put((None, _portable(err, "the learner process")))


def _retrain(settings: Settings, learn_dir: Path, consumer: Any, stop: Any, restarted: str = "") -> dict[str, Any]:
    """The retrainer's run (see :mod:`kstream.learning.retrain`): each decision stored and sent as it is made;
    ``restarted`` says why the process before this one ended, stored as a decision first."""
    policy = settings.retrain_policy()
    champion = artifacts.load_dir(learn_dir)
    training = None
    if policy.with_training:  # the champion's training split, read from the data it was trained on
        source = Path(champion.card.data_source) if champion.card.data_source else None
        if source is not None and not source.is_absolute():  # a bundled sample: relative to the checkout
            source = PROJECT_ROOT / source
        rows = champion.card.rows(datasets.load(champion.card.dataset, source, champion.card.level or None), "train")
        training = (rows.features[champion.features].to_numpy(dtype=np.float64),
                    rows.target(champion.card.task).to_numpy())
    monitor = settings.drift_monitor(champion.reference()) if policy.trigger == "drift" else None
    with settings.open_store() as store, \
            settings.kafka.Producer(settings.bootstrap, settings.kafka_options).connect() as producer:
        made = store.retrains(settings.topic)

        def decided(decision: dict[str, Any]) -> None:
            store.write_retrains([decision])
            producer.send(settings.retrains_topic, json.dumps(decision, default=str).encode(),
                          key=f"{decision['topic']}/{decision['attempt']}".encode())
            producer.flush()

        retrainer = Retrainer(learn_dir, consumer, settings.topic, settings.labels_topic, policy, decided, monitor,
                              training, attempts=int(made["attempt"].max()) if len(made) else 0,
                              batch_size=settings.batch_size, max_pending=settings.label_pending)
        if restarted:
            retrainer.restarted(restarted)
        decisions = retrainer.run(stop)
    return {"retrains": decisions}


#: Seconds between the learner process dying and the first start of the next (doubled for each death in a row,
#: up to :data:`LEARNER_RESTART_MAX_S`; a process that lived a minute resets it).
LEARNER_RESTART_S = 1.0
LEARNER_RESTART_MAX_S = 30.0


class LearnerProcess:
    """The online learner (:class:`~kstream.learning.online.OnlineLearner`), or with ``settings.learn`` retrain the
    retrainer (:class:`~kstream.learning.retrain.Retrainer`), in a process of its own beside the detectors; a
    context manager. :meth:`stop` asks it to end (the learner learns what the topics hold and checkpoints
    first); :attr:`state` is then the learner's :class:`~kstream.learning.online.LearnerState`, :attr:`retrains`
    the retrainer's decisions.

    A process that dies without a word (killed, out of memory) is started again by a watching thread, after a
    pause that doubles with each death in a row (:data:`LEARNER_RESTART_S`): the online learner goes on from its
    checkpoint, the retrainer from its group's offsets (storing the restart as a decision). The detectors keep
    serving the version they have all the while. An error the learner reports (bad settings, a model it cannot
    load) ends it for good: :meth:`raise_failure` raises it, and :attr:`error` holds it."""

    def __init__(self, settings: Settings, learn_dir: Path) -> None:
        self.settings, self.learn_dir = settings, Path(learn_dir)
        self._stop = _SPAWN.Event()
        self._results = _SPAWN.Queue()
        self._proc: Any = None
        self._lock = threading.Lock()
        self._watch: threading.Thread | None = None
        self.state: LearnerState | None = None  # the online learner's final state
        self.retrains: list[dict[str, Any]] | None = None  # the retrainer's decisions (of its last process)
        self.error: BaseException | None = None  # what the learner ended with, if it failed
        self.restarts = 0  # processes started again after one died
        self._started = 0.0  # monotonic time the last process started

    def __enter__(self) -> LearnerProcess:
        self._start("")
        self._watch = threading.Thread(target=self._watching, daemon=True, name="kstream-learner-watch")
        self._watch.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _start(self, restarted: str) -> None:
        level = logging.getLogger().getEffectiveLevel()
        # not a daemon: the retrainer trains its challengers in a process of its own (stop() always joins it)
        self._proc = _SPAWN.Process(target=_learner_process, name="kstream-learner", daemon=False,
                                    args=(self.settings, self.learn_dir, self._stop, self._results, level, restarted))
        self._proc.start()
        self._started = time.monotonic()

    def _watching(self) -> None:
        """Start the learner again each time it dies without a result, until it is asked to stop."""
        pause = LEARNER_RESTART_S
        while not self._stop.wait(0.5):
            with self._lock:
                if self._stop.is_set() or self.done or self._proc.exitcode is None:
                    continue
                try:
                    self._collect(1.0)  # it ended with an error (kept for raise_failure) or a result
                    log.error("the learner process ended: %s", self.error or "done")
                    return
                except KstreamError:  # it died without a word
                    pass
                code = self._proc.exitcode
                pause = LEARNER_RESTART_S if time.monotonic() - self._started > 60 else min(pause * 2,
                                                                                            LEARNER_RESTART_MAX_S)
                log.warning("the learner process died (exit code %s); starting it again in %.0fs (the detectors go "
                            "on with the version they have)", code, pause)
            if self._stop.wait(pause):
                return
            with self._lock:
                if not self._stop.is_set():
                    self.restarts += 1
                    self._start(f"the retrainer process died (exit code {code}) and was started again: an attempt "
                                "it was making is lost, and its window starts empty")

    def raise_failure(self) -> None:
        """Raise the error the learner ended with, if it ended with one."""
        if self.error is not None:
            raise self.error

    @property
    def done(self) -> bool:
        """True once the process has sent back its result or its error."""
        return self.state is not None or self.retrains is not None or self.error is not None

    def _collect(self, wait_s: float) -> None:
        try:
            state, err = self._results.get(timeout=wait_s)
        except queue.Empty:
            raise KstreamError(f"the learner process exited with code {self._proc.exitcode} before it finished; "
                               "see its log above") from None
        if err is not None:
            self.error = err
        elif "retrains" in state:
            self.retrains = state["retrains"]
        else:
            self.state = LearnerState(**state)

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> LearnerState | None:
        """Ask the learner to finish (see the class); its final state."""
        if self._proc is None:
            return self.state
        self._stop.set()
        if self._watch is not None:
            self._watch.join()
        if self.done:
            self.raise_failure()
            return self.state
        self._proc.join(timeout_s)
        if self._proc.is_alive():
            log.warning("the learner process did not stop within %.0fs; terminating it (it goes on from its last "
                        "checkpoint next time)", timeout_s)
            self._proc.terminate()
            self._proc.join(10)
            return None
        try:
            self._collect(1.0)
        except KstreamError:  # it died without a word just before the stop, too late for the watcher to restart it
            log.warning("the learner process died (exit code %s) as it was asked to stop; what it learned is what "
                        "its last checkpoint holds", self._proc.exitcode)
            return None
        self.raise_failure()
        return self.state


def _generator_process(settings: Settings, rows: Dataset, rate: float, limit: int | None, progress: bool,
                       results: Any, level: int, features: list[str] | None, labels: LabelPlan | None) -> None:
    _child_setup(level)
    try:
        settings = settings.replace()
        with settings.kafka.Producer(settings.bootstrap, settings.kafka_options).connect() as producer:
            stats = generate(rows, producer, settings.topic, rate=rate, limit=limit, progress=progress,
                             value_format=settings.value_format, features=features, labels=labels)
        results.put((stats.records, stats.seconds, stats.labels, None))
    except BaseException as err:  # noqa: BLE001 - sent to the parent, which raises it
        results.put((0, 0.0, 0, _portable(err, "the generator process")))


def generate_in_process(settings: Settings, rows: Dataset, rate: float = 0.0, limit: int | None = None,
                        progress: bool = True, check: Callable[[], None] | None = None,
                        features: list[str] | None = None, labels: LabelPlan | None = None) -> GenerateStats:
    """:func:`~kstream.generator.generate` ``rows`` into ``settings.topic`` from a process of its own
    (``features``: the order of a vector value; ``labels``: the labels to send after the records, see
    :func:`~kstream.generator.generate`).

    ``check`` is called while it runs (a detector pool's ``raise_failure``), so a failing
    detector stops the wait; the generator's own error is raised here.
    """
    results = _SPAWN.Queue()
    level = logging.getLogger().getEffectiveLevel()
    proc = _SPAWN.Process(target=_generator_process, name="kstream-generator", daemon=True,
                          args=(settings, rows, rate, limit, progress, results, level, features, labels))
    proc.start()
    try:
        while True:
            try:
                records, seconds, labelled, err = results.get(timeout=0.2)
                break
            except queue.Empty:
                if check is not None:
                    check()
                if proc.exitcode is not None and results.empty():
                    raise KstreamError(
                        f"the generator process exited with code {proc.exitcode}; see its log above") from None
        if err is not None:
            raise err
        return GenerateStats(records, seconds, labelled)
    finally:
        proc.join(30)
        if proc.is_alive():
            proc.terminate()
            proc.join(10)
