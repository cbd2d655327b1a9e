"""The detector against its necessary stages, per Kafka client backend, measured in the same run.

Rates, in records per second, on one broker and the same records (the bundled CICIDS2017 test
split, repeated up to ``--records``):

- per-record loop: decode -> one-row DataFrame -> one model call per record, the way the original
  system kstream grew from scored (what micro-batching replaces);
- raw consume: the backend's consumer polling a one-partition topic in batches, decoding nothing;
- decode: ``decode_flows`` alone on those values, in memory;
- predict: the model alone on the decoded rows, in memory, in batches of the detector's size;
- detector, 1 process: ``kstream``'s detector in a process of its own on that topic (decode,
  predict, store, publish and wait for the acknowledgements, commit), from its first batch's
  prediction to its last;
- detector, 2 processes: two detector processes in one group on a two-partition topic (for both,
  the processes take their partitions first, then the records are sent as fast as librdkafka goes);
- latency p50/p95/p99 (ms, produce to prediction) at a paced rate, generator and detector each in
  a process of their own (``kstream run --rate R``); and from the send to the prediction's
  publication on the predictions topic (its record timestamp, taken after the store write);
- the results stores' write rates (SQLite; MongoDB wire protocol through a local FerretDB with
  ``--mongo``), on the detector's own rows;
- learning beside the detector: ``kstream run`` (generator and detector each a process of its own, each
  label sent 1,000 records after its flow) with ``--learn retrain`` against ``static`` for the random
  forest, and ``--learn online`` against ``static`` for the ``sgd-classifier`` and
  ``hoeffding-adaptive-tree`` learners: the same model either way, so the difference is what the
  learner or retrainer beside it costs the detector.

``ceiling_ratio`` is the detector (1 process) over the slowest of raw consume, decode and predict.
``--value-format vector`` sends every record as a vector (float64 bytes, see ``kstream.messages.wire``)
instead of JSON, for every stage.

Usage: ``python benchmarks/bench_detector.py [--records 20000] [-m random-forest] [--value-format json]
[--json FILE] [--figure FILE] [--mongo]``. It uses ``KSTREAM_BOOTSTRAP`` if set, else the running local broker,
else a temporary one.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import platform
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd

from kstream import app
from kstream.analysis import summaries
from kstream.clients import BACKENDS, backend
from kstream.detector.pool import DetectorProcesses, dead_letter_budget
from kstream.generator import generate
from kstream.messages.wire import decode_flows, vector_schema
from kstream.servers import retention
from kstream.settings import Settings
from kstream.stores.sqlite import SQLiteStore, open_store

RATES = (500, 1000, 5000)
#: (learning mode, model) pairs of the learning stage: each adaptive mode beside the same model kept static
LEARNING = (("static", "random-forest"), ("retrain", "random-forest"), ("static", "sgd-classifier"),
            ("online", "sgd-classifier"), ("static", "hoeffding-adaptive-tree"), ("online", "hoeffding-adaptive-tree"))


def send(settings: Settings, model, rows, topic: str, n: int) -> None:
    """``n`` records into ``topic`` in ``settings.value_format``, by the fastest sender (never the bound)."""
    with backend("confluent").Producer(settings.bootstrap).connect() as producer:
        generate(rows, producer, topic, limit=n, loop=True, progress=False, value_format=settings.value_format,
                 features=model.features)


def fill(settings: Settings, model, rows, n: int, partitions: int) -> str:
    """A fresh topic of ``partitions`` holding ``n`` records; its name."""
    topic = f"bench-{partitions}p-{uuid.uuid4().hex[:8]}"
    backend("confluent").ensure_topics(settings.bootstrap, {topic: partitions})
    send(settings, model, rows, topic, n)
    return topic


def raw_consume(client: str, bootstrap: str, topic: str, n: int, batch: int) -> tuple[float, list[bytes]]:
    """Records/s of the backend's consumer reading ``n`` records, and the values it read."""
    kafka = backend(client)
    with kafka.Consumer(bootstrap, [topic], f"bench-raw-{uuid.uuid4().hex[:6]}").connect() as consumer:
        values: list[bytes] = []
        start = None
        while len(values) < n:
            messages = consumer.poll(batch, 1000)
            if messages and start is None:
                start = time.perf_counter()
            values += [m.value for m in messages]
        return n / (time.perf_counter() - start), values


