"""The soak of ``make soak``, three minutes of it: a detector with drift and alerts on takes a steady stream, and its
memory must not grow faster than the bound per million records after the warm-up (the script's exit code), its
descriptors and threads stay put, and every sample lands in the CSV the figure and slopes are made from."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from kstream.analysis import soak
from kstream.clients import kafka_python

ROOT = Path(__file__).resolve().parent.parent
MINUTES, EVERY_S, RATE = 3, 5, 1000
#: the bound the CI soak holds a detector to, MB per million records after the warm-up (docs/reliability.md): a
#: leak of 100 bytes per record fails; the detector's own slope in three minutes is within about 30
BOUND_MB = 100


@pytest.mark.kafka
def test_a_three_minute_soak_keeps_the_detector_flat(kafka_bootstrap, models_dir, tmp_path):
    out = tmp_path / "soak"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "soak.py"), "--hours", str(MINUTES / 60),
                           "--every", str(EVERY_S), "--rate", str(RATE), "--max-rss-growth", str(BOUND_MB),
                           "--bootstrap", kafka_bootstrap, "--models-dir", str(models_dir), "--out", str(out)],
                          capture_output=True, text=True, timeout=MINUTES * 60 + 240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    frame = pd.read_csv(out / "soak.csv")
    assert list(frame.columns) == soak.COLUMNS
    samples = frame.groupby("process").size()
    assert set(samples.index) == {"generator", "detector-1"}
    assert (samples >= MINUTES * 60 / EVERY_S - 2).all()  # a sample every interval, for each process
    detector = frame[frame["process"] == "detector-1"]
    assert detector["records"].is_monotonic_increasing and detector["records"].iloc[-1] > 0
    late = detector[detector["records"] >= detector["records"].max() * 0.2]  # after the warm-up
    assert late["fds"].nunique() <= 2 and late["threads"].nunique() <= 2, late[["fds", "threads"]]
    assert late["latency_p99_ms"].notna().all()
    verdict = json.loads((out / "soak.json").read_text())
    fitted = pd.read_csv(out / "slopes.csv").set_index("process")
    assert fitted.loc["detector-1", "rss_mb_per_million"] <= BOUND_MB and verdict["grew"] == []
    assert (out / "soak.png").stat().st_size > 10_000
    # the soak's topics are gone from the broker
    assert not [t for t in kafka_python.list_topics(kafka_bootstrap) if t.startswith("soak-")]


def test_a_detector_whose_memory_climbs_fails_the_soak_and_a_flat_one_passes():
    records = [i * 100_000 for i in range(20)]
    flat = pd.DataFrame({"process": "detector-1", "records": records, "elapsed_s": range(20),
                         "rss_mb": [200 + (i % 3) * 0.5 for i in range(20)], "fds": 15, "threads": 9,
                         "latency_p99_ms": 40.0})
    climbing = flat.assign(process="detector-2", rss_mb=[200 + 0.0012 * r / 10 for r in records])  # 120 MB/million
    fitted = soak.slopes(pd.concat([flat, climbing]), warmup_records=200_000).set_index("process")
    assert abs(fitted.loc["detector-1", "rss_mb_per_million"]) < 2
    assert fitted.loc["detector-2", "rss_mb_per_million"] == pytest.approx(120)
    assert soak.grew(fitted.reset_index(), BOUND_MB) == ["detector-2"]
