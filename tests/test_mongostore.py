"""The MongoDB results store against a real MongoDB-wire server (FerretDB on SQLite, built once with Go)."""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import socket
import threading
import uuid

import pytest

from kstream.errors import BrokerError, ConfigError, DataError, StoreError
from kstream.servers import ferretdb
from kstream.servers.ferretdb import LocalMongo, mongo_url
from kstream.stores.mongodb import STORE_FIELDS, MongoStore

# the first test builds FerretDB when it is not cached yet: a few minutes on a busy 2-core machine
pytestmark = [pytest.mark.mongodb, pytest.mark.timeout(1800)]

PASSWORD = "s3cret p@ss:w/rd"  # every character that needs escaping in a URL


@pytest.fixture(scope="session")
def mongo_auth_server():
    """One FerretDB that requires a login (user ``kstream`` in database ``kstream``)."""
    with LocalMongo(username="kstream", password=PASSWORD, database="kstream") as server:
        yield server


@pytest.fixture
def store(mongo_server):
    """A store on this test's own collection."""
    with MongoStore(mongo_server.url, "kstream_test", collection=f"p_{uuid.uuid4().hex[:10]}") as s:
        yield s


def rows(offsets, topic="flows", topic_id="Zm9vYmFyYmF6cXV4cXV1eA", label="BENIGN", predicted_ns=2_000, partition=0):
    return [
        {
            "record_id": f"{topic}-{o}",
            "predicted_label": label,
            "score": 0.5 + (o % 50) / 100,
            "model_id": "cicids2017/binary_class/decision-tree",
            "send_ns": 1_700_000_000_000_000_000 + o,
            "predicted_ns": 1_700_000_000_000_000_000 + o + predicted_ns,
            "topic": topic,
            "partition": partition,
            "offset": o,
            "topic_id": topic_id,
        }
        for o in offsets
    ]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_redelivered_batch_is_stored_exactly_once_and_the_first_write_stands(store):
    first = rows(range(500))
    store.write(first)
    store.write(rows(range(500), predicted_ns=9_999))  # the same records, scored again after a restart
    store.write(rows(range(250, 750), predicted_ns=9_999))  # half old, half new
    assert store.count() == 750
    frame = store.frame()
    assert len(frame) == 750 and not frame.duplicated(["topic_id", "partition", "offset"]).any()
    old = frame[frame["offset"] < 500].sort_values("offset")
    assert old["predicted_ns"].tolist() == [r["predicted_ns"] for r in first]
    assert (frame[frame["offset"] >= 500]["latency_ms"] == 9_999 / 1e6).all()


def test_count_and_frame_are_per_source_topic(store):
    store.write(rows(range(30), topic="flows-a", topic_id="aaaaaaaaaaaaaaaaaaaaaa"))
    store.write(rows(range(12), topic="flows-b", topic_id="bbbbbbbbbbbbbbbbbbbbbb", partition=3))
    missing_send = rows([99], topic="flows-b", topic_id="bbbbbbbbbbbbbbbbbbbbbb")
    missing_send[0]["send_ns"] = None
    store.write(missing_send)
    assert (store.count(), store.count("flows-a"), store.count("flows-b"), store.count("nope")) == (43, 30, 13, 0)
    frame = store.frame("flows-b")
    assert list(frame.columns) == [*STORE_FIELDS, "latency_ms"]
    assert set(frame["topic"]) == {"flows-b"} and len(frame) == 13
    by_offset = frame.set_index("offset")
    assert math.isnan(by_offset.loc[99, "latency_ms"])
    assert by_offset.loc[5, "latency_ms"] == 2_000 / 1e6 and by_offset.loc[5, "partition"] == 3
    assert store.frame("nope").empty and list(store.frame("nope").columns) == [*STORE_FIELDS, "latency_ms"]


def test_a_recreated_topic_is_a_new_identity_and_keeps_the_earlier_rows(store):
    store.write(rows(range(10), topic_id="incarnation1xxxxxxxxxx", label="BENIGN"))
    store.write(rows(range(10), topic_id="incarnation2xxxxxxxxxx", label="DDoS"))  # same name, same offsets
    assert store.count("flows") == 20
    frame = store.frame("flows")
    assert frame.groupby("topic_id")["predicted_label"].agg(set).to_dict() == {
        "incarnation1xxxxxxxxxx": {"BENIGN"},
        "incarnation2xxxxxxxxxx": {"DDoS"},
    }