def per_record(model, values: list[bytes], n: int, vector: bool = False) -> float:
    """The original system's way: one DataFrame and one model call per record."""
    start = time.perf_counter()
    for value in values[:n]:
        if vector:
            frame = pd.DataFrame([np.frombuffer(value, dtype="<f8")], columns=model.features)
        else:
            frame = pd.DataFrame([json.loads(value)]).reindex(columns=model.features).astype(float)
        model.pipeline.predict_proba(frame.to_numpy())
    return n / (time.perf_counter() - start)


def best_of(fn, repeat: int = 3) -> float:
    return min(fn() for _ in range(repeat))


def decode_and_predict(model, values: list[bytes], batch: int, vector: bool = False) -> tuple[float, float]:
    chunks = [values[i : i + batch] for i in range(0, len(values), batch)]
    schemas = [vector_schema(model.features).encode() if vector else None] * batch
    decode_s = best_of(lambda: _timed(lambda: [decode_flows(c, model.features, schemas=schemas[:len(c)])
                                               for c in chunks]))
    matrices = [decode_flows(c, model.features, schemas=schemas[:len(c)]).matrix for c in chunks]
    predict_s = best_of(lambda: _timed(lambda: [model.predict(m) for m in matrices]))
    return len(values) / decode_s, len(values) / predict_s


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def detector_processes(settings: Settings, model, rows, n: int, processes: int, tmp: Path) -> float:
    """Records/s of ``processes`` detector processes on a topic of as many partitions: the processes start and
    take their partitions first, then ``n`` records are sent; the rate runs from the first batch's
    prediction to the last."""
    tag = uuid.uuid4().hex[:8]
    store_url = str(tmp / f"det-{tag}.sqlite")
    run = settings.replace(topic=f"bench-det-{tag}", group=f"bench-det-{tag}", predictions_topic=f"bench-preds-{tag}",
                           dlq_topic=f"bench-dlq-{tag}", store_url=store_url)
    run.kafka.ensure_topics(run.bootstrap, {run.topic: processes, run.predictions_topic: processes, run.dlq_topic: 1})
    with SQLiteStore(store_url) as store, DetectorProcesses(run, model, processes, dead_letter_budget(run)) as pool:
        pool.wait_ready(120)
        send(run, model, rows, run.topic, n)
        pool.wait_until(lambda: store.count() >= n, 600, every_s=0.2)
        frame = store.frame()
    times = np.sort(frame["predicted_ns"].to_numpy())
    first = int((times == times[0]).sum())
    return (len(times) - first) / ((times[-1] - times[0]) / 1e9)


def latency(settings: Settings, rate: int, seconds: float, tmp: Path) -> tuple[dict[str, float], dict[str, float]]:
    """Latency percentiles (ms) of ``kstream run --rate``, processes apart: from a flow's send to its
    prediction (the detector's clock when it scored the flow), and to the prediction's publication."""
    result = app.run(settings.replace(store_url="", records=int(rate * seconds)), rate=rate, progress=False,
                     run_dir=tmp / f"latency-{settings.client}-{rate}")
    topic = result.summary["settings"]["predictions_topic"]  # the run's own topic
    published = published_latency(settings, topic, result.summary["records"])
    app.delete_broker_topics(settings, [retention.run_of(topic)])  # read: the broker need not keep the run
    return result.summary["latency_ms"], published


def published_latency(settings: Settings, topic: str, n: int) -> dict[str, float]:
    """Percentiles (ms) from each flow's send to its prediction's publication: the predictions topic's record
    timestamps (set when the detector hands the prediction to its producer, after the store write)."""
    from confluent_kafka import Consumer, TopicPartition

    options = settings.kafka_options if settings.client == "confluent" else {}
    consumer = Consumer({**options, "bootstrap.servers": settings.bootstrap, "group.id": uuid.uuid4().hex,
                         "enable.auto.commit": False})
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
    ms: list[float] = []
    deadline = time.monotonic() + 60
    while len(ms) < n and time.monotonic() < deadline:
        for msg in consumer.consume(1000, 1.0):
            if msg.error() is None:
                ms.append(msg.timestamp()[1] - json.loads(msg.value())["send_ns"] / 1e6)
    consumer.close()
    return summaries.latency_percentiles(np.array(ms, dtype=float))


