"""Write rate of the results stores: SQLite against MongoDB (a local FerretDB), on the detector's own rows.

The rows are what :meth:`Detector.process` makes of the bundled CICIDS2017 test split (a real
prediction row each: record id, label, score, model id, times, topic, topic id, partition,
offset), repeated with fresh offsets up to ``--records``. Each store takes them in batches of
``--batch`` as the detector writes them, first as new rows, then the same batches again as a
redelivery after a crash would (the idempotent path: nothing may change). Each repetition times
the whole set into an empty store; the median and best rates are printed with the ratio of
MongoDB to SQLite.

Usage: ``python benchmarks/bench_store.py [--records 20000] [--batch 500] [--repeat 3] [--models-dir D]``.
FerretDB is built with Go into kstream's cache on first use (a few minutes), as for the tests.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np

from kstream import app
from kstream.clients import Message
from kstream.data import datasets
from kstream.detector.loop import Detector
from kstream.messages.wire import SEND_TIME_HEADER, encode_flow
from kstream.modeling.artifacts import ModelRef
from kstream.paths import MODELS_DIR
from kstream.servers.ferretdb import LocalMongo
from kstream.stores.protocol import Store
from kstream.stores.sqlite import open_store


def prediction_rows(records: int, models_dir: str) -> list[dict]:
    """``records`` prediction rows as the detector makes them, from the test split of a real model."""
    data = datasets.load("cicids2017")
    model = app.model_for(ModelRef("cicids2017", "binary_class", "decision-tree", models_dir=models_dir), data,
                          train_missing=True)
    test = model.held_out(data)
    encoded = [encode_flow(test.feature_names, row) for row in test.features.to_numpy(dtype=np.float64)]
    now = str(time.time_ns()).encode()
    messages = [Message("flows", 0, i, f"flow-{i}".encode(), encoded[i % len(encoded)], {SEND_TIME_HEADER: now},
                        topic_id="bench") for i in range(records)]
    detector = Detector(model, None, None, None, "preds", "dlq")
    rows: list[dict] = []
    for i in range(0, records, 500):
        rows += detector.process(messages[i : i + 500]).predictions
    assert len(rows) == records, "every bench record must be scored"
    return rows


def timed(open_one: Callable[[], Store], rows: list[dict], batch: int, repeat: int) -> tuple[list[float], list[float]]:
    """Seconds to write ``rows`` into a fresh store, and to write them all again (redelivered), per repetition."""
    fresh, again = [], []
    for _ in range(repeat):
        with open_one() as store:
            for seconds in (fresh, again):
                start = time.perf_counter()
                for i in range(0, len(rows), batch):
                    store.write(rows[i : i + batch])
                seconds.append(time.perf_counter() - start)
            assert store.count() == len(rows), "the store must hold one row per record"
    return fresh, again


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--models-dir", default=str(MODELS_DIR))
    args = parser.parse_args()
    rows = prediction_rows(args.records, args.models_dir)

    with tempfile.TemporaryDirectory() as tmp, LocalMongo() as mongo:
        stores = {
            "sqlite": lambda: open_store("sqlite", str(Path(tmp) / f"{uuid.uuid4().hex}.sqlite")),
            "mongodb (FerretDB)": lambda: open_store("mongodb", mongo.url, database=f"bench{uuid.uuid4().hex[:8]}"),
        }
        results = {name: timed(opener, rows, args.batch, args.repeat) for name, opener in stores.items()}

    n = len(rows)
    print(f"{n:,} prediction rows in batches of {args.batch}, {args.repeat} repetitions (median, best rows/s)")
    print(f"{'store':<20} {'new rows':>22} {'redelivered':>22}")
    for name, (fresh, again) in results.items():
        print(f"{name:<20} {n / statistics.median(fresh):>12,.0f} {n / min(fresh):>9,.0f} "
              f"{n / statistics.median(again):>12,.0f} {n / min(again):>9,.0f}")
    sqlite, mongo_ = results["sqlite"][0], results["mongodb (FerretDB)"][0]
    print(f"MongoDB / SQLite, new rows (medians): {statistics.median(sqlite) / statistics.median(mongo_):.2f}x")


if __name__ == "__main__":
    main()
