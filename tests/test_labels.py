"""Labels as a stream: the label message, the generator's schedule, the bounded join, prequential windows, and
`kstream run --label-delay` end to end through the real broker.

The join's order cases (a label before its prediction, after it, twice, for an id never predicted) and its
bounds (count and age) run on :class:`LabelJoin` alone; the store-backed side (redeliveries told from
duplicates, a restart that rebuilds the join from the store) on :class:`LabelStream` with a real SQLite store.
"""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kstream.clients import Message
from kstream.detector.labels import LabelJoin, LabelStream
from kstream.detector.loop import Detector
from kstream.detector.prequential import PrequentialWindows
from kstream.errors import ConfigError
from kstream.generator import LabelDelay, LabelPlan, LabelSender, parse_label_delay
from kstream.messages.deadletters import REASON_HEADER
from kstream.messages.labels import LABEL_TIME_HEADER, MAX_LABEL_BYTES, decode_labels
from kstream.messages.wire import encode_flow, record_id
from kstream.modeling import artifacts
from kstream.modeling.artifacts import ModelRef
from kstream.settings import Settings
from kstream.stores.protocol import PREQUENTIAL_FIELDS
from kstream.stores.sqlite import SQLiteStore

CLASSES = ["attack", "benign"]
S = 10**9  # ns


def prediction(rid: str, offset: int, label: str = "attack", model: str = "m@1", at: int = 0, partition: int = 0):
    return dict(record_id=rid, predicted_label=label, score=0.9, model_id=model, send_ns=at, predicted_ns=at,
                topic="flows", topic_id="t1", partition=partition, offset=offset)


def label(rid: str, truth: str = "attack", at: int = 0, offset: int = 0, partition: int = 0):
    return dict(topic="flows", record_id=rid, true_label=truth, label_ns=None, received_ns=at, label_topic="labels",
                label_topic_id="l1", label_partition=partition, label_offset=offset, window=None,
                predicted_label=None, model_id=None, joined_ns=None, delay_records=None, delay_s=None)


# --- the message ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("key", "value", "says"), [
    (None, b"attack", "label has no key"),
    (b"", b"attack", "label has no key"),
    (b"r", None, "label value is empty (null message)"),
    (b"r", b"", "label value is empty (0 bytes)"),
    (b"r", b"a" * (MAX_LABEL_BYTES + 1), f"more than the {MAX_LABEL_BYTES} a label may have"),
    (b"r", b"\xffattack", "label value is not UTF-8 text"),
    (b"r", b"Attack", "label 'Attack' is not a class the model names (attack, benign)"),
    (b"r", b"attack\n", "is not a class the model names"),
])
def test_a_bad_label_gets_its_reason(key, value, says):
    decoded = decode_labels([key], [value], [{}], CLASSES)
    assert decoded.labels == [] and len(decoded.errors) == 1 and says in decoded.errors[0][1]


def test_a_label_keeps_its_time_header_and_a_long_key_meets_its_flows_id():
    long_key = b"k" * 2000
    decoded = decode_labels([b"r1", long_key], [b"benign", b"attack"],
                            [{LABEL_TIME_HEADER: b"1700000000000000000"}, {LABEL_TIME_HEADER: b"x"}], CLASSES)
    assert decoded.labels == [(0, "r1", "benign", 1700000000000000000),
                              (1, record_id(long_key, "flows", 0, 7), "attack", None)]


@given(st.lists(st.tuples(st.one_of(st.none(), st.binary(max_size=600)),
                          st.one_of(st.none(), st.binary(max_size=400), st.sampled_from([b"attack", b"benign"])),
                          st.dictionaries(st.text(max_size=20), st.one_of(st.none(), st.binary(max_size=30)))),
                max_size=20))
def test_decoding_labels_never_raises_and_accounts_for_every_record(records):
    decoded = decode_labels([k for k, _, _ in records], [v for _, v, _ in records], [h for _, _, h in records],
                            CLASSES)
    rows = sorted([i for i, *_ in decoded.labels] + [i for i, _ in decoded.errors])
    assert rows == list(range(len(records)))
    assert all(0 < len(reason.encode()) <= 1024 for _, reason in decoded.errors)
    assert all(cls in CLASSES for _, _, cls, _ in decoded.labels)


# --- the delay, the settings and the generator's schedule -------------------------------------------------


