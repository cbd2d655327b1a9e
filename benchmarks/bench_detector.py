"""Detector throughput against baselines measured in the same run, on the same broker and topic.

Rates, in records per second:

- raw consume: the same Kafka client polling the same topic, decoding nothing
  (the ceiling the detector can reach with this client);
- offline predict: the same model on the same rows, already in memory, in
  batches of the detector's size (the ceiling set by the model);
- per-record detector: decode -> one-row DataFrame -> one model call per record,
  the way the seed system scored (what micro-batching replaces);
- detector: kstream's loop (batch decode -> one model call -> store -> commit).

Usage: ``python benchmarks/bench_detector.py [--records 20000] [--model random-forest]``.
It uses ``KSTREAM_BOOTSTRAP`` if set, else the running local broker, else a temporary one.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd

from kstream import app, artifacts
from kstream.clients import Consumer, Producer, ensure_topics
from kstream.detector import Detector
from kstream.generator import generate
from kstream.settings import Settings
from kstream.sinks import SQLiteStore


def consume_rate(bootstrap: str, topic: str, n: int, batch: int) -> float:
    with Consumer(bootstrap, [topic], f"bench-raw-{uuid.uuid4().hex[:6]}").connect() as consumer:
        got, start = 0, None
        while got < n:
            messages = consumer.poll(batch, 1000)
            if messages and start is None:
                start = time.perf_counter()
            got += len(messages)
        return n / (time.perf_counter() - start)


def per_record_rate(model: artifacts.TrainedModel, bootstrap: str, topic: str, n: int) -> float:
    """The seed's way: one DataFrame and one model call per record."""
    features = model.features
    with Consumer(bootstrap, [topic], f"bench-single-{uuid.uuid4().hex[:6]}").connect() as consumer:
        done, start = 0, None
        while done < n:
            for msg in consumer.poll(min(500, n - done), 1000):
                if start is None:
                    start = time.perf_counter()
                frame = pd.DataFrame([json.loads(msg.value)]).reindex(columns=features).astype(float)
                model.pipeline.predict_proba(frame.to_numpy())
                done += 1
        return n / (time.perf_counter() - start)


def detector_rate(model, bootstrap, settings, n, batch) -> float:
    with tempfile.TemporaryDirectory() as tmp, SQLiteStore(Path(tmp) / "p.sqlite") as store:
        consumer = Consumer(bootstrap, [settings.topic], f"bench-det-{uuid.uuid4().hex[:6]}")
        producer = Producer(bootstrap)
        det = Detector(model, consumer, producer, store, settings.predictions_topic, settings.dlq_topic, batch)
        with consumer.connect(), producer.connect():
            while not consumer.assigned():
                det.step()
            start = time.perf_counter()
            det.run(max_records=n)
            return det.stats.records / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=20_000, help="records to stream (default 20000)")
    parser.add_argument("--per-record", type=int, default=2_000, help="records for the per-record baseline")
    parser.add_argument("-t", "--task", default="binary_class")
    parser.add_argument("-m", "--model", default="random-forest")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    tag = uuid.uuid4().hex[:8]
    settings = Settings.resolve({"task": args.task, "model": args.model, "topic": f"bench-{tag}",
                                 "predictions_topic": f"bench-preds-{tag}", "dlq_topic": f"bench-dlq-{tag}"})
    ds = app.load_data(settings)
    model = app.model_for(settings.model_ref(ds), ds, train_missing=True)
    test = app.unseen_rows(model, ds)
    with app.kafka_cluster(settings) as settings:
        bootstrap = settings.bootstrap
        ensure_topics(bootstrap, {settings.topic: 1, settings.predictions_topic: 1, settings.dlq_topic: 1})
        with Producer(bootstrap).connect() as producer:
            sent = generate(test, producer, settings.topic, limit=args.records, loop=True, progress=False)
        x = test.features.to_numpy()
        reps = int(np.ceil(args.records / len(x)))
        x = np.tile(x, (reps, 1))[: args.records]
        start = time.perf_counter()
        for i in range(0, len(x), args.batch_size):
            model.predict(x[i : i + args.batch_size])
        offline = len(x) / (time.perf_counter() - start)
        raw = consume_rate(bootstrap, settings.topic, args.records, args.batch_size)
        single = per_record_rate(model, bootstrap, settings.topic, args.per_record)
        detector = detector_rate(model, bootstrap, settings, args.records, args.batch_size)

    results = {
        "model": model.card.model_id,
        "records": args.records,
        "batch_size": args.batch_size,
        "send_rps": round(sent.rate),
        "raw_consume_rps": round(raw),
        "offline_predict_rps": round(offline),
        "per_record_detector_rps": round(single),
        "detector_rps": round(detector),
        "detector_vs_raw_consume": round(detector / raw, 3),
        "detector_vs_offline_predict": round(detector / offline, 3),
        "detector_vs_per_record": round(detector / single, 1),
    }
    width = max(map(len, results))
    for key, value in results.items():
        print(f"{key:<{width}}  {value}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