def learning_rates(settings: Settings, records: int, tmp: Path) -> dict[str, float]:
    """Records/s (first send to last prediction) of ``kstream run`` with labels, for each pair of :data:`LEARNING`."""
    out = {}
    for learn, model in LEARNING:
        run = settings.replace(model=model, learn=learn, label_delay="1000", records=records,
                               retrain_trigger="labels", retrain_every=2000, retrain_window=2000, retrain_holdout=500)
        result = app.run(run, run_dir=tmp / f"learn-{learn}-{model}-{uuid.uuid4().hex[:8]}", progress=False,
                         delete_topics=True)
        out[f"{learn} {model}"] = result.summary["throughput_rps"]
    return out


def store_rates(model, values: list[bytes], mongo: bool, tmp: Path, vector: bool = False) -> dict[str, float]:
    """Rows/s written into each results store, in the detector's batches, new rows."""
    from kstream.clients import Message
    from kstream.detector.loop import Detector
    from kstream.messages.wire import SCHEMA_HEADER

    detector = Detector(model, None, None, None, "preds", "dlq")
    headers = {SCHEMA_HEADER: vector_schema(model.features).encode()} if vector else {}
    messages = [Message("flows", 0, i, f"flow-{i}".encode(), v, headers, "bench") for i, v in enumerate(values)]
    rows = [r for i in range(0, len(messages), 500) for r in detector.process(messages[i : i + 500]).predictions]
    stores = {"sqlite": lambda: open_store("sqlite", str(tmp / f"{uuid.uuid4().hex}.sqlite"))}
    out = {}
    with contextlib.ExitStack() as stack:
        if mongo:
            from kstream.servers.ferretdb import LocalMongo

            server = stack.enter_context(LocalMongo())
            stores["mongodb (FerretDB)"] = lambda: open_store("mongodb", server.url,
                                                              database=f"bench{uuid.uuid4().hex[:8]}")
        for name, opener in stores.items():
            times = []
            for _ in range(3):
                with opener() as store:
                    times.append(_timed(lambda: [store.write(rows[i : i + 500]) for i in range(0, len(rows), 500)]))
            out[name] = len(rows) / statistics.median(times)
    return out