def test_label_delays_in_records_and_seconds_and_what_is_refused():
    assert parse_label_delay("0") == LabelDelay(records=0)
    assert parse_label_delay(" 250ms ") == LabelDelay(seconds=0.25)
    for bad in ("-1", "1.5", "30 sec", "1h", "s", "abc"):
        with pytest.raises(ConfigError, match="label delay"):
            parse_label_delay(bad)
    assert Settings.resolve({}, env={"KSTREAM_LABEL_DELAY": "2m"}).label_schedule == LabelDelay(seconds=120.0)
    with pytest.raises(ConfigError, match="neither a whole number of records"):
        Settings(label_delay="soon")
    with pytest.raises(ConfigError, match="labels topic"):
        Settings(labels_topic="flows")
    with pytest.raises(ConfigError, match="label_wait_s"):
        Settings(label_wait_s=0)
    assert Settings.resolve({}, env={"KSTREAM_LABELS": "yes", "KSTREAM_PREQUENTIAL_WINDOW": "50"}).labels


class Tap:
    def __init__(self):
        self.sent = []

    def send(self, topic, value, key=None, headers=None):
        self.sent.append((topic, key.decode(), value.decode(), dict(headers)))


def test_labels_follow_their_records_n_records_later_and_loop_ids_keep_their_pass():
    tap = Tap()
    sender = LabelSender(tap, LabelPlan("lab", ["attack", "benign"], LabelDelay(records=3)), rows=2)
    ids = ["a", "b", "a#1", "b#1", "a#2"]
    seen = []
    for i, rid in enumerate(ids):
        sender.sent(i, rid)
        seen.append([key for _, key, _, _ in tap.sent])
    assert seen == [[], [], [], ["a"], ["a", "b"]]  # the label of record i right after record i + 3
    sender.finish()  # the rest at once
    assert [(k, v) for _, k, v, _ in tap.sent] == [("a", "attack"), ("b", "benign"), ("a#1", "attack"),
                                                     ("b#1", "benign"), ("a#2", "attack")]
    assert all(int(h[LABEL_TIME_HEADER]) > 0 for *_, h in tap.sent) and sender.labels == 5


def test_labels_in_seconds_go_when_due_and_the_last_ones_at_their_time():
    now, slept = [0.0], []
    tap = Tap()
    sender = LabelSender(tap, LabelPlan("lab", ["attack"] * 3, LabelDelay(seconds=2.0)), rows=3,
                         clock=lambda: now[0], sleep=lambda s: (slept.append(s), now.__setitem__(0, now[0] + s)))
    sender.sent(0, "a")
    now[0] = 1.0
    sender.sent(1, "b")
    now[0] = 2.5
    sender.sent(2, "c")  # a's label was due at 2.0
    assert [k for _, k, _, _ in tap.sent] == ["a"]
    sender.finish()
    assert [k for _, k, _, _ in tap.sent] == ["a", "b", "c"] and slept == [0.5, 1.5]


# --- the join, bounded -------------------------------------------------------------------------------------


def test_a_label_after_its_prediction_joins_it_with_the_delay_seen():
    join = LabelJoin(max_pending=100, max_age_s=60)
    assert join.predicted([prediction("a", 10, at=1 * S), prediction("b", 11, at=1 * S)], 1 * S) == []
    assert join.predicted([prediction("c", 15, at=2 * S)], 2 * S) == []
    joined = join.labelled([label("a", at=4 * S)], 4 * S)
    assert [(r["record_id"], r["predicted_label"], r["model_id"], r["delay_records"], r["delay_s"], r["joined_ns"])
            for r in joined] == [("a", "attack", "m@1", 5, 3.0, 4 * S)]
    assert join.pending == 2 and list(join.waiting) == ["b", "c"]


def test_a_label_before_its_prediction_waits_and_joins_when_it_comes():
    join = LabelJoin(max_pending=100, max_age_s=60)
    assert join.labelled([label("a", "benign", at=1 * S)], 1 * S) == []
    assert list(join.labels) == ["a"] and join.pending == 0
    joined = join.predicted([prediction("a", 3, "attack", at=2 * S)], 2 * S)
    assert [(r["true_label"], r["predicted_label"], r["delay_records"], r["joined_ns"]) for r in joined] == \
        [("benign", "attack", 0, 2 * S)]
    assert not join.labels and not join.waiting


