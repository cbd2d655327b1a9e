"""Kafka delivery, end to end, against the real broker of this session."""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import threading
import time

import kafka
import numpy as np
import pandas as pd
import pytest

from kstream import app
from kstream.clients import BACKENDS
from kstream.errors import ConfigError
from kstream.generator import generate
from kstream.messages.wire import REASON_HEADER, SCHEMA_HEADER, SEND_TIME_HEADER, VALUE_FORMATS, vector_schema
from kstream.modeling import artifacts
from kstream.settings import Settings
from kstream.stores.sqlite import open_store

pytestmark = pytest.mark.kafka


@pytest.fixture(params=list(BACKENDS))
def client(request):
    """Every delivery test runs on each Kafka client backend."""
    return request.param


@pytest.fixture(scope="module")
def model(models_dir):
    return artifacts.load(Settings(model="decision-tree", models_dir=models_dir).model_ref())


@pytest.fixture(scope="module")
def test_split(model, cicids):
    return model.held_out(cicids)


def store_frame(settings):
    with settings.open_store() as store:
        return store.frame()


@pytest.mark.parametrize("value_format", VALUE_FORMATS)
def test_every_test_record_gets_exactly_one_prediction_equal_to_offline(settings, model, test_split, read_topic,
                                                                         value_format):
    settings = settings.replace(value_format=value_format)
    sent = app.send(settings, progress=False)
    assert sent.records == len(test_split)
    first = read_topic(settings.bootstrap, settings.topic, 1)[0]
    if value_format == "vector":  # the model's features as float64, named by the schema header
        assert dict(first.headers)[SCHEMA_HEADER] == vector_schema(model.features).encode()
        assert len(first.value) == 8 * len(model.features)
    else:
        assert first.value.startswith(b"{") and SCHEMA_HEADER not in dict(first.headers)
    stats = app.detect(settings.replace(records=len(test_split)), model, idle_timeout_s=60,
                       progress=False, handle_signals=False)
    assert stats.records == len(test_split) and stats.dead_lettered == 0
    frame = store_frame(settings)
    assert len(frame) == len(test_split) and frame["record_id"].is_unique
    assert set(frame["record_id"]) == set(test_split.ids)
    offline = pd.Series(model.pipeline.predict(test_split.features.to_numpy()), index=test_split.ids)
    streamed = frame.set_index("record_id")["predicted_label"]
    assert (streamed.loc[offline.index] == offline).all()
    assert (frame["latency_ms"] > 0).all()
    published = read_topic(settings.bootstrap, settings.predictions_topic, len(test_split))
    assert {json.loads(m.value)["record_id"] for m in published} == set(test_split.ids)


