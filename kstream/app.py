"""Jobs that wire the parts together; the CLI and the notebooks call these.

Each job takes the run's :class:`~kstream.settings.Settings`, loads the data once, resolves the
model it names once (:meth:`~kstream.settings.Settings.model_ref`, whose label level follows the
data) and passes both on.

- :func:`kafka_cluster`: the bootstrap address to use (the user's cluster, the running local
  broker, or a temporary one for the duration of a block); :func:`broker_topics`,
  :func:`delete_broker_topics`: what a long-lived cluster keeps of the runs, and its deletion;
- :func:`load_data`, :func:`model_for`: the data, and the model checked against it (trained
  when a job may train it), so a model never scores data it does not match;
- :func:`train`, :func:`evaluate`: a model trained, or scored offline (what streaming reproduces);
- :func:`send`, :func:`capture`, :func:`detect`: the generator (dataset records, or flows metered
  from packets) and the detector, each on its own;
- :func:`run`: the whole job (model -> stream -> classify -> summarize) with 1..N detectors;
- :func:`report`: a finished run's figures and one-page ``report.md``.

How many records a job sends or handles is ``settings.records`` (0: all of them).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from tqdm.auto import tqdm

from kstream.analysis import summaries
from kstream.analysis.watch import BatchTally, LiveState, StoreWatch
from kstream.data import datasets, leakage
from kstream.data.datasets import Dataset
from kstream.data.order import resolve_order
from kstream.detector.hotswap import SwapCheck
from kstream.detector.loop import DetectorStats
from kstream.detector.pool import (
    DetectorProcesses,
    LearnerProcess,
    build_detector,
    dead_letter_budget,
    generate_in_process,
)
from kstream.errors import BrokerError, ConfigError, KstreamError, ModelError
from kstream.generator import GenerateStats, LabelPlan, generate
from kstream.learning.online import prepare_learn_dir
from kstream.modeling import artifacts, training, zoo
from kstream.modeling.artifacts import ModelCard, ModelRef, TrainedModel
from kstream.modeling.quality import scores_with_leakage
from kstream.paths import RUNS_DIR
from kstream.servers import broker, daemon, retention
from kstream.settings import Settings
from kstream.stores.sqlite import Store

if TYPE_CHECKING:  # matplotlib is imported only when a report is asked for
    from kstream.analysis.report import Run

__all__ = [
    "kafka_cluster",
    "broker_topics",
    "delete_broker_topics",
    "load_data",
    "model_for",
    "unseen_rows",
    "train",
    "features_of",
    "evaluate",
    "build_detector",
    "detect",
    "decisions",
    "send",
    "capture",
    "run",
    "in_order",
    "order_of",
    "label_plan",
    "RunResult",
    "report",
]

log = logging.getLogger(__name__)

@contextlib.contextmanager
def kafka_cluster(settings: Settings, start_local: bool = True) -> Iterator[Settings]:
    """Yield ``settings`` with a reachable ``bootstrap`` and the client options it needs.

    Order: ``settings.bootstrap`` if given (checked, never provisioned); else the broker of
    ``kstream broker start`` if it runs; else, with ``start_local``, a temporary local broker
    stopped when the block ends. The login of a SASL local broker is added to the client
    options (options the user set win).
    """
    bootstrap = settings.bootstrap or daemon.running_bootstrap()
    if bootstrap:
        local = daemon.running_options() if bootstrap == daemon.running_bootstrap() else {}
        local = settings.kafka.from_kafka_python(local)  # the local broker's login, in the backend's names
        resolved = settings.replace(bootstrap=bootstrap, kafka_options={**local, **settings.kafka_options})
        resolved.kafka.check_reachable(resolved.bootstrap, resolved.kafka_options)
        yield resolved
        return
    if not start_local:
        raise BrokerError("no Kafka broker: run `kstream broker start`, or pass --bootstrap / set KSTREAM_BOOTSTRAP")
    with broker.LocalBroker(partitions=settings.partitions or 1) as temporary:
        yield settings.replace(bootstrap=temporary.bootstrap)


def broker_topics(settings: Settings) -> list[retention.TopicUse]:
    """The topics of the cluster ``settings`` reach (by default the local broker, which must run), each with the
    run that made it (:mod:`kstream.servers.retention`); on the local broker also with the bytes and last write
    of its partition folders."""
    with kafka_cluster(settings, start_local=False) as resolved:
        return _topic_table(resolved)


def _topic_table(resolved: Settings) -> list[retention.TopicUse]:
    partitions = resolved.kafka.list_topics(resolved.bootstrap, resolved.kafka_options)
    local = daemon.daemon_status()
    usage = retention.disk_usage(local.log_dirs()) if local and local.bootstrap == resolved.bootstrap else None
    return retention.topic_table(partitions, usage)


def delete_broker_topics(settings: Settings, names: Sequence[str] = (), older_than: dt.timedelta | None = None,
                         dry_run: bool = False) -> list[str]:
    """Delete the topics ``names`` (run ids or topic names) and ``older_than`` pick
    (:func:`kstream.servers.retention.select`) from the cluster ``settings`` reach; the ones deleted (with
    ``dry_run``, the ones that would be)."""
    with kafka_cluster(settings, start_local=False) as resolved:  # one reachability check for list and delete
        picked = retention.select(_topic_table(resolved), names, older_than)
        if dry_run or not picked:
            return picked
        return resolved.kafka.delete_topics(resolved.bootstrap, picked, resolved.kafka_options)


def load_data(settings: Settings, data: str | Path | None = None) -> Dataset:
    """``settings.dataset`` from the bundled sample or ``data``, labels at ``settings.level``
    (or, without one, at the data's own default level)."""
    return datasets.load(settings.dataset, data or None, level=settings.level or None,
                         label_column=settings.label_column or None)


def model_for(ref: ModelRef, ds: Dataset | None = None, *, train_missing: bool = False,
              retrain: bool = False, allow_missing: bool = False) -> TrainedModel:
    """The model ``ref`` names, checked against ``ds`` when given.

    With ``train_missing`` a model that does not exist yet is trained on ``ds``; with
    ``retrain`` it is trained again. A model that does not match the data (features it needs
    that the data lacks, another label level, no class in common, another split seed than
    ``ref.seed``, another split mode than ``ref.split_mode`` or another temporal boundary than
    ``ref.train_until``) stops the job with one line naming
    the model, what is wrong and the fix.
    With ``allow_missing`` features the data lacks are imputed instead (but not all of them).
    """
    if retrain or (train_missing and not ref.trained):
        if ds is None:
            raise ConfigError(f"training {ref.name} needs its data")
        log.info("%s %s on %s", "retraining" if ref.trained else "training", ref.name, ds.source)
        return training.train(ref, trainable(ds))
    if ds is None:
        return artifacts.load(ref)
    train_it = " ".join(filter(None, (ref.train_command(), ds.data_option)))
    if not ref.trained:
        raise ModelError(f"no trained model {ref.name} in {ref.models_dir}; train it with `{train_it}`")
    card = ModelCard.read(ref.directory / "model.json")  # checked before unpickling anything
    problems = artifacts.mismatches(card, ds, allow_missing)
    if ref.seed is not None and ref.seed != card.seed:
        problems.append(f"it was trained on the split of seed {card.seed}, not {ref.seed}")
    if ref.split_mode and ref.split_mode != card.split_mode:
        problems.append(f"it was trained on a {card.split_mode} split, not a {ref.split_mode} one")
    elif ref.train_until and (not card.train_until
                              or leakage.parse_until(ref.train_until) != leakage.parse_until(card.train_until)):
        problems.append(f"it was trained on the flows before {card.train_until}, not before {ref.train_until}")
    if problems:
        fix = "retrain it with --retrain" if train_missing else f"train one with `{train_it}`"
        raise ModelError(f"model {ref.name} does not fit {ds.source}: {'; '.join(problems)}; {fix}")
    return artifacts.load(ref)


def trainable(ds: Dataset) -> Dataset:
    """``ds``, or for unlabelled flows (a packet capture) the bundled sample restricted to their features."""
    if ds.labelled:
        return ds
    log.info("%s has no labels: training on the bundled sample, restricted to its %d features", ds.source,
             len(ds.feature_names))
    return datasets.load(ds.name, level=ds.level).restrict(ds.feature_names, f"the flows of {ds.source}")


def unseen_rows(model: TrainedModel, ds: Dataset) -> Dataset:
    """The rows of ``ds`` the model was not trained on: its held-out split when ``ds`` is the data it
    was trained on, else all of them."""
    return model.held_out(ds) if ds.source == model.card.data_source else ds


def train(settings: Settings, data: str | Path | None = None, params: dict[str, Any] | None = None,
          class_weight: str = "balanced", features: Sequence[str] | None = None,
          features_from: str = "", learning_curve: bool = False) -> TrainedModel:
    """Train the model ``settings`` name on ``data`` (default: the bundled sample) and save it.

    ``features`` restricts training to those features (canonical names, or any spelling the
    dataset's format knows), e.g. the ones another source has (:func:`features_of`), so the model
    can score that source; ``features_from`` says where they came from, for the card. With
    ``learning_curve`` the card also gets the held-out scores at growing training sizes.
    """
    zoo.build_pipeline(settings.model, params, class_weight=class_weight)  # bad hyperparameters fail before any read
    ds = trainable(load_data(settings, data))
    if features is not None:
        ds = ds.restrict(features, features_from or "the --features list")
    return training.train(settings.model_ref(ds), ds, params, class_weight, learning_curve=learning_curve)


def features_of(settings: Settings, source: str) -> list[str]:
    """The features a source offers: ``capture`` (what packets give,
    :data:`kstream.data.formats.capture.CAPTURE_FEATURES`), or a data file of ``settings.dataset``'s format (its
    columns, read from its header where it can)."""
    if source == "capture":
        from kstream.data.formats.capture import CAPTURE_FEATURES  # NFStream only when captures are asked for

        return list(CAPTURE_FEATURES)
    return datasets.spec(settings.dataset).feature_names_of(source, settings.label_column or None)


def evaluate(settings: Settings, data: str | Path | None = None, split: str | None = None,
             allow_missing: bool = False) -> tuple[dict, pd.DataFrame]:
    """Score the model ``settings`` name offline on ``data`` (default: the bundled sample).

    ``split`` ``test`` is the model's held-out split (the card's seed and mode); ``all`` every
    row; the default is the rows the model was not trained on (:func:`unseen_rows`). With
    ``allow_missing``, features the data lacks are imputed and listed in ``missing_features``.
    Beside the scores: ``seen_in_training`` (scored rows whose feature vector a training row had,
    for any data), ``unseen`` (the other rows' scores), the ``ceiling`` label conflicts allow, and
    ``classes_absent_from_training`` (scored classes no training row had, with their row counts:
    known on the data the model was trained on, and for a multi-class model on any data).
    Returns the scores and a frame ``record_id, true_label, predicted_label, score, seen_in_training``.
    """
    ds = load_data(settings, data)
    model = model_for(settings.model_ref(ds), ds, allow_missing=allow_missing)
    rows = unseen_rows(model, ds) if split is None else model.card.rows(ds, split)
    x = rows.features.reindex(columns=model.features).to_numpy(dtype="float64")
    labels, scores = model.predict(x)
    truth = rows.target(settings.task).to_numpy()
    seen = model.seen_in_training(rows, ds)
    hashes = leakage.vector_hashes(rows.features, model.features)
    result = scores_with_leakage(truth, labels, sorted(set(model.card.classes) | set(truth)), settings.task,
                                 hashes, seen)
    result["missing_features"] = artifacts.missing_features(model.card, ds)
    result["model_features"] = len(model.features)
    result["classes_absent_from_training"] = _absent_classes(model, ds, rows, settings.task)
    frame = pd.DataFrame({"record_id": rows.ids.to_numpy(), "true_label": truth, "predicted_label": labels,
                          "score": scores, "seen_in_training": seen if seen is not None else pd.NA})
    return result, frame


def _absent_classes(model: TrainedModel, ds: Dataset, rows: Dataset, task: str) -> dict[str, int] | None:
    """The classes of ``rows`` (at the data's label level) no training row of ``model`` had, with their
    counts; None when the training rows are unknown (other data, a binary model)."""
    if ds.source == model.card.data_source:
        return leakage.absent_classes(rows.labels, model.card.rows(ds, "train").labels)
    return leakage.absent_classes(rows.labels, model.card.classes) if task == "multi_class" else None


def detect(
    settings: Settings,
    model: TrainedModel,
    idle_timeout_s: float | None = None,
    progress: bool = True,
    handle_signals: bool = True,
    data: Dataset | None = None,
) -> DetectorStats:
    """Run one detector with ``model`` until stopped (SIGINT/SIGTERM), ``settings.records`` handled
    (0: no limit), or ``idle_timeout_s`` seconds with every record read.

    With ``progress``, a progress bar carries one live status line (records/s, p99 latency, classes,
    dead letters, drift, model swaps), tallied from the batches handled and redrawn at most once a second.
    A new version of the model written into its folder takes over at a batch boundary
    (``settings.model_check_s``; :mod:`kstream.detector.hotswap`) when it fits the stream: the
    model's features and classes, and those of ``data`` (the data streamed), when given.
    """
    if settings.drift:
        model.reference()  # a card without a drift reference stops here, naming the retrain command
    settings.kafka.ensure_topics(settings.bootstrap, _topics(settings), settings.kafka_options)
    learner: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
    if settings.learn != "static":  # served from the learn folder, where the learner's versions come
        model = artifacts.load_dir(prepare_learn_dir(settings.learn_folder(), model))
        learner = LearnerProcess(settings, model.path)
    with settings.open_store() as store:
        with learner:
            detector = build_detector(settings, model, store, swap_check=SwapCheck.of(model, data, settings.drift))
            tally, shown = BatchTally(), [0.0]

            def on_batch(handled: int) -> None:
                bar.update(handled)
                tally.add(detector.last_result, detector.stats)
                if time.monotonic() - shown[0] >= 1.0:
                    bar.set_postfix_str(tally.status_line(), refresh=False)
                    shown[0] = time.monotonic()

            with detector.consumer.connect(), detector.producer.connect():
                with tqdm(total=settings.records or None, unit="rec", desc="detect", disable=not progress) as bar:
                    stats = detector.run(settings.records or None, idle_timeout_s,
                                         on_batch=on_batch if progress else None, handle_signals=handle_signals)
                    if progress:
                        tally.add(None, stats)
                        bar.set_postfix_str(tally.status_line())
        if isinstance(learner, LearnerProcess):  # stopped on leaving the block above
            stats.learner = None if learner.state is None else {**dataclasses.asdict(learner.state),
                                                                "restarts": learner.restarts}
            stats.retrains = decisions(store, settings.topic) if settings.learn == "retrain" else None
    return stats


def decisions(store: Store, topic: str) -> list[dict[str, Any]]:
    """The retraining decisions ``store`` holds for ``topic``, by attempt, as plain values (every process's:
    a retrainer started again after it died numbers on)."""
    return [{str(k): None if isinstance(v, float) and math.isnan(v) else v.item() if hasattr(v, "item") else v
             for k, v in row.items()} for row in store.retrains(topic).to_dict("records")]


def send(
    settings: Settings,
    split: str = "test",
    data: str | Path | None = None,
    rate: float = 0.0,
    loop: bool = False,
    progress: bool = True,
) -> GenerateStats:
    """Stream a split of ``settings.dataset`` into ``settings.topic``: ``settings.records`` of them (0: all,
    or with ``loop`` without end), at ``rate`` records per second (0: as fast as possible).

    The ``test`` split is the held-out split of the model ``settings`` name when it is trained
    (its card's seed, split mode and temporal boundary), else the split of ``settings.seed``
    (default 42), ``settings.split_mode`` (default grouped) and ``settings.train_until``. The records
    go in ``settings.order`` (:meth:`~kstream.data.datasets.Dataset.in_order`: by default in time
    order where the data has flow times, else shuffled with ``settings.seed``, else 42); with
    ``loop`` every pass repeats that order.

    With ``settings.label_delay``, each record's label follows it to ``settings.labels_topic`` after that
    delay (:func:`label_plan`).
    """
    ds = load_data(settings, data)
    ref = settings.model_ref(ds)
    if ref.trained:
        card = ModelCard.read(ref.directory / "model.json")
        mode = ref.split_mode or card.split_mode
        until = ref.train_until or (card.train_until if mode == card.split_mode else "")
        card = dataclasses.replace(card, seed=card.seed if ref.seed is None else ref.seed, split_mode=mode,
                                   train_until=until)
        rows = card.rows(ds, split)
    else:
        rows = ds.subset(split, seed=ref.split_seed, mode=ref.train_split_mode, until=ref.train_until)
    rows = in_order(rows, settings)
    plan = label_plan(settings, rows, ref.level)
    settings.kafka.ensure_topics(settings.bootstrap, _topics(settings), settings.kafka_options)
    with settings.kafka.Producer(settings.bootstrap, settings.kafka_options).connect() as producer:
        return generate(rows, producer, settings.topic, rate=rate, limit=settings.records or None, loop=loop,
                        progress=progress,
                        value_format=settings.value_format, features=card.features if ref.trained else None,
                        labels=plan)


def label_plan(settings: Settings, rows: Dataset, level: str = "") -> LabelPlan | None:
    """The labels the generator sends after ``rows`` (None without ``settings.label_delay``): each row's class for
    ``settings.task`` (``benign``/``attack``, or the class at ``level``), to ``settings.labels_topic``. Data without
    labels (flows from packets) stops here, in one line.

    >>> import numpy as np
    >>> plan = label_plan(Settings(label_delay="2s"), datasets.load("cicids2017").take(np.arange(3)))
    >>> plan.delay.seconds, list(plan.values)
    (2.0, ['benign', 'benign', 'benign'])
    """
    delay = settings.label_schedule
    if delay is None:
        return None
    if not rows.labelled:
        raise ConfigError(f"{rows.source or rows.name} holds flows without labels (a packet capture): there is no "
                          "label to send; drop --label-delay (or unset KSTREAM_LABEL_DELAY)")
    if settings.task == "multi_class" and level and level != rows.level:
        rows = rows.with_level(level)
    return LabelPlan(settings.labels_topic, rows.target(settings.task).to_numpy().tolist(), delay)


def capture(
    settings: Settings,
    pcap: str | Path | None = None,
    interface: str | None = None,
    rate: float = 0.0,
    flow_idle_timeout_s: int = 5,
    progress: bool = True,
) -> GenerateStats:
    """Meter flows from packets and stream them into ``settings.topic`` (the generator's contract).

    From a capture file ``pcap`` (all its flows, or the first ``settings.records``), or live from
    ``interface``: a flow is sent when it ends, after ``flow_idle_timeout_s`` without a packet or 120 s
    from its first; Ctrl-C stops, or ``settings.records`` flows (0: no limit).
    """
    spec = datasets.spec(settings.dataset)
    if not spec.captures:
        raise ConfigError(f"{spec.name} has no packet-capture features; capture with -d cicids2017")
    if settings.label_schedule is not None:
        raise ConfigError("flows metered from packets have no labels to send; unset KSTREAM_LABEL_DELAY")
    if (pcap is None) == (interface is None):
        raise ConfigError("give a capture file (kstream capture FILE) or --interface, not both and not neither")
    settings.kafka.ensure_topics(settings.bootstrap, _topics(settings), settings.kafka_options)
    with settings.kafka.Producer(settings.bootstrap, settings.kafka_options).connect() as producer:
        if pcap is not None:
            flows = datasets.load(spec.name, pcap)
            return generate(flows, producer, settings.topic, rate=rate, limit=settings.records or None,
                            progress=progress,
                            value_format=settings.value_format)
        from kstream.data.formats.capture import flows_from_interface  # NFStream only when a capture is asked for

        assert interface is not None  # one of the two, checked above
        sent, start = 0, time.perf_counter()
        batches = flows_from_interface(interface, batch_size=64, max_flows=settings.records,
                                       idle_timeout=flow_idle_timeout_s)
        try:
            for ids, features in batches:
                batch = spec.flows(ids, features, f"interface {interface}")
                sent += generate(batch, producer, settings.topic, rate=rate, progress=False,
                                 value_format=settings.value_format).records
        except KeyboardInterrupt:
            log.info("capture on %s stopped", interface)
        finally:
            batches.close()
        return GenerateStats(sent, time.perf_counter() - start)


@dataclass
class RunResult:
    """What :func:`run` leaves behind: the run folder, where its predictions are, and the summary."""

    run_dir: Path
    store: str  # the store's location (a SQLite file, or a MongoDB URL with the password masked)
    summary: dict[str, Any]


def run(
    settings: Settings,
    rate: float = 0.0,
    data: str | Path | None = None,
    run_dir: Path | None = None,
    retrain: bool = False,
    progress: bool = True,
    detectors: int = 1,
    ready_timeout_s: float = 60,
    drain_timeout_s: float = 120,
    allow_missing: bool = False,
    on_progress: Callable[[LiveState], None] | None = None,
    progress_every_s: float = 1.0,
    delete_topics: bool = False,
) -> RunResult:
    """The main job: model (trained if missing) -> generator -> Kafka -> detector(s) -> store -> summary.

    The records sent are the ones the model was not trained on (:func:`unseen_rows`), in
    ``settings.order`` (:func:`in_order`: by default in time order where the data has flow times,
    else a shuffle seeded by ``settings.seed``, else 42), ``settings.records`` of them (0: all),
    as :func:`send` sends them. The generator and each of the
    ``detectors`` detectors run in a process of their own (:mod:`kstream.detector.pool`); the detectors
    share one consumer group, so Kafka spreads the topic's partitions over them: ``settings.partitions``
    (at least ``detectors``), or one per detector when it is 0. Topics and group get the run's id as a
    suffix, so runs on a long-lived cluster never read each other's records. The run folder gets
    ``summary.json`` and, unless ``settings.store_url`` names another store, ``predictions.sqlite``.

    While it streams, ``on_progress`` gets a :class:`~kstream.analysis.watch.LiveState` (what the detectors
    have stored so far) about every ``progress_every_s`` seconds, on this thread, and once more at
    the end; with ``progress`` the same state is the status line of a progress bar. With
    ``settings.drift`` the summary counts drift windows, drifted windows and alerts.

    With ``settings.label_delay`` the generator sends each record's label after that delay
    (:func:`label_plan`), the detectors join the labels to their predictions, and the summary lists the
    prequential windows (``prequential``: records, accuracy, macro-F1, TPR/FAR, per-class recall, label delay,
    model id...) as the store holds them, with the labels' counts (``labels``).

    With ``delete_topics`` the run's topics are deleted from the cluster once every detector has stopped and the
    store holds every prediction (a run that fails keeps them, to be looked at): the store keeps what the run
    wrote, the broker nothing (:mod:`kstream.servers.retention`).
    """
    if detectors < 1:
        raise ConfigError(f"a run needs at least one detector, not {detectors}")
    if settings.partitions and detectors > settings.partitions:
        raise ConfigError(f"{detectors} detectors need at least {detectors} partitions, not {settings.partitions}; "
                          f"leave partitions unset (one per detector) or set --partitions {detectors}")
    settings = settings.replace(partitions=settings.partitions or detectors,
                                labels=settings.labels or settings.label_schedule is not None)
    ds = load_data(settings, data)
    ref = settings.model_ref(ds)
    model = model_for(ref, ds, train_missing=True, retrain=retrain, allow_missing=allow_missing)
    if settings.drift:
        model.reference()  # a card without a drift reference stops here, before any broker starts
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    run_dir = Path(run_dir) if run_dir else RUNS_DIR / f"{stamp[:15]}-{ref.dataset}-{ref.task_dir}-{ref.model}"
    run_dir.mkdir(parents=True, exist_ok=True)
    suffix = stamp.replace("-", "")
    settings = settings.replace(
        topic=f"{settings.topic}.{suffix}",
        predictions_topic=f"{settings.predictions_topic}.{suffix}",
        dlq_topic=f"{settings.dlq_topic}.{suffix}",
        drift_topic=f"{settings.drift_topic}.{suffix}",
        alerts_topic=f"{settings.alerts_topic}.{suffix}",
        labels_topic=f"{settings.labels_topic}.{suffix}",
        prequential_topic=f"{settings.prequential_topic}.{suffix}",
        retrains_topic=f"{settings.retrains_topic}.{suffix}",
        group=f"{settings.group}.{suffix}",
        store_url=settings.store_url or (str(run_dir / "predictions.sqlite") if settings.store == "sqlite" else ""),
    )
    rows = in_order(unseen_rows(model, ds), settings)
    if settings.learn != "static":  # the detectors serve the learn folder, where the learner's versions come
        model = artifacts.load_dir(prepare_learn_dir(settings.learn_folder(run_dir), model))
    plan = label_plan(settings, rows, ref.level)
    expected = min(settings.records, len(rows)) if settings.records else len(rows)
    with kafka_cluster(settings) as settings, settings.open_store() as store:
        settings.kafka.ensure_topics(settings.bootstrap, _topics(settings), settings.kafka_options)
        with tqdm(total=expected, unit="rec", desc="detect", disable=not progress) as bar:
            # the generator and each detector in a process of its own: no interpreter lock is shared
            # the stream is the model's held-out rows when ds is its data: a new version must share that split
            swap_check = SwapCheck.of(model, ds, settings.drift, held_out=ds.source == model.card.data_source)
            learner = LearnerProcess(settings, model.path) if settings.learn != "static" else None
            with DetectorProcesses(settings, model, detectors, dead_letter_budget(settings), swap_check) as pool, \
                    learner or contextlib.nullcontext():
                sent_so_far: list[int | None] = [None]  # known when the generator process ends
                watch = StoreWatch(store, settings.topic, lambda: pool.dead_lettered, lambda: sent_so_far[0],
                                   settings.drift, progress_every_s, labels=settings.labels,
                                   retrains=settings.learn == "retrain")
                show = _shower(watch, bar, on_progress, progress)
                pool.wait_ready(ready_timeout_s)

                def check() -> None:  # between the generator's steps: a failed detector stops the run
                    pool.raise_failure()
                    if learner is not None:
                        learner.raise_failure()
                    show()

                sent = generate_in_process(settings, rows, rate=rate, limit=settings.records or None, progress=False,
                                           check=check, features=model.features, labels=plan)
                sent_so_far[0] = sent.records

                def drained() -> bool:  # distinct stored records (and labels), not handled ones: a rebalance redelivers
                    return (store.count(settings.topic) >= sent.records
                            and (not sent.labels or store.count_labels(settings.topic) >= sent.labels))

                pool.wait_until(lambda: show() or drained(), drain_timeout_s)
            show(force=True)  # the final state: every detector has stopped and written its last window
        deleted = None
        if delete_topics and store.count(settings.topic) >= expected:
            deleted = settings.kafka.delete_topics(settings.bootstrap, list(_topics(settings)), settings.kafka_options)
            log.info("deleted the run's topics: %s", ", ".join(deleted))
        frame = store.frame(settings.topic)
        windows = store.windows(settings.topic) if settings.drift else None
        prequential = store.prequential(settings.topic) if settings.labels else None
        retrains = decisions(store, settings.topic) if settings.learn == "retrain" else None
        location = store.location
    summary = summaries.summarize(frame, rows.truth(settings.task), settings.task)
    seen = model.seen_in_training(rows, ds)
    summary.update(
        seen_in_training=None if seen is None else int(seen[: sent.records].sum()),
        sent=sent.records,
        send_rate_rps=sent.rate,
        dead_lettered=sum(s.dead_lettered for s in pool.stats),
        imputed=sum(s.imputed for s in pool.stats),
        per_detector=[s.records for s in pool.stats],
        drift=None if windows is None else {
            "windows": len(windows), "drifted": int(windows["drifted"].sum()) if len(windows) else 0,
            "judged": int(windows["judged"].sum()) if len(windows) else 0,
            "alerts": int(sum(len(a) for a in windows["alerts"])) if len(windows) else 0},
        prequential=None if prequential is None else summaries.prequential_list(prequential),
        labels=None if not settings.labels else {"sent": sent.labels, **summaries.label_totals(
            [s.labels for s in pool.stats])},
        model_id=model.card.model_id,
        learn=settings.learn,
        learner=None if learner is None or learner.state is None else {**dataclasses.asdict(learner.state),
                                                                       "restarts": learner.restarts},
        retrains=retrains,
        swaps=sum(s.swaps for s in pool.stats),
        refused_models=sum(s.refused_models for s in pool.stats),
        topics_deleted=deleted,
        model_dir=str(model.path),
        model_data_source=model.card.data_source,
        missing_features=artifacts.missing_features(model.card, ds),
        bootstrap=settings.bootstrap,
        settings={**settings.redacted(), "level": ref.level, "seed": model.card.seed,
                  "split_mode": model.card.split_mode, "train_until": model.card.train_until,
                  "order": order_of(rows, settings), "rate": rate,
                  "detectors": detectors, "data": str(data) if data else None},
    )
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    if summary["records"] != expected:
        raise KstreamError(f"the detector stored {summary['records']} predictions for {expected} records sent; "
                           f"see {run_dir}")
    return RunResult(run_dir, location, summary)


def order_of(rows: Dataset, settings: Settings) -> str:
    """The order ``settings.order`` names for ``rows``: itself, or for an empty one ``time`` when the
    rows have flow times, else ``shuffle`` (:func:`kstream.data.order.resolve_order`).

    >>> order_of(datasets.load("nsl-kdd"), Settings(dataset="nsl-kdd"))
    'shuffle'
    """
    return resolve_order(settings.order, rows.times is not None, rows.source or rows.name)


def in_order(rows: Dataset, settings: Settings) -> Dataset:
    """``rows`` in the order records are sent in: ``settings.order`` (:func:`order_of`), a shuffle
    seeded by ``settings.seed`` (else 42). ``run``, ``send`` and the notebooks send this order."""
    order = order_of(rows, settings)
    log.info("sending %d records in %s order", len(rows), order)
    return rows.in_order(order, settings.seed)


def report(run_dir: str | Path | None = None, data: str | Path | None = None) -> tuple[Run, Path]:
    """Write the report of a finished run: ``figures/*.png`` and ``report.md`` in its folder.

    ``run_dir`` defaults to the newest run under ``runs/``; ``data`` is the data file the run streamed,
    when it has moved. Returns the loaded :class:`~kstream.analysis.report.Run` and the report's path.

    >>> report(Path("no-such-run"))
    Traceback (most recent call last):
    ...
    kstream.errors.DataError: no-such-run is not a run folder (no summary.json); run a stream first
    """
    from kstream.analysis import report as run_report  # matplotlib only when a report is asked for

    run = run_report.load_run(run_dir or run_report.latest_run(), data=data)
    return run, run_report.write_report(run)


def _shower(watch: StoreWatch, bar: Any, on_progress: Callable[[LiveState], None] | None,
            progress: bool) -> Callable[..., None]:
    """``show(force=False)``: when a view is due, read the store once and hand the state to the progress
    bar's status line and to ``on_progress``; a failure to show is logged, never raised."""

    def show(force: bool = False) -> None:
        if on_progress is None and not progress:
            return
        start = time.monotonic()
        state = watch.poll(force)
        if state is None:
            return
        try:
            bar.n = len(state.predictions)
            bar.set_postfix_str(state.status_line(), refresh=True)
            if on_progress is not None:
                on_progress(state)
        except Exception:  # noqa: BLE001 - a view must never stop the run
            log.exception("the live view failed; the run goes on")
        watch.done(time.monotonic() - start)

    return show


def _topics(settings: Settings) -> dict[str, int]:
    partitions = settings.partitions or 1
    topics = {settings.topic: partitions, settings.predictions_topic: partitions,
              settings.dlq_topic: 1}
    if settings.drift:
        topics.update({settings.drift_topic: 1, settings.alerts_topic: 1})
    if settings.labels or settings.label_schedule is not None:
        # co-partitioned with the flows: a record's label reaches the detector that scored it
        topics.update({settings.labels_topic: partitions, settings.prequential_topic: 1})
    if settings.learn == "retrain":
        topics[settings.retrains_topic] = 1
    return topics