def test_without_a_topic_id_the_topic_name_is_the_identity(store):
    unnamed = rows(range(5), topic_id="")
    for row in unnamed[:2]:
        del row["topic_id"]  # rows shaped like SQLiteStore's
    store.write(unnamed)
    store.write(rows(range(5), topic_id=""))
    assert store.count() == 5 and set(store.frame()["topic_id"]) == {""}


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("score", float("nan"), "score is nan"),
        ("score", float("inf"), "score is inf"),
        ("score", "0.5", "score must be a number"),
        ("record_id", "bad\ud800", "record_id is not valid Unicode"),
        ("record_id", b"r1", "record_id must be text, not bytes"),
        ("offset", 2**63, "offset 9223372036854775808 does not fit in 64 bits"),
        ("predicted_ns", None, "predicted_ns must be a whole number, not NoneType"),
        ("model_id", "m" * (17 * 1024 * 1024), "exceed the 16 MiB document limit"),
    ],
    ids=["nan", "inf", "text-score", "surrogate", "bytes", "int-overflow", "none", "oversized"],
)
def test_a_value_that_cannot_be_stored_fails_clearly_and_writes_nothing(store, field, value, says):
    batch = rows(range(3))
    batch[1][field] = value
    with pytest.raises(DataError, match=r"^prediction for flows/0/\d+ cannot be stored: ") as err:
        store.write(batch)
    assert says in str(err.value) and "\n" not in str(err.value)
    assert store.count() == 0
    store.write(rows(range(3)))  # the connection survived
    assert store.count() == 3


def test_numpy_values_are_stored_as_plain_numbers(store):
    np = pytest.importorskip("numpy")
    row = rows([np.int64(4)])[0]
    row.update(score=np.float32(0.25), partition=np.int32(1), predicted_ns=np.int64(row["predicted_ns"]))
    store.write([row])
    got = store.frame().iloc[0]
    assert (got["offset"], got["partition"], got["score"]) == (4, 1, 0.25)


def test_an_unreachable_server_fails_at_start_in_one_line():
    url = mongo_url(f"127.0.0.1:{_free_port()}", "kstream", "hunter2")
    with pytest.raises(ConfigError) as err:
        MongoStore(url, "kstream", timeout_ms=500)
    message = str(err.value)
    assert message.startswith("cannot reach the MongoDB results store at mongodb://kstream:***@127.0.0.1:")
    assert "KSTREAM_STORE_URL" in message and "hunter2" not in message and "\n" not in message


def test_a_malformed_url_fails_without_showing_the_password():
    with pytest.raises(ConfigError, match="is not usable") as err:
        MongoStore("mongodb://kstream:hunter2@127.0.0.1:notaport/", "kstream")
    assert "hunter2" not in str(err.value)


def test_the_right_login_can_write(mongo_auth_server, caplog):
    caplog.set_level(logging.DEBUG)
    assert mongo_auth_server.url.startswith("mongodb://kstream:s3cret%20p%40ss%3Aw%2Frd@")
    with MongoStore(mongo_auth_server.url, "kstream", collection=f"p_{uuid.uuid4().hex[:10]}") as s:
        s.write(rows(range(4)))
        s.write(rows(range(4)))
        assert s.count() == 4
        assert PASSWORD not in repr(s)
    assert PASSWORD not in caplog.text and "s3cret" not in caplog.text
    assert "s3cret" not in mongo_auth_server.log_path.read_text()


def test_a_wrong_password_fails_at_start_in_one_line(mongo_auth_server):
    url = mongo_url(mongo_auth_server.address, "kstream", "not-the-password", "kstream")
    with pytest.raises(ConfigError) as err:
        MongoStore(url, "kstream")
    message = str(err.value)
    assert message.startswith(f"the MongoDB results store at mongodb://kstream:***@{mongo_auth_server.address}/")
    assert "refused the login" in message and "not-the-password" not in message and "\n" not in message


def test_an_anonymous_client_is_told_to_log_in(mongo_auth_server):
    with pytest.raises(ConfigError, match="requires a login; put user:password@"):
        MongoStore(mongo_url(mongo_auth_server.address), "kstream")