def test_sigkill_mid_stream_then_restart_loses_and_duplicates_nothing(settings, test_split, tmp_path, detect_command,
                                                                      wait_for_stored):
    app.send(settings, progress=False)
    env, cmd = detect_command(settings)
    first = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    stored = wait_for_stored(settings, 500, first)
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert 0 < stored < len(test_split), "the kill must land mid-stream"
    second = subprocess.run(cmd + ["--idle-timeout", "5"], env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr
    frame = store_frame(settings)
    assert len(frame) == len(test_split)
    assert frame["record_id"].is_unique and set(frame["record_id"]) == set(test_split.ids)


def test_bad_records_go_to_the_dlq_and_the_detector_goes_on(settings, model, test_split, read_topic):
    names = test_split.feature_names
    good = test_split.features.to_numpy()[:20]
    settings.kafka.ensure_topics(settings.bootstrap, {settings.topic: 1})
    with settings.kafka.Producer(settings.bootstrap).connect() as producer:
        def put(key, value):
            producer.send(settings.topic, value, key=key.encode(),
                          headers={SEND_TIME_HEADER: str(time.time_ns()).encode()})
        for i, row in enumerate(good[:10]):
            put(f"good-{i}", json.dumps(dict(zip(names, row.tolist()))).encode())
        put("malformed", b'{"Flow Duration": 12, ')
        put("half", json.dumps(dict(zip(names[::2], good[0][::2].tolist()))).encode())
        put("text", json.dumps({**dict(zip(names, good[0].tolist())), names[5]: "n/a"}).encode())
        for i, row in enumerate(good[10:]):
            put(f"good-{10 + i}", json.dumps(dict(zip(names, row.tolist()))).encode())
    stats = app.detect(settings.replace(records=23), model, idle_timeout_s=30, progress=False,
                       handle_signals=False)
    assert stats.records == 23 and stats.predicted == 21 and stats.dead_lettered == 2 and stats.imputed == 1
    assert stats.dlq_reasons == {"value is not valid JSON": 1, f"non-numeric value for feature {names[5]!r}": 1}
    ids = set(store_frame(settings)["record_id"])
    assert ids == {f"good-{i}" for i in range(20)} | {"half"}
    dead = {m.key.decode(): dict(m.headers) for m in read_topic(settings.bootstrap, settings.dlq_topic, 2)}
    assert set(dead) == {"malformed", "text"}
    assert dead["malformed"][REASON_HEADER].startswith(b"value is not valid JSON")
    assert dead["text"][REASON_HEADER] == f"non-numeric value for feature {names[5]!r}: 'n/a'".encode()


def test_run_job_streams_the_test_split_and_summarizes(settings, tmp_path):
    result = app.run(settings.replace(store_url="", records=400), run_dir=tmp_path / "run", progress=False)
    s = result.summary
    assert s["records"] == 400 and s["sent"] == 400 and s["evaluated"] == 400
    assert sum(s["predicted_counts"].values()) == 400
    assert 0.5 < s["accuracy"] <= 1 and 0 < s["macro_f1"] <= 1
    assert s["latency_ms"]["p50"] <= s["latency_ms"]["p95"] <= s["latency_ms"]["p99"]
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["records"] == 400
    assert result.store.startswith(str(tmp_path / "run" / "predictions.sqlite"))


def test_paced_generator_keeps_the_rate_and_loops_with_fresh_ids(settings, test_split, read_topic):
    head = test_split.take(np.arange(100))
    settings.kafka.ensure_topics(settings.bootstrap, {settings.topic: 1})
    with settings.kafka.Producer(settings.bootstrap).connect() as producer:
        stats = generate(head, producer, settings.topic, rate=200, limit=300, loop=True, progress=False)
    assert stats.records == 300
    messages = read_topic(settings.bootstrap, settings.topic, 300)
    keys = [m.key.decode() for m in messages]
    assert len(set(keys)) == 300 and keys[0] == head.ids.iloc[0] and keys[200] == f"{head.ids.iloc[0]}#2"
    sent_ns = [int(dict(m.headers)[SEND_TIME_HEADER]) for m in messages]
    assert (sent_ns[-1] - sent_ns[0]) / 1e9 >= 299 / 200 * 0.95  # paced, not as fast as possible
    value = json.loads(messages[0].value)
    assert list(value) == head.feature_names  # features only: no id, no label


def test_sigterm_finishes_the_batch_commits_and_exits_cleanly(settings, test_split, detect_command, wait_for_stored):
    app.send(settings, progress=False)
    env, cmd = detect_command(settings)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_stored(settings, 300, proc)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    stored = len(store_frame(settings))
    assert 0 < stored < len(test_split)
    assert f"handled {stored} records" in out
    probe = kafka.KafkaConsumer(bootstrap_servers=settings.bootstrap, group_id=settings.group,
                                enable_auto_commit=False)
    try:
        committed = probe.committed(kafka.TopicPartition(settings.topic, 0))
    finally:
        probe.close()
    assert committed == stored  # everything written was committed, nothing more


def test_streaming_a_data_file_gives_the_offline_evaluation_predictions(settings, tmp_path, improved_rows,
                                                                      write_2017_csv):
    rows = improved_rows(30)
    csv = write_2017_csv(tmp_path / "Tuesday-WorkingHours.pcap_ISCX.csv", rows)
    settings = settings.replace(models_dir=tmp_path / "models")
    model = app.train(settings, data=csv)  # a model of this file's own (2017) columns
    _, offline = app.evaluate(settings, data=csv, split="all")
    sent = app.send(settings, split="all", data=csv, progress=False)
    assert sent.records == len(offline) == len(rows)
    app.detect(settings.replace(records=sent.records), model, idle_timeout_s=60, progress=False,
               handle_signals=False)
    streamed = store_frame(settings).set_index("record_id")
    offline = offline.set_index("record_id")
    assert len(streamed) == len(offline)
    assert (streamed.loc[offline.index, "predicted_label"] == offline["predicted_label"]).all()
    assert np.allclose(streamed.loc[offline.index, "score"], offline["score"])


def test_the_csv_sample_streams_through_its_own_grouped_model(settings, tmp_path):
    settings = settings.replace(task="multi_class", models_dir=tmp_path / "models", store_url="")
    app.train(settings)  # the fine-level model of the improved sample, as after `make run`
    result = app.run(settings.replace(records=300), data="csv-sample", run_dir=tmp_path / "run", progress=False)
    s = result.summary
    assert s["model_id"].startswith("cicids2017/multi_class/decision-tree@") and s["settings"]["level"] == "grouped"
    assert s["records"] == s["evaluated"] == 300 and s["accuracy"] > 0.9


def test_two_detectors_in_one_group_share_the_partitions_and_the_work(settings, tmp_path):
    result = app.run(settings.replace(store_url="", partitions=2, records=600), run_dir=tmp_path / "run",
                     detectors=2, progress=False)
    s = result.summary
    assert s["records"] == 600 and sum(s["per_detector"]) >= 600  # a rebalance may redeliver a few
    assert all(n > 0 for n in s["per_detector"]), "each detector must own a partition and handle records"
    with open_store("sqlite", str(tmp_path / "run" / "predictions.sqlite")) as store:
        frame = store.frame()
    assert set(frame["partition"]) == {0, 1} and frame["record_id"].is_unique


def test_more_detectors_than_partitions_fails_before_starting(settings):
    with pytest.raises(ConfigError, match="2 detectors need at least 2 partitions, not 1; leave partitions unset"):
        app.run(settings.replace(partitions=1), detectors=2, progress=False)


def test_a_dead_letter_topic_smaller_than_the_rejected_records_still_takes_every_dead_letter(settings, model,
                                                                                            test_split, read_topic,
                                                                                            cli, one_line_error):
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap)
    try:
        admin.create_topics([NewTopic(settings.dlq_topic, 1, 1, topic_configs={"max.message.bytes": "8192"}),
                             NewTopic(settings.topic, 1, 1)])
    finally:
        admin.close()
    names, good = test_split.feature_names, test_split.features.to_numpy()[:5]
    big = {"max_request_size": 2_000_000} if settings.client == "kafka-python" else {"message.max.bytes": 2_000_000}
    with settings.kafka.Producer(settings.bootstrap, big).connect() as producer:
        producer.send(settings.topic, b"x" * 300_000, key=b"huge-garbage")
        for i, row in enumerate(good):
            producer.send(settings.topic, json.dumps(dict(zip(names, row.tolist()))).encode(), key=f"good-{i}".encode())
    stats = app.detect(settings.replace(records=6), model, idle_timeout_s=30, progress=False, handle_signals=False)
    assert stats.records == 6 and stats.predicted == 5 and stats.dead_lettered == 1
    [dead] = read_topic(settings.bootstrap, settings.dlq_topic, 1)
    headers = dict(dead.headers)
    assert len(dead.value) < 8192 and headers["kstream-original-size"] == b"300000"
    assert headers[REASON_HEADER].startswith(b"value is not valid JSON")
    tiny = settings.replace(dlq_topic=settings.dlq_topic + "-tiny")
    admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap)
    try:
        admin.create_topics([NewTopic(tiny.dlq_topic, 1, 1, topic_configs={"max.message.bytes": "1000"})])
    finally:
        admin.close()
    proc = cli("-q", "detect", "--client", settings.client, "-m", "decision-tree",
               "--models-dir", str(settings.models_dir), "--bootstrap", settings.bootstrap, "--topic", settings.topic,
               "--dlq-topic", tiny.dlq_topic, "--records", "1")
    one_line_error(proc, "raise the DLQ topic's max.message.bytes")


