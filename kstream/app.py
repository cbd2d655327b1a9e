"""Jobs that wire the parts together; the CLI and the notebooks call these.

- :func:`kafka_cluster`: the bootstrap address to use (the user's cluster, the
  running local broker, or a temporary one for the duration of a block);
- :func:`ensure_model` / :func:`load_model` / :func:`load_dataset`: what a job's settings name;
- :func:`build_detector` / :func:`detect`: a configured detector and its loop;
- :func:`send`: the generator on a dataset split;
- :func:`evaluate`: a model scored offline on a dataset file (what streaming it must reproduce);
- :func:`run`: the whole job (train if needed -> stream -> classify -> summarize), with 1..N detectors.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from kstream import broker, datasets, metrics, modeling
from kstream.clients import Consumer, Producer, check_reachable, ensure_topics
from kstream.config import RUNS_DIR, Settings
from kstream.modeling import SEED
from kstream.consumer import Detector, DetectorStats
from kstream.errors import BrokerError, ConfigError, KstreamError
from kstream.producer import GenerateStats, generate
from kstream.sinks import SQLiteStore, open_store

__all__ = [
    "kafka_cluster",
    "ensure_model",
    "load_model",
    "load_dataset",
    "build_detector",
    "detect",
    "send",
    "evaluate",
    "run",
    "RunResult",
]

log = logging.getLogger(__name__)


@contextlib.contextmanager
def kafka_cluster(settings: Settings, start_local: bool = True) -> Iterator[str]:
    """Yield a reachable bootstrap address for ``settings``.

    Order: ``settings.bootstrap`` if given (checked, never provisioned); else
    the broker of ``kstream broker start`` if it runs; else, with
    ``start_local``, a temporary local broker stopped when the block ends.
    """
    if settings.bootstrap:
        check_reachable(settings.bootstrap, settings.kafka_options)
        yield settings.bootstrap
        return
    running = broker.running_bootstrap()
    if running:
        yield running
        return
    if not start_local:
        raise BrokerError("no Kafka broker: run `kstream broker start`, or pass --bootstrap / set KSTREAM_BOOTSTRAP")
    with broker.LocalBroker(partitions=settings.partitions) as local:
        yield local.bootstrap


def ensure_model(settings: Settings, data: str | Path | None = None, retrain: bool = False) -> modeling.TrainedModel:
    """Load the model ``settings`` names; train it first if it is missing (or ``retrain``)."""
    directory = modeling.artifact_dir(
        settings.dataset, settings.task, settings.model, settings.models_dir, settings.level
    )
    if retrain or not all((directory / name).exists() for name in ("model.joblib", "model.json")):
        log.info("no trained model at %s; training it now", directory)
        modeling.train(
            settings.dataset, settings.task, settings.model, settings.models_dir, data=data, level=settings.level
        )
    return modeling.load_dir(directory)


def load_model(settings: Settings) -> modeling.TrainedModel:
    """The trained model ``settings`` names (hash-checked); a clear error if it is missing."""
    return modeling.load(settings.dataset, settings.task, settings.model, settings.models_dir, settings.level)


def load_dataset(settings: Settings, data: str | Path | None = None) -> datasets.Dataset:
    """``settings.dataset`` from the bundled sample or ``data``, at ``settings.level``."""
    ds = datasets.load(settings.dataset, data)
    return ds.with_level(settings.level) if settings.level else ds


def build_detector(
    settings: Settings, bootstrap: str, model: modeling.TrainedModel, store: SQLiteStore
) -> Detector:
    """A detector reading ``settings.topic`` in group ``settings.group``."""
    consumer = Consumer(bootstrap, [settings.topic], settings.group, settings.kafka_options)
    producer = Producer(bootstrap, settings.kafka_options)
    return Detector(
        model,
        consumer,
        producer,
        store,
        settings.predictions_topic,
        settings.dlq_topic,
        batch_size=settings.batch_size,
        poll_timeout_ms=settings.poll_timeout_ms,
    )


def detect(
    settings: Settings,
    bootstrap: str,
    max_records: int | None = None,
    idle_timeout_s: float | None = None,
    progress: bool = True,
    handle_signals: bool = True,
    model: modeling.TrainedModel | None = None,
) -> DetectorStats:
    """Run a detector until stopped (SIGINT/SIGTERM), ``max_records`` or idleness.

    ``model`` is the already loaded model ``settings`` names (loaded here if not given).
    """
    model = model or load_model(settings)
    ensure_topics(bootstrap, _topics(settings), settings.kafka_options)
    with open_store(settings.store_url, settings.store_table) as store:
        detector = build_detector(settings, bootstrap, model, store)
        with detector.consumer.connect(), detector.producer.connect():
            with tqdm(total=max_records, unit="rec", desc="detect", disable=not progress) as bar:
                return detector.run(max_records, idle_timeout_s, on_batch=bar.update, handle_signals=handle_signals)


def send(
    settings: Settings,
    bootstrap: str,
    split: str = "test",
    data: str | Path | None = None,
    rate: float = 0.0,
    limit: int | None = None,
    loop: bool = False,
    progress: bool = True,
) -> GenerateStats:
    """Stream a split of ``settings.dataset`` into ``settings.topic``."""
    ds = load_dataset(settings, data).subset(split)
    ensure_topics(bootstrap, _topics(settings), settings.kafka_options)
    with Producer(bootstrap, settings.kafka_options).connect() as producer:
        return generate(ds, producer, settings.topic, rate=rate, limit=limit, loop=loop, progress=progress)


def evaluate(
    settings: Settings, data: str | Path | None = None, split: str | None = None
) -> tuple[dict, pd.DataFrame]:
    """Score the model ``settings`` names on a dataset file offline.

    ``split`` defaults to ``test`` for the bundled sample and ``all`` for ``data``.
    Returns the metrics and a frame ``record_id, true_label, predicted_label, score``.
    """
    model = load_model(settings)
    ds = load_dataset(settings, data).subset(split or ("all" if data is not None else "test"))
    missing = [f for f in model.features if f not in ds.feature_names]
    if len(missing) == len(model.features):
        raise KstreamError(f"none of the model's features are in {data or 'the dataset'}; is it the right dataset?")
    x = ds.features.reindex(columns=model.features).to_numpy(dtype="float64")
    labels, scores = model.predict(x)
    truth = ds.target(settings.task).to_numpy()
    metrics_ = modeling.evaluate(truth, labels, sorted(set(model.card.classes) | set(truth)), settings.task)
    frame = pd.DataFrame({"record_id": ds.ids.to_numpy(), "true_label": truth, "predicted_label": labels,
                          "score": scores})
    return metrics_, frame


@dataclass
class RunResult:
    """What :func:`run` leaves behind: the run folder, its store and the summary."""

    run_dir: Path
    store_path: Path
    summary: dict[str, Any]


def run(
    settings: Settings,
    rate: float = 0.0,
    limit: int | None = None,
    data: str | Path | None = None,
    run_dir: Path | None = None,
    retrain: bool = False,
    progress: bool = True,
    detectors: int = 1,
    ready_timeout_s: float = 60,
    drain_timeout_s: float = 120,
) -> RunResult:
    """The main job: model (trained if missing) -> generator -> Kafka -> detector(s) -> store -> summary.

    ``detectors`` detector threads share one consumer group, so Kafka spreads
    the topic's partitions (``settings.partitions``, at least ``detectors``)
    over them. Topics and group get the run's id as a suffix, so runs on a
    long-lived cluster never read each other's records. The run folder gets
    ``predictions.sqlite`` and ``summary.json`` (with the settings of the run).
    """
    if detectors < 1 or detectors > settings.partitions:
        raise ConfigError(
            f"detectors must be between 1 and the topic's partitions ({settings.partitions}), not {detectors}; "
            f"add partitions (--partitions {max(detectors, 1)}) for more detectors"
        )
    model = ensure_model(settings, data, retrain)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    run_dir = Path(run_dir) if run_dir is not None else RUNS_DIR / f"{stamp[:15]}-{settings.dataset}-{settings.task}-{settings.model}"
    run_dir.mkdir(parents=True, exist_ok=True)
    suffix = stamp.replace("-", "")
    settings = settings.replace(
        topic=f"{settings.topic}.{suffix}",
        predictions_topic=f"{settings.predictions_topic}.{suffix}",
        dlq_topic=f"{settings.dlq_topic}.{suffix}",
        group=f"{settings.group}.{suffix}",
        store_url=settings.store_url or str(run_dir / "predictions.sqlite"),
    )
    test = load_dataset(settings, data).subset("test")
    # a fixed shuffle: the sources group rows by class (CICIDS2017 has a file per class), traffic does not
    test = test.take(np.random.default_rng(SEED).permutation(len(test)))
    expected = min(limit, len(test)) if limit is not None else len(test)
    with kafka_cluster(settings) as bootstrap, open_store(settings.store_url, settings.store_table) as store:
        ensure_topics(bootstrap, _topics(settings), settings.kafka_options)
        pool = [build_detector(settings, bootstrap, model, store) for _ in range(detectors)]
        ready = [threading.Event() for _ in pool]
        failure: list[BaseException] = []

        def work(detector: Detector, is_ready: threading.Event) -> None:
            try:
                with detector.consumer.connect(), detector.producer.connect():
                    while not detector.consumer.assigned() and not detector.stopped:
                        detector.step()
                    is_ready.set()
                    detector.run()
            except BaseException as err:  # noqa: BLE001 - reported in the main thread
                failure.append(err)
                is_ready.set()

        threads = [
            threading.Thread(target=work, args=(d, r), name=f"kstream-detector-{i}", daemon=True)
            for i, (d, r) in enumerate(zip(pool, ready))
        ]
        for thread in threads:
            thread.start()
        try:
            deadline = time.monotonic() + ready_timeout_s
            for event in ready:
                if not event.wait(max(0.0, deadline - time.monotonic())):
                    raise BrokerError(f"a detector got no partition of {settings.topic} within {ready_timeout_s:.0f}s")
            if failure:
                raise failure[0]
            with Producer(bootstrap, settings.kafka_options).connect() as producer:
                sent = generate(test, producer, settings.topic, rate=rate, limit=limit, progress=progress)
            # wait for distinct stored records, not handled ones: a rebalance redelivers some records
            deadline = time.monotonic() + drain_timeout_s
            while store.count(settings.topic) < sent.records and time.monotonic() < deadline and not failure:
                time.sleep(0.05)
        finally:
            for detector in pool:
                detector.stop()
            for thread in threads:
                thread.join()
        if failure:
            raise failure[0]
        frame = store.frame(settings.topic)
    summary = metrics.summarize(frame, test.truth(settings.task))
    summary.update(
        sent=sent.records,
        send_rate_rps=sent.rate,
        dead_lettered=sum(d.stats.dead_lettered for d in pool),
        imputed=sum(d.stats.imputed for d in pool),
        per_detector=[d.stats.records for d in pool],
        model_id=model.card.model_id,
        bootstrap=bootstrap,
        settings={**settings.redacted(), "rate": rate, "limit": limit, "detectors": detectors,
                  "data": str(data) if data is not None else None},
    )
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    store_path = Path(store.path)
    if summary["records"] != expected:
        raise KstreamError(f"the detector stored {summary['records']} predictions for {expected} records sent; see {run_dir}")
    return RunResult(run_dir, store_path, summary)


def _topics(settings: Settings) -> dict[str, int]:
    return {settings.topic: settings.partitions, settings.predictions_topic: settings.partitions, settings.dlq_topic: 1}

