"""Batch decoding rate of good flow records: ``decode_flows`` alone, no Kafka, no model call.

The records are the bundled CICIDS2017 test split of a trained model, encoded with
``encode_flow`` as the generator sends them, repeated up to ``--records``, and decoded in
batches of ``--batch`` into the model's feature order. Each repetition times the whole set;
the best and the median rate are printed (the best is the least disturbed by other work on
the machine).

Usage: ``python benchmarks/bench_decode.py [--records 20000] [--batch 500] [--repeat 15] [--models-dir D]``.
It uses the decision-tree binary model of ``models/`` (or ``D``), training it first if missing.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from kstream import app
from kstream.data import datasets
from kstream.messages.wire import decode_flows, encode_flow
from kstream.modeling.artifacts import ModelRef
from kstream.paths import MODELS_DIR


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--models-dir", default=str(MODELS_DIR))
    args = parser.parse_args()

    data = datasets.load("cicids2017")
    ref = ModelRef("cicids2017", "binary_class", "decision-tree", models_dir=args.models_dir)
    model = app.model_for(ref, data, train_missing=True)
    test = model.held_out(data)
    rows = test.features.to_numpy(dtype=np.float64)
    encoded = [encode_flow(test.feature_names, row) for row in rows]
    values = (encoded * (args.records // len(encoded) + 1))[: args.records]
    features = model.features

    seconds = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        for i in range(0, len(values), args.batch):
            decode_flows(values[i : i + args.batch], features)
        seconds.append(time.perf_counter() - start)
    size = sum(map(len, values)) / len(values)
    print(f"{len(values):,} records of {size:,.0f} B, {len(features)} model features, batches of {args.batch}")
    print(f"decode_flows: best {len(values) / min(seconds):,.0f} records/s, "
          f"median {len(values) / statistics.median(seconds):,.0f} records/s")


if __name__ == "__main__":
    main()