def test_a_prediction_read_again_after_its_label_joined_does_not_wait_again():
    join = LabelJoin(max_pending=100, max_age_s=60)
    join.predicted([prediction("a", 0)], 0)
    join.labelled([label("a")], 0)
    assert join.predicted([prediction("a", 0)], 0) == [] and join.pending == 0


def test_predictions_and_labels_expire_by_count_and_by_age_counted():
    join = LabelJoin(max_pending=2, max_age_s=10)
    join.predicted([prediction(r, i, at=0) for i, r in enumerate("abc")], 0)  # "a" is pushed out by the count
    assert list(join.waiting) == ["b", "c"] and join.expired == 1
    join.labelled([label(r, at=0) for r in "xyz"], 0)  # no prediction: they wait, "x" is pushed out
    assert list(join.labels) == ["y", "z"] and join.unknown == 1
    join.expire(5 * S)
    assert join.pending == 2 and join.unknown == 1  # nothing is 10 s old yet
    join.predicted([prediction("d", 3, at=9 * S)], 9 * S)  # b, c expire as d comes in (count)...
    join.expire(11 * S)  # ... and by age: the labels of x, y, z never found their prediction
    assert list(join.waiting) == ["d"] and join.expired == 3 and join.unknown == 3
    assert join.labelled([label("a", at=11 * S)], 11 * S) == []  # its prediction expired: the label waits


# --- windows ------------------------------------------------------------------------------------------------


def joined_row(rid, truth, pred, model="m@1", partition=0, at=0):
    return dict(record_id=rid, true_label=truth, predicted_label=pred, model_id=model, label_partition=partition,
                joined_ns=at, delay_records=1, delay_s=0.5)


def test_a_window_closes_at_n_labels_and_early_where_the_model_version_changes():
    windows = PrequentialWindows("flows", size=3, task="binary_class")
    rows = [joined_row(str(i), "attack", "attack", "m@1" if i < 4 else "m@2", at=i) for i in range(8)]
    closed = [w for row in rows for w in windows.place(row)]
    assert [(w.index, len(w), w.model_id, w.closed_by) for w in closed] == \
        [(0, 3, "m@1", "records"), (1, 1, "m@1", "model"), (2, 3, "m@2", "records")]
    assert [r["window"] for r in rows] == [0, 0, 0, 1, 2, 2, 2, 3]
    last = windows.flush()
    assert [(w.index, len(w), w.closed_by) for w in last] == [(3, 1, "stop")]
    row = windows.close(closed[0])
    assert set(row) == set(PREQUENTIAL_FIELDS) and row["tpr"] == 1.0 and row["far"] is None  # no benign: no FAR


def test_windows_are_numbered_per_labels_partition_and_restored_from_their_labels():
    windows = PrequentialWindows("flows", size=2, task="multi_class")
    windows.place(joined_row("a", "DoS", "DoS", partition=0))
    windows.place(joined_row("b", "DoS", "DoS", partition=1))
    assert sorted(windows.open) == [0, 1] and windows.open[1].index == 0
    stored = [{**joined_row(r, "DoS", "DoS"), "window": w} for r, w in (("a", 4), ("b", 4), ("c", 5))]
    restored = PrequentialWindows("flows", size=2, task="multi_class")
    to_close = restored.restore(0, last_closed=3, rows=stored)  # window 4 was full: its row was never stored
    assert [(w.index, len(w), w.closed_by) for w in to_close] == [(4, 2, "records")]
    assert restored.open[0].index == 5 and len(restored.open[0]) == 1
    row = {**joined_row("d", "DoS", "PortScan")}
    assert restored.place(row) and row["window"] == 5


# --- the store-backed join -----------------------------------------------------------------------------------


@pytest.fixture
def store(tmp_path):
    with SQLiteStore(tmp_path / "p.sqlite") as s:
        yield s


def stream(store, window=3, clock=None, pending=100, wait_s=60.0):
    return LabelStream(store, "flows", "labels", CLASSES, "binary_class", window=window, max_pending=pending,
                       max_age_s=wait_s, clock_ns=clock or (lambda: 5 * S))


def write(store, batch):
    store.write_labels(batch.new)
    store.join_labels(batch.joins)
    store.write_prequential(batch.windows)