@pytest.mark.timeout(180)
def test_a_detector_given_no_partition_stops_at_its_idle_timeout_once_nothing_waits(settings, model, caplog):
    """Detectors started by hand may outnumber the partitions; one given none used to wait for a partition
    without end, its idle timeout never counting. Here a plain consumer of the group (its member id sorts
    first, so the range assignor keeps the one partition on it) has read and committed every record: the
    detector, given nothing, stops at its idle timeout while that member still holds the partition."""
    settings = settings.replace(partitions=1)
    assert app.send(settings.replace(records=20), progress=False).records == 20
    holder = kafka.KafkaConsumer(settings.topic, bootstrap_servers=settings.bootstrap, group_id=settings.group,
                                 client_id="0-holder", auto_offset_reset="earliest", enable_auto_commit=False)
    stop, read = threading.Event(), []

    def hold() -> None:
        while not stop.is_set():
            read.extend(r for records in holder.poll(timeout_ms=200).values() for r in records)
            try:
                holder.commit()
            except kafka.errors.KafkaError:  # a rebalance in progress: the next poll joins it
                pass

    holding = threading.Thread(target=hold, daemon=True)
    holding.start()
    try:
        deadline = time.monotonic() + 60
        while len(read) < 20:
            assert time.monotonic() < deadline, f"the holder read {len(read)} of 20 records"
            time.sleep(0.1)
        done: list = []
        with caplog.at_level(logging.INFO, logger="kstream.clients.records"):
            detecting = threading.Thread(target=lambda: done.append(app.detect(
                settings, model, idle_timeout_s=3, progress=False, handle_signals=False)), daemon=True)
            detecting.start()
            detecting.join(timeout=90)
        assert not detecting.is_alive(), "the detector given no partition never stopped"
        assert holder.assignment(), "the holder lost its partition: the test proves nothing"
    finally:
        stop.set()
        holding.join(timeout=30)
        holder.close()
    assert any("partitions none" in r.getMessage() for r in caplog.records), "the detector was given a partition"
    assert done[0].records == 0 and store_frame(settings).empty


