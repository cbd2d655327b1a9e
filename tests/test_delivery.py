"""Kafka delivery, end to end, against the real broker of this session."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import kafka
import numpy as np
import pandas as pd
import pytest

from kstream import app, datasets, modeling
from kstream.clients import Producer, ensure_topics
from kstream.errors import ConfigError
from kstream.producer import generate
from kstream.serialization import REASON_HEADER, SEND_TIME_HEADER
from kstream.sinks import open_store
from test_datasets_formats import IMPROVED, SOURCE_FILES, write_2017_csv

pytestmark = pytest.mark.kafka


@pytest.fixture(scope="module")
def test_split():
    return datasets.load("cicids2017").subset("test")


def read_topic(bootstrap: str, topic: str, expected: int, timeout_s: float = 30) -> list:
    """Every record of ``topic`` (waits until ``expected`` arrived or the timeout passes)."""
    consumer = kafka.KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                   group_id=None, consumer_timeout_ms=2000)
    out, deadline = [], time.monotonic() + timeout_s
    try:
        while len(out) < expected and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                out.extend(batch)
    finally:
        consumer.close()
    return out


def detect_command(settings) -> tuple[dict[str, str], list[str]]:
    """Environment and argv of a `kstream detect` subprocess on this test's topics and store."""
    env = {**os.environ, "KSTREAM_MODELS_DIR": str(settings.models_dir)}
    cmd = [sys.executable, "-m", "kstream", "-q", "detect", "-m", "decision-tree",
           "--bootstrap", settings.bootstrap, "--topic", settings.topic, "--group", settings.group,
           "--predictions-topic", settings.predictions_topic, "--dlq-topic", settings.dlq_topic,
           "--store-url", settings.store_url, "--batch-size", "50"]
    return env, cmd


def wait_for_stored(settings, at_least: int, proc: subprocess.Popen, timeout_s: float = 120) -> int:
    """Poll the store until it holds ``at_least`` rows (or the detector exits, or time runs out)."""
    deadline, stored = time.monotonic() + timeout_s, 0
    while stored < at_least and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
        if os.path.exists(settings.store_url):
            with open_store(settings.store_url) as store:
                stored = store.count()
    return stored


def test_every_test_record_gets_exactly_one_prediction_equal_to_offline(settings, test_split):
    sent = app.send(settings, settings.bootstrap, progress=False)
    assert sent.records == len(test_split)
    stats = app.detect(settings, settings.bootstrap, max_records=len(test_split), idle_timeout_s=60,
                       progress=False, handle_signals=False)
    assert stats.records == len(test_split) and stats.dead_lettered == 0
    with open_store(settings.store_url) as store:
        frame = store.frame()
    assert len(frame) == len(test_split) and frame["record_id"].is_unique
    assert set(frame["record_id"]) == set(test_split.ids)
    model = modeling.load("cicids2017", "binary_class", "decision-tree", settings.models_dir)
    offline = pd.Series(model.pipeline.predict(test_split.features.to_numpy()), index=test_split.ids)
    streamed = frame.set_index("record_id")["predicted_label"]
    assert (streamed.loc[offline.index] == offline).all()
    assert (frame["latency_ms"] > 0).all()
    published = read_topic(settings.bootstrap, settings.predictions_topic, len(test_split))
    assert {json.loads(m.value)["record_id"] for m in published} == set(test_split.ids)