def test_a_redelivered_label_is_skipped_and_another_label_for_a_joined_id_is_a_duplicate(store):
    labels = stream(store)
    preds = [prediction(r, i) for i, r in enumerate("abc")]
    store.write(preds)
    write(store, labels.handle(preds, []))
    first = labels.handle([], [label("a", offset=0), label("b", offset=1)])
    write(store, first)
    again = labels.handle([], [label("a", offset=0), label("a", "benign", offset=7), label("c", offset=2),
                               label("c", "benign", offset=8)])  # a redelivery, a duplicate, new, its duplicate
    write(store, again)
    assert (again.redelivered, again.duplicates, [r["record_id"] for r in again.new]) == (1, 2, ["c"])
    assert labels.counts.accepted == 3 and labels.counts.joined == 3 and labels.counts.duplicates == 2
    stored = store.labels("flows").set_index("record_id")
    assert stored.loc["a", "label_offset"] == 0 and stored["window"].tolist() == [0, 0, 0]
    assert store.prequential("flows")["records"].tolist() == [3]


def test_a_label_for_an_id_never_predicted_waits_then_counts_unknown(store):
    now = [0]
    labels = stream(store, clock=lambda: now[0], wait_s=2)
    write(store, labels.handle([], [label("ghost", at=0)]))
    assert labels.counts.accepted == 1 and labels.counts.unknown == 0
    now[0] = 3 * S
    labels.expire()
    assert labels.counts.unknown == 1 and store.labels("flows")["window"].isna().all()


def test_a_restart_rebuilds_the_join_from_the_store_and_counts_every_label_once(store):
    """Labels stored with their windows, the crash before the window rows: the restarted join closes those
    windows, waits for the labels still due, and every label ends in exactly one stored window."""
    labels = stream(store, window=2)
    preds = [prediction(str(i), i) for i in range(7)]
    store.write(preds)
    write(store, labels.handle(preds, []))
    batch = labels.handle([], [label(str(i), offset=i) for i in range(5)])  # windows 0, 1 close; 2 stays open
    assert [w["window"] for w in batch.windows] == [0, 1]
    store.write_labels(batch.new)  # ... and the detector dies before it stores the windows (after-labels)
    restarted = stream(store, window=2)
    redelivered = restarted.handle([], [label(str(i), offset=i) for i in range(5)])  # read again: uncommitted
    assert redelivered.redelivered == 5 and [w["window"] for w in redelivered.windows] == [0, 1]
    write(store, redelivered)
    assert restarted.join.pending == 2 and list(restarted.windows.open) == [0]  # 5, 6 wait; window 2 holds "4"
    write(store, restarted.handle([], [label("5", offset=5), label("6", offset=6)]))
    rows = restarted.finish()
    store.write_prequential(rows)
    windows = store.prequential("flows")
    assert windows["window"].tolist() == [0, 1, 2, 3] and windows["records"].tolist() == [2, 2, 2, 1]
    stored = store.labels("flows")
    assert len(stored) == 7 and stored["window"].notna().all()
    assert stored.groupby("window").size().tolist() == windows["records"].tolist()


def test_a_restart_keeps_waiting_predictions_and_labels_within_the_bounds(store):
    labels = stream(store, clock=lambda: 100 * S, wait_s=50)
    old, new = prediction("old", 0, at=10 * S), prediction("new", 1, at=90 * S)
    store.write([old, new])
    write(store, labels.handle([old, new], [label("early", at=95 * S, offset=0)]))
    restarted = stream(store, clock=lambda: 100 * S, wait_s=50)
    restarted.rebuild()
    assert list(restarted.join.waiting) == ["new"] and list(restarted.join.labels) == ["early"]
    assert restarted.join.positions == {0: 1}


# --- the detector, with labels in its polls (fakes for Kafka, a real SQLite store) ----------------------------


class Producer:
    def __init__(self):
        self.sent = []

    def publish(self, records, deadline_s=None):
        self.sent += list(records)


class Consumer:
    topics = ["flows", "labels"]

    def __init__(self, batches):
        self.batches = list(batches)

    def poll(self, max_records, timeout_ms):
        return self.batches.pop(0) if self.batches else []

    def commit(self, offsets, deadline_s=None):
        self.committed = dict(offsets)
        return True


@pytest.fixture(scope="module")
def model(models_dir):
    return artifacts.load(ModelRef("cicids2017", "binary_class", "decision-tree", models_dir=models_dir))