def test_a_topic_id_that_cannot_be_read_holds_its_records_back_and_a_known_one_is_kept(settings, caplog):
    """Each row's key in the store holds its record's topic id. A lookup that fails (a cluster electing a leader)
    must not give records an empty id, nor replace one that was known: else a batch stored once and
    redelivered after the failover is stored again under another identity."""
    kafka = settings.kafka
    kafka.ensure_topics(settings.bootstrap, {settings.topic: 1})
    with kafka.Producer(settings.bootstrap).connect() as producer:
        for i in range(300):
            producer.send(settings.topic, b"v%d" % i, key=b"k%d" % i)
        producer.flush()
    got: list = []
    with kafka.Consumer(settings.bootstrap, [settings.topic], settings.group).connect() as consumer:
        real, failing = consumer._ids._lookup, [True]
        consumer._ids._lookup = lambda topic: None if failing[0] else real(topic)

        def poll_until(n: int) -> None:
            deadline = time.monotonic() + 60
            while len(got) < n and time.monotonic() < deadline:
                got.extend(consumer.poll(100, 500))

        with caplog.at_level(logging.WARNING):  # never read: every fetched record is held back, none comes out
            deadline = time.monotonic() + 60
            while "cannot be read now" not in caplog.text and time.monotonic() < deadline:
                got.extend(consumer.poll(100, 500))
        assert "cannot be read now" in caplog.text and got == []
        failing[0] = False
        poll_until(100)
        known = {m.topic_id for m in got}
        assert len(known) == 1 and "" not in known, known
        consumer._ids.expire()  # as at a new assignment, then the lookup fails again: the known id stays
        failing[0] = True
        poll_until(300)
    assert {m.topic_id for m in got} == known
    assert sorted(m.offset for m in got) == list(range(300))  # held back and read again: none lost, none twice