def figure(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stages = ["raw_consume_rps", "decode_rps", "predict_rps", "detector_rps", "detector_2p_rps"]
    labels = ["raw consume", "decode", "predict", "detector\n1 process", "detector\n2 processes"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    width = 0.8 / len(results["backends"])
    for i, (name, r) in enumerate(results["backends"].items()):
        x = np.arange(len(stages)) + i * width
        left.bar(x, [r[s] for s in stages], width, label=name)
        lat = r["latency_ms"]
        right.plot(list(map(int, lat)), [lat[k]["p99"] for k in lat], marker="o", label=f"{name} p99")
        right.plot(list(map(int, lat)), [lat[k]["p50"] for k in lat], marker="s", ls="--", label=f"{name} p50")
    left.set_xticks(np.arange(len(stages)) + width * (len(results["backends"]) - 1) / 2, labels)
    left.set_ylabel("records/s")
    left.set_title(f"throughput ({results['model']})")
    left.legend()
    right.set_xscale("log")
    right.set_yscale("log")
    right.set_xlabel("paced rate (records/s)")
    right.set_ylabel("produce -> prediction latency (ms)")
    right.set_title("latency, generator and detector in separate processes")
    right.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def table(results: dict) -> str:
    names = list(results["backends"])
    rows = [("per-record loop (one model call per record), rec/s", *[f"{results['per_record_rps']:,.0f}"] * len(names))]
    for key, label in [("raw_consume_rps", "raw consume, rec/s"), ("decode_rps", "decode, rec/s"),
                       ("predict_rps", "predict, rec/s"), ("detector_rps", "detector, 1 process, rec/s"),
                       ("detector_2p_rps", "detector, 2 processes on 2 partitions, rec/s"),
                       ("scale_2p", "2 processes / 1"), ("ceiling_ratio", "detector / slowest stage")]:
        rows.append((label, *[f"{results['backends'][n][key]:,.2f}" if key in ("scale_2p", "ceiling_ratio")
                              else f"{results['backends'][n][key]:,.0f}" for n in names]))
    for rate in RATES:
        rows.append((f"latency p50/p95/p99 at {rate} rec/s, ms",
                     *["/".join(f"{results['backends'][n]['latency_ms'][str(rate)][p]:.0f}"
                                for p in ("p50", "p95", "p99"))
                       for n in names]))
    for rate in RATES:
        rows.append((f"send to published p50/p95/p99 at {rate} rec/s, ms",
                     *["/".join(f"{results['backends'][n]['published_latency_ms'][str(rate)][p]:.0f}"
                                for p in ("p50", "p95", "p99")) for n in names]))
    for pair in results["backends"][names[0]].get("learning_rps", {}):
        rows.append((f"run with labels, {pair}, rec/s",
                     *[f"{results['backends'][n]['learning_rps'][pair]:,.0f}" for n in names]))
    for name, rate in results["store_rows_per_s"].items():
        rows.append((f"results store {name}, new rows/s", *[f"{rate:,.0f}"] * len(names)))
    header = ("", *names)
    out = ["| " + " | ".join(header) + " |", "|" + "---|" + "---:|" * len(names)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=20_000, help="records per throughput stage (default 20000)")
    parser.add_argument("--per-record", type=int, default=2_000, help="records for the per-record loop")
    parser.add_argument("-t", "--task", default="binary_class")
    parser.add_argument("-m", "--model", default="random-forest")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--value-format", default="json", choices=("json", "vector"),
                        help="what every record is sent as")
    parser.add_argument("--latency-seconds", type=float, default=4.0, help="seconds streamed at each paced rate")
    parser.add_argument("--backends", default=",".join(BACKENDS), help="comma-separated client backends")
    parser.add_argument("--mongo", action="store_true", help="also time the MongoDB store (a local FerretDB)")
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument("--figure", default="runs/bench/performance.png", help="where to draw the figure")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    for noisy in ("kafka", "kstream.librdkafka"):
        logging.getLogger(noisy).setLevel(logging.CRITICAL)

    settings = Settings.resolve({"task": args.task, "model": args.model, "batch_size": args.batch_size,
                                 "value_format": args.value_format})
    vector = args.value_format == "vector"
    ds = app.load_data(settings)
    model = app.model_for(settings.model_ref(ds), ds, train_missing=True)
    test = app.unseen_rows(model, ds)
    results: dict = {"model": model.card.model_id, "records": args.records, "batch_size": args.batch_size,
                     "value_format": args.value_format,
                     "machine": f"{platform.machine()}, {_cores()} cores, {platform.system()} {platform.release()}, "
                                f"Python {platform.python_version()}", "backends": {}}
    with app.kafka_cluster(settings) as settings, tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        before = set(settings.kafka.list_topics(settings.bootstrap, settings.kafka_options))
        try:
            results = measure(args, settings, model, test, results, tmp, vector)
        finally:  # a long-lived broker keeps no bench topic (each stage fills fresh ones; runs delete theirs)
            made = set(settings.kafka.list_topics(settings.bootstrap, settings.kafka_options)) - before
            ours = sorted(t for t in made if t.startswith("bench-"))
            settings.kafka.delete_topics(settings.bootstrap, ours, settings.kafka_options)
    print(table(results))
    figure(results, Path(args.figure))
    print(f"figure: {args.figure}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=float) + "\n")


def measure(args: argparse.Namespace, settings: Settings, model, test, results: dict, tmp: Path, vector: bool) -> dict:
    """Every stage on every backend of ``args.backends``, into ``results``."""
    one = fill(settings, model, test, args.records, 1)
    values: list[bytes] = []
    for name in args.backends.split(","):
        raw, values = raw_consume(name, settings.bootstrap, one, args.records, args.batch_size)
        decode, predict = decode_and_predict(model, values, args.batch_size, vector)
        chosen = settings.replace(client=name)
        det1 = detector_processes(chosen, model, test, args.records, 1, tmp)
        det2 = detector_processes(chosen, model, test, args.records, 2, tmp)
        paced = {str(rate): latency(chosen, rate, args.latency_seconds, tmp) for rate in RATES}
        learning = learning_rates(chosen, args.records, tmp)
        lat = {rate: scored for rate, (scored, _) in paced.items()}
        published = {rate: out for rate, (_, out) in paced.items()}
        slowest = min(raw, decode, predict)
        results["backends"][name] = {
            "raw_consume_rps": raw, "decode_rps": decode, "predict_rps": predict, "detector_rps": det1,
            "detector_2p_rps": det2, "scale_2p": det2 / det1, "ceiling_ratio": det1 / slowest,
            "slowest_stage": ["raw consume", "decode", "predict"][[raw, decode, predict].index(slowest)],
            "latency_ms": lat, "published_latency_ms": published, "learning_rps": learning}
        print(f"{name}: done", flush=True)
    results["per_record_rps"] = per_record(model, values, args.per_record, vector)
    results["store_rows_per_s"] = store_rates(model, values[:10_000], args.mongo, tmp, vector)
    return results


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 0


if __name__ == "__main__":
    main()