def test_sigkill_mid_stream_then_restart_loses_and_duplicates_nothing(settings, test_split, tmp_path):
    app.send(settings, settings.bootstrap, progress=False)
    env, cmd = detect_command(settings)
    first = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    stored = wait_for_stored(settings, 500, first)
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert 0 < stored < len(test_split), "the kill must land mid-stream"
    second = subprocess.run(cmd + ["--idle-timeout", "5"], env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr
    with open_store(settings.store_url) as store:
        frame = store.frame()
    assert len(frame) == len(test_split)
    assert frame["record_id"].is_unique and set(frame["record_id"]) == set(test_split.ids)


def test_bad_records_go_to_the_dlq_and_the_detector_goes_on(settings, test_split):
    names = test_split.feature_names
    good = test_split.features.to_numpy()[:20]
    ensure_topics(settings.bootstrap, {settings.topic: 1})
    with Producer(settings.bootstrap).connect() as producer:
        def put(key, value):
            producer.send(settings.topic, value, key=key.encode(), headers={SEND_TIME_HEADER: str(time.time_ns()).encode()})
        for i, row in enumerate(good[:10]):
            put(f"good-{i}", json.dumps(dict(zip(names, row.tolist()))).encode())
        put("malformed", b'{"Flow Duration": 12, ')
        put("half", json.dumps(dict(zip(names[::2], good[0][::2].tolist()))).encode())
        put("text", json.dumps({**dict(zip(names, good[0].tolist())), names[5]: "n/a"}).encode())
        for i, row in enumerate(good[10:]):
            put(f"good-{10 + i}", json.dumps(dict(zip(names, row.tolist()))).encode())
    stats = app.detect(settings, settings.bootstrap, max_records=23, idle_timeout_s=30, progress=False,
                       handle_signals=False)
    assert stats.records == 23 and stats.predicted == 21 and stats.dead_lettered == 2 and stats.imputed == 1
    assert stats.dlq_reasons == {"value is not valid JSON": 1, f"non-numeric value for feature {names[5]!r}": 1}
    with open_store(settings.store_url) as store:
        ids = set(store.frame()["record_id"])
    assert ids == {f"good-{i}" for i in range(20)} | {"half"}
    dead = {m.key.decode(): dict(m.headers) for m in read_topic(settings.bootstrap, settings.dlq_topic, 2)}
    assert set(dead) == {"malformed", "text"}
    assert dead["malformed"][REASON_HEADER].startswith(b"value is not valid JSON")
    assert dead["text"][REASON_HEADER] == f"non-numeric value for feature {names[5]!r}: 'n/a'".encode()


def test_run_job_streams_the_test_split_and_summarizes(settings, tmp_path):
    result = app.run(settings.replace(store_url=""), limit=400, run_dir=tmp_path / "run", progress=False)
    s = result.summary
    assert s["records"] == 400 and s["sent"] == 400 and s["evaluated"] == 400
    assert sum(s["predicted_counts"].values()) == 400
    assert 0.5 < s["accuracy"] <= 1 and 0 < s["macro_f1"] <= 1
    assert s["latency_ms"]["p50"] <= s["latency_ms"]["p95"] <= s["latency_ms"]["p99"]
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["records"] == 400
    assert result.store_path == tmp_path / "run" / "predictions.sqlite"


def test_paced_generator_keeps_the_rate_and_loops_with_fresh_ids(settings, test_split):
    head = datasets.Dataset("cicids2017", test_split.ids.iloc[:100], test_split.features.iloc[:100],
                            test_split.labels.iloc[:100], test_split.benign_labels)
    ensure_topics(settings.bootstrap, {settings.topic: 1})
    with Producer(settings.bootstrap).connect() as producer:
        stats = generate(head, producer, settings.topic, rate=200, limit=300, loop=True, progress=False)
    assert stats.records == 300
    messages = read_topic(settings.bootstrap, settings.topic, 300)
    keys = [m.key.decode() for m in messages]
    assert len(set(keys)) == 300 and keys[0] == head.ids.iloc[0] and keys[200] == f"{head.ids.iloc[0]}#2"
    sent_ns = [int(dict(m.headers)[SEND_TIME_HEADER]) for m in messages]
    assert (sent_ns[-1] - sent_ns[0]) / 1e9 >= 299 / 200 * 0.95  # paced, not as fast as possible
    value = json.loads(messages[0].value)
    assert list(value) == head.feature_names  # features only: no id, no label


def test_sigterm_finishes_the_batch_commits_and_exits_cleanly(settings, test_split):
    app.send(settings, settings.bootstrap, progress=False)
    env, cmd = detect_command(settings)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_stored(settings, 300, proc)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    with open_store(settings.store_url) as store:
        stored = store.count()
    assert 0 < stored < len(test_split)
    assert f"handled {stored} records" in out
    probe = kafka.KafkaConsumer(bootstrap_servers=settings.bootstrap, group_id=settings.group,
                                enable_auto_commit=False)
    try:
        committed = probe.committed(kafka.TopicPartition(settings.topic, 0))
    finally:
        probe.close()
    assert committed == stored  # everything written was committed, nothing more


def test_streaming_a_data_file_gives_the_offline_evaluation_predictions(settings, tmp_path):
    rows = pd.concat([pd.read_csv(IMPROVED / f"{stem}.csv.gz", nrows=30) for stem in SOURCE_FILES.values()],
                     ignore_index=True)
    csv = write_2017_csv(tmp_path / "Tuesday-WorkingHours.pcap_ISCX.csv", rows)
    _, offline = app.evaluate(settings, data=csv)
    sent = app.send(settings, settings.bootstrap, split="all", data=csv, progress=False)
    assert sent.records == len(rows)
    app.detect(settings, settings.bootstrap, max_records=len(rows), idle_timeout_s=60, progress=False,
               handle_signals=False)
    with open_store(settings.store_url) as store:
        streamed = store.frame().set_index("record_id")
    offline = offline.set_index("record_id")
    assert len(streamed) == len(offline) == len(rows)
    assert (streamed.loc[offline.index, "predicted_label"] == offline["predicted_label"]).all()
    assert np.allclose(streamed.loc[offline.index, "score"], offline["score"])


def test_two_detectors_in_one_group_share_the_partitions_and_the_work(settings, tmp_path):
    result = app.run(settings.replace(store_url="", partitions=2), limit=600, run_dir=tmp_path / "run",
                     detectors=2, progress=False)
    s = result.summary
    assert s["records"] == 600 and sum(s["per_detector"]) >= 600  # a rebalance may redeliver a few
    assert all(n > 0 for n in s["per_detector"]), "each detector must own a partition and handle records"
    with open_store(str(result.store_path)) as store:
        frame = store.frame()
    assert set(frame["partition"]) == {0, 1} and frame["record_id"].is_unique


def test_more_detectors_than_partitions_fails_before_starting(settings):
    with pytest.raises(ConfigError, match="between 1 and the topic's partitions"):
        app.run(settings.replace(partitions=1), detectors=2, progress=False)