def test_acknowledged_writes_survive_a_killed_server(tmp_path):
    data = tmp_path / "ferretdb"
    with LocalMongo(data_dir=data) as server:
        with MongoStore(server.url, "kstream", timeout_ms=2000) as s:
            s.write(rows(range(200)))
        os.kill(server.process.pid, signal.SIGKILL)  # no clean shutdown: only what SQLite committed remains
        server.process.wait()
    with LocalMongo(data_dir=data) as again, MongoStore(again.url, "kstream") as s:
        assert s.count() == 200


def test_a_write_while_the_server_is_down_is_retried_until_it_is_back(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="kstream")
    data, port = tmp_path / "ferretdb", _free_port()
    with LocalMongo(data_dir=data, port=port) as server:
        store = MongoStore(server.url, "kstream", timeout_ms=1000, deadline_s=120)
    back = LocalMongo(data_dir=data, port=port)  # the same server, started again while the write is retried
    restart = threading.Timer(3.0, back.start)
    restart.start()
    try:
        store.write(rows(range(50)))
        assert store.count() == 50
    finally:
        restart.join()
        back.stop()
        store.close()
    retries = [r.getMessage() for r in caplog.records if "retrying in" in r.getMessage()]
    assert retries and all(m.startswith("lost the MongoDB results store") for m in retries)


def test_a_write_while_the_server_is_down_fails_at_the_deadline_in_one_line(tmp_path):
    with LocalMongo(data_dir=tmp_path / "ferretdb") as server:
        store = MongoStore(server.url, "kstream", timeout_ms=500, deadline_s=2)
    with store, pytest.raises(StoreError, match="lost the MongoDB results store .*nothing was committed"):
        store.write(rows(range(10)))


def test_stop_ends_the_server_and_removes_its_temporary_folder():
    server = LocalMongo().start()
    data_dir, process, url = server.data_dir, server.process, server.url
    assert data_dir.exists() and (data_dir / "data").is_dir()
    server.stop()
    assert process.poll() is not None and not data_dir.exists()
    with pytest.raises(ConfigError, match="cannot reach"):
        MongoStore(url, "kstream", timeout_ms=500)


def test_half_a_login_is_refused():
    with pytest.raises(BrokerError, match="both a username and a password"):
        LocalMongo(username="kstream")


def test_missing_go_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no go on it
    with pytest.raises(BrokerError) as err:
        ferretdb.provision(root=tmp_path / "cache")
    assert str(err.value) == (
        "Go is needed once to build FerretDB (the local MongoDB-wire server); "
        "install Go (e.g. apt-get install golang-go)"
    )


@pytest.mark.kafka
def test_the_seed_configuration_streams_into_mongodb_with_drift_windows_and_reports_read_it_back(
    mongo_server, kafka_bootstrap, models_dir, tmp_path, cli
):
    env = {"DATABASE": "mongodb", "DB_URL": mongo_server.url, "DB_NAME": "ost", "MODEL": "decision-tree",
           "MODELS_CHECKPOINT": str(models_dir), "KAFKA_BROKER_URL": kafka_bootstrap}
    proc = cli("-q", "run", "--records", "2000", "--run-dir", str(tmp_path / "run"), "--json",
               "--drift", "--drift-window", "500", env=env)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["records"] == summary["evaluated"] == 2000 and summary["accuracy"] > 0.9
    topic = summary["settings"]["topic"]
    with MongoStore(mongo_server.url, "ost") as store:
        assert store.count(topic) == 2000
        assert store.frame(topic)["record_id"].is_unique
        windows = store.windows(topic)  # the drift windows of the run, in the same database
    assert windows["window"].tolist() == [0, 1, 2, 3] and windows["records"].tolist() == [500] * 4
    assert windows["monitor"].nunique() == 1
    assert not (tmp_path / "run" / "predictions.sqlite").exists()
    from kstream.analysis import report

    run = report.load_run(tmp_path / "run")  # through the same interface as a SQLite run
    assert len(run.predictions) == 2000 and run.predictions["true_label"].notna().all()