def test_the_detector_joins_labels_in_its_batches_and_dead_letters_the_bad_ones(model, cicids, store):
    rows = model.held_out(cicids)
    x = rows.features[model.features].to_numpy()[:6]
    truth = rows.target("binary_class").to_numpy()[:6]
    ids = list(rows.ids[:6])
    flows = [Message("flows", 0, i, ids[i].encode(), encode_flow(model.features, x[i]), {}) for i in range(6)]
    good = [Message("labels", 0, i, ids[i].encode(), truth[i].encode(), {}) for i in range(6)]
    bad = [Message("labels", 0, 6, None, b"attack", {}), Message("labels", 0, 7, b"x", b"\xff", {}),
           Message("labels", 0, 8, b"y", b"maybe", {}), Message("labels", 0, 9, b"z", b"a" * 5000, {})]
    producer = Producer()
    labels = stream(store, window=4)
    detector = Detector(model, Consumer([flows[:3] + good[:2], bad + good[2:4], flows[3:] + good[4:]]), producer,
                        store, "preds", "dlq", labels=labels, prequential_topic="preq")
    assert detector.step() and detector.step() and detector.step()
    detector.finish()
    stored = store.labels("flows")
    assert sorted(stored["record_id"]) == sorted(ids) and stored["window"].notna().all()
    windows = store.prequential("flows")
    assert windows["records"].tolist() == [4, 2] and windows["closed_by"].tolist() == ["records", "stop"]
    assert windows["records"].sum() == len(stored)
    reasons = [dict(r.headers)[REASON_HEADER].decode() for r in producer.sent if r.topic == "dlq"]
    assert len(reasons) == 4 and all(r.startswith("label") for r in reasons)
    published = [json.loads(r.value) for r in producer.sent if r.topic == "preq"]
    assert [w["records"] for w in published] == [4, 2]
    assert detector.stats.labels["joined"] == 6 and detector.stats.labels["dead_lettered"] == 4
    assert detector.stats.predicted == 6 and detector.stats.dead_lettered == 4
    scored = dict(zip(store.frame("flows")["record_id"], store.frame("flows")["predicted_label"]))
    joined = stored.set_index("record_id")
    assert all(joined.loc[r, "predicted_label"] == scored[r] for r in ids)  # each label met its own prediction


def test_without_labels_the_detector_reads_and_writes_no_label(model, store, tmp_path):
    detector = Detector(model, Consumer([[Message("labels", 0, 0, b"a", b"attack", {})]]), Producer(), store,
                        "preds", "dlq")
    assert detector.step() == 1
    with sqlite3.connect(tmp_path / "p.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM labels").fetchone()[0] == 0
    assert detector.stats.labels is None


# --- end to end ----------------------------------------------------------------------------------------------


@pytest.mark.kafka
@pytest.mark.parametrize("task", ["binary_class", "multi_class"])
def test_run_with_a_label_delay_lists_prequential_windows_in_its_summary(cli, kafka_bootstrap, models_dir, tmp_path,
                                                                          task):
    env = {"KSTREAM_MODELS_DIR": str(models_dir), "KSTREAM_BOOTSTRAP": kafka_bootstrap}
    proc = cli("-q", "run", "-d", "cicids2017", "-t", task, "-m", "decision-tree", "--label-delay", "1000",
               "--records", "2500", "--json", "--run-dir", str(tmp_path / "run"), env=env)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    windows = summary["prequential"]
    assert [w["records"] for w in windows] == [1000, 1000, 500]  # the last one closed as the detector stopped
    for w in windows:
        assert {"records", "accuracy", "macro_f1", "model_id", "recall", "pending"} <= set(w)
        assert 0.5 < w["accuracy"] <= 1 and 0 < w["macro_f1"] <= 1 and w["model_id"] == summary["model_id"]
        assert (w["tpr"] is not None) == (task == "binary_class")
    assert summary["labels"]["sent"] == summary["labels"]["accepted"] == summary["labels"]["joined"] == 2500
    assert summary["labels"]["pending"] == 0 and summary["labels"]["duplicates"] == 0
    labels = np.array([w["accuracy"] * w["records"] for w in windows]).sum() / 2500
    assert labels == pytest.approx(summary["accuracy"])  # the same records, the same labels: the same accuracy