def test_drift_windows_are_stored_once_per_monitor_and_window_and_read_back_per_topic(store):
    import numpy as np

    from kstream.drift.monitor import WindowResult, window_row

    topic = f"flows-{uuid.uuid4().hex[:8]}"
    windows = [WindowResult(i, 10 * i, 10 * i + 5, 500, {"Flow Bytes/s": 0.3}, ["Flow Bytes/s"], 0.5, 0.3, 0.9,
                            np.float64(0.8), None, {"attack_rate": "down"}, True, i == 1, []) for i in range(3)]
    rows = [window_row(w, "m1", topic, "model@1", ["attack_rate > 0.5"] if w.index == 2 else []) for w in windows]
    store.write_windows(rows)
    store.write_windows(rows[1:])  # a redelivered write: the first stands
    back = store.windows(topic)
    assert back["window"].tolist() == [0, 1, 2] and back["drifted"].tolist() == [False, True, False]
    assert back["psi_top"][0] == {"Flow Bytes/s": 0.3} and back["alerts"][2] == ["attack_rate > 0.5"]
    assert back["mean_score"][0] == 0.8 and store.windows("another-topic").empty


def test_labels_and_prequential_windows_survive_a_restart_in_mongodb(mongo_server):
    """The store-backed label join on MongoDB: a label stored once per flows topic and record id, a redelivery told
    from a duplicate, the join set only once, and a restarted join rebuilt from the store (a window whose labels
    were stored but not the window itself is closed then), every label in exactly one window."""
    from kstream.detector.labels import LabelStream

    database = f"labels_{uuid.uuid4().hex[:8]}"
    topic = f"flows-{uuid.uuid4().hex[:8]}"
    preds = rows(range(7), topic=topic, label="attack")
    for p in preds:
        p["record_id"] = f"r{p['offset']}"

    def label(i, truth="attack", offset=None):
        return dict(topic=topic, record_id=f"r{i}", true_label=truth, label_ns=None, received_ns=preds[0]["send_ns"],
                    label_topic="labels", label_topic_id="l1", label_partition=0,
                    label_offset=i if offset is None else offset, window=None, predicted_label=None, model_id=None,
                    joined_ns=None, delay_records=None, delay_s=None)

    def stream(store):
        return LabelStream(store, topic, "labels", ["attack", "benign"], "binary_class", window=2, max_pending=100,
                           max_age_s=3600, clock_ns=lambda: preds[-1]["predicted_ns"] + 10**9)

    def write(store, batch):
        store.write_labels(batch.new)
        store.join_labels(batch.joins)
        store.write_prequential(batch.windows)

    with MongoStore(mongo_server.url, database) as store:
        store.write(preds)
        labels = stream(store)
        write(store, labels.handle(preds, [label(6, "benign")]))  # r6's label: joined at once, window 0
        batch = labels.handle([], [label(i) for i in range(4)])  # windows 0 and 1 close, r3 opens window 2
        assert [w["window"] for w in batch.windows] == [0, 1]
        store.write_labels(batch.new)  # the detector dies before its windows are stored
        assert store.count_labels(topic) == 5 and store.prequential(topic).empty
        restarted = stream(store)
        again = restarted.handle([], [label(i) for i in range(4)] + [label(4), label(4, "benign", offset=9)])
        assert (again.redelivered, again.duplicates, [r["record_id"] for r in again.new]) == (4, 1, ["r4"])
        write(store, again)
        write(store, restarted.handle([], [label(5)]))
        store.write_prequential(restarted.finish())
        store.join_labels([{**label(4), "window": 99, "predicted_label": "benign", "model_id": "x", "joined_ns": 1,
                            "delay_records": 0, "delay_s": 0.0}])  # joined already: the first join stands
        stored = store.labels(topic).set_index("record_id")
        windows = store.prequential(topic)
    assert len(stored) == 7 and stored["window"].notna().all() and stored.loc["r4", "window"] == 2
    assert stored.loc["r6", "true_label"] == "benign" and stored.loc["r6", "predicted_label"] == "attack"
    assert windows["window"].tolist() == [0, 1, 2, 3] and windows["records"].tolist() == [2, 2, 2, 1]
    assert stored.groupby("window").size().tolist() == windows["records"].tolist()
    assert windows["recall"][0] == {"attack": 1.0, "benign": 0.0} and windows["far"][0] == 1.0
