"""The detector loop's logic with plain fakes for its I/O (Kafka delivery is in test_delivery)."""

import json
import threading
import time

import numpy as np
import pytest

from kstream.clients import Message
from kstream.detector.loop import Detector
from kstream.detector.readahead import ReadAhead
from kstream.messages.wire import REASON_HEADER, SEND_TIME_HEADER, encode_flow
from kstream.modeling import artifacts
from kstream.modeling.artifacts import ModelRef


class Journal(list):
    """Records the order of side effects across fakes."""


class FakeConsumer:
    def __init__(self, batches, journal):
        self.batches, self.journal = list(batches), journal

    def poll(self, max_records, timeout_ms):
        return self.batches.pop(0) if self.batches else []

    def commit(self, offsets, deadline_s=None):
        self.committed = dict(offsets)
        self.journal.append("commit")
        return True

    def assigned(self):
        return True

    def caught_up(self):
        return not self.batches


class FakeProducer:
    def __init__(self, journal):
        self.sent, self.journal = [], journal

    def publish(self, records, deadline_s=None):
        self.sent.extend((r.topic, r.value, r.key, dict(r.headers)) for r in records)
        self.journal.append("publish")


class FakeStore:
    def __init__(self, journal):
        self.rows, self.journal = [], journal

    def write(self, rows):
        self.rows.extend(rows)
        self.journal.append("store")

    def write_windows(self, rows):
        self.windows = getattr(self, "windows", []) + list(rows)
        self.journal.append("store windows")


@pytest.fixture(scope="module")
def model(models_dir):
    return artifacts.load(ModelRef("cicids2017", "binary_class", "decision-tree", models_dir=models_dir))


@pytest.fixture(scope="module")
def test_rows(model, cicids):
    return model.held_out(cicids)


def _messages(values, start=0):
    return [
        Message("flows", 0, start + i, f"r{start + i}".encode(), v, {SEND_TIME_HEADER: b"1000"})
        for i, v in enumerate(values)
    ]


def _detector(model, batches):
    journal = Journal()
    det = Detector(model, FakeConsumer(batches, journal), FakeProducer(journal), FakeStore(journal), "preds", "dlq")
    return det, journal


def test_batch_is_scored_like_offline_and_committed_after_writes(model, test_rows):
    names = test_rows.feature_names
    x = test_rows.features.to_numpy()[:200]
    batch = _messages([encode_flow(names, row) for row in x])
    det, journal = _detector(model, [batch])
    assert det.step() == 200
    assert journal == ["store", "publish", "commit"]
    assert det.consumer.committed == {("flows", 0): 200}  # the next offset to read, explicitly
    stored = det.store.rows
    assert [r["predicted_label"] for r in stored] == list(model.pipeline.predict(x))
    assert [r["offset"] for r in stored] == list(range(200))
    assert all(r["send_ns"] == 1000 and r["model_id"] == model.card.model_id for r in stored)
    published = [json.loads(v) for t, v, k, h in det.producer.sent if t == "preds"]
    assert [p["record_id"] for p in published] == [r["record_id"] for r in stored]


def test_bad_records_go_to_the_dlq_with_reason_and_the_rest_are_scored(model, test_rows):
    names = test_rows.feature_names
    good = encode_flow(names, test_rows.features.to_numpy()[0])
    half = json.dumps({n: 1.0 for n in names[: len(names) // 2]}).encode()
    text = json.dumps({n: ("lots" if n == names[3] else 1.0) for n in names}).encode()
    batch = _messages([good, b"{oops", half, text, good])
    det, journal = _detector(model, [batch])
    det.step()
    assert [r["offset"] for r in det.store.rows] == [0, 2, 4]
    dlq = [(k, h) for t, v, k, h in det.producer.sent if t == "dlq"]
    assert [k for k, _ in dlq] == [b"r1", b"r3"]
    assert dlq[0][1][REASON_HEADER].startswith(b"value is not valid JSON")
    assert dlq[1][1][REASON_HEADER] == f"non-numeric value for feature {names[3]!r}: 'lots'".encode()
    assert dlq[0][1]["kstream-source"] == b"flows/0/1"
    assert det.stats.dead_lettered == 2 and det.stats.imputed == 1 and det.stats.predicted == 3
    assert journal[-1] == "commit"


def test_a_batch_the_model_rejects_is_scored_row_by_row(model, test_rows):
    class Picky:
        def __init__(self, inner):
            self.inner, self.card, self.features = inner, inner.card, inner.features

        def predict(self, x):
            if np.isnan(x[:, 0]).any():
                raise ValueError("first feature missing")
            return self.inner.predict(x)

    names = test_rows.feature_names
    good = encode_flow(names, test_rows.features.to_numpy()[0])
    empty_but_known = json.dumps({names[0]: None, names[1]: 1.0}).encode()
    det, _ = _detector(Picky(model), [_messages([good, empty_but_known, good])])
    det.step()
    assert [r["offset"] for r in det.store.rows] == [0, 2]
    dlq = [h[REASON_HEADER] for t, v, k, h in det.producer.sent if t == "dlq"]
    assert dlq == [b"model could not score the record: first feature missing"]


def test_run_stops_at_max_records_and_when_idle(model, test_rows):
    names = test_rows.feature_names
    rows = test_rows.features.to_numpy()
    batches = [_messages([encode_flow(names, r) for r in rows[i : i + 10]], start=i) for i in range(0, 50, 10)]
    det, _ = _detector(model, batches)
    stats = det.run(max_records=30)
    assert stats.records == 30 and 1 <= stats.batches <= 3  # small batches that wait are written together
    stats = det.run(idle_timeout_s=0.05)  # the fake returns nothing once drained
    assert stats.records == 50


def test_a_record_the_client_could_not_read_is_dead_lettered_by_its_offset(model, test_rows):
    good = encode_flow(test_rows.feature_names, test_rows.features.to_numpy()[0])
    unreadable = Message("flows", 0, 1, None, None, {}, error="CorruptRecordError: bad header key")
    batch = [*_messages([good]), unreadable, *_messages([good], start=2)]
    det, _ = _detector(model, [batch])
    det.step()
    assert [r["offset"] for r in det.store.rows] == [0, 2]
    (dlq,) = [(v, k, h) for t, v, k, h in det.producer.sent if t == "dlq"]
    assert dlq[0] == b"" and dlq[1] is None
    assert dlq[2][REASON_HEADER] == b"the Kafka client could not read this record: CorruptRecordError: bad header key"
    assert dlq[2]["kstream-source"] == b"flows/0/1"
    assert det.stats.dlq_reasons == {"the Kafka client could not read this record": 1}


# scikit-learn's finiteness check first sums the batch (+3.4e38 + -3.4e38 warns), then checks exactly
@pytest.mark.filterwarnings("ignore:invalid value encountered in reduce:RuntimeWarning")
@pytest.mark.parametrize("name", ["decision-tree", "random-forest"])
def test_values_beyond_float32_are_scored_not_dead_lettered(models_dir, test_rows, name):
    trained = artifacts.load(ModelRef("cicids2017", "binary_class", name, models_dir=models_dir))
    names = test_rows.feature_names
    huge = {n: (1e300 if i % 2 else -1.7e308) for i, n in enumerate(names)}
    values = [json.dumps(huge).encode(), json.dumps({n: 3.5e38 for n in names}).encode()]
    det, _ = _detector(trained, [_messages(values)])
    det.step()
    assert [r["offset"] for r in det.store.rows] == [0, 1] and det.stats.dead_lettered == 0


def test_a_failure_no_record_explains_is_handled_message_by_message(model, test_rows):
    good = encode_flow(test_rows.feature_names, test_rows.features.to_numpy()[0])
    odd = Message("flows", 0, 1, b"r1", good, None)  # headers that are not a mapping: a caller's bug
    det, _ = _detector(model, [[*_messages([good]), odd, *_messages([good], start=2)]])
    det.step()
    assert [r["offset"] for r in det.store.rows] == [0, 2]
    (reason,) = [h[REASON_HEADER] for t, v, k, h in det.producer.sent if t == "dlq"]
    assert reason.startswith(b"the detector failed on this record: ")


def test_prediction_rows_are_bounded_and_a_bad_send_time_only_loses_the_latency(model, test_rows):
    good = encode_flow(test_rows.feature_names, test_rows.features.to_numpy()[0])
    batch = [
        Message("flows", 0, 0, b"k" * 100_000, good, {SEND_TIME_HEADER: b"1" * 20}),
        Message("flows", 0, 1, None, good, {SEND_TIME_HEADER: b"-1"}),
        Message("flows", 0, 2, b"\xff\xfe", good, {SEND_TIME_HEADER: "\u0661".encode()}),
        Message("flows", 0, 3, b"r3", good, {SEND_TIME_HEADER: b"42"}),
    ]
    det, _ = _detector(model, [batch])
    det.step()
    rows = det.store.rows
    assert [r["send_ns"] for r in rows] == [None, None, None, 42]
    assert [r["record_id"] for r in rows][1:] == ["flows-0-1", "\ufffd\ufffd", "r3"]
    assert len(rows[0]["record_id"].encode()) == 512


def test_a_dlq_too_small_for_a_dead_letter_fails_at_construction(model):
    from kstream.errors import ConfigError

    with pytest.raises(ConfigError, match="max.message.bytes"):
        Detector(model, None, None, None, "preds", "dlq", dlq_budget=1000)


def _drift_detector(model, batches, window=100, rules=()):
    from kstream.drift.alerts import parse_rules
    from kstream.drift.monitor import DriftMonitor

    journal = Journal()
    consumer = FakeConsumer(batches, journal)
    consumer.topics = ["flows"]
    monitor = DriftMonitor(model.reference(), window_records=window, min_records=50)
    det = Detector(model, consumer, FakeProducer(journal), FakeStore(journal), "preds", "dlq", monitor=monitor,
                   alert_rules=parse_rules(rules, min_records=50), drift_topic="drift", alerts_topic="alerts")
    return det, journal


def test_drift_windows_and_alerts_are_stored_and_published_before_the_commit(model, test_rows):
    names = test_rows.feature_names
    rows = test_rows.features.to_numpy()[np.random.default_rng(0).permutation(len(test_rows))]  # mixed classes
    batches = [_messages([encode_flow(names, r) for r in rows[i : i + 150]], start=i) for i in range(0, 300, 150)]
    det, journal = _drift_detector(model, batches, rules=["attack_rate > 0.5", "mean_score < 0.1"])
    det.step()
    det.step()
    # batch 1 closes window 0 (records 0-99), batch 2 windows 1 and 2 (100-199, 200-299)
    assert journal == ["store", "store windows", "publish", "commit"] * 2
    assert [w["window"] for w in det.store.windows] == [0, 1, 2]
    assert all(w["records"] == 100 and w["topic"] == "flows" and w["monitor"] == det.monitor_id
               for w in det.store.windows)
    drift = [json.loads(v) for t, v, k, h in det.producer.sent if t == "drift"]
    assert drift == det.store.windows
    alerts = [json.loads(v) for t, v, k, h in det.producer.sent if t == "alerts"]
    assert [a["rule"] for a in alerts] == ["attack_rate > 0.5"] * 3  # the held-out split is ~90% attacks
    assert [a["evidence"]["index"] for a in alerts] == [0, 1, 2]
    assert [a["value"] for a in alerts] == [w["attack_rate"] for w in det.store.windows]
    assert det.stats.windows == 3 and det.stats.alerts == 3 and det.stats.last_window["window"] == 2


def test_the_open_window_is_written_when_the_detector_stops(model, test_rows):
    names = test_rows.feature_names
    rows = test_rows.features.to_numpy()
    det, journal = _drift_detector(model, [_messages([encode_flow(names, r) for r in rows[:130]])])
    det.run(max_records=130)
    assert [w["records"] for w in det.store.windows] == [100, 30]
    assert [w["judged"] for w in det.store.windows] == [True, False]  # under min_records: reported, not judged
    assert journal[-2:] == ["store windows", "publish"]  # after the last commit: no offsets ride on it


def test_a_failing_monitor_never_stops_detection(model, test_rows):
    names = test_rows.feature_names
    det, journal = _drift_detector(model, [_messages([encode_flow(names, test_rows.features.to_numpy()[0])])])

    def broken(*args, **kwargs):
        raise RuntimeError("a bug in the monitor")

    det.monitor.update = broken
    assert det.step() == 1
    assert journal == ["store", "publish", "commit"] and len(det.store.rows) == 1


def test_a_window_of_seconds_closes_on_an_empty_poll(model, test_rows):
    from kstream.drift.monitor import DriftMonitor

    names = test_rows.feature_names
    now = [0]
    journal = Journal()
    consumer = FakeConsumer([_messages([encode_flow(names, r) for r in test_rows.features.to_numpy()[:20]])], journal)
    monitor = DriftMonitor(model.reference(), window_records=None, window_seconds=10, min_records=10)
    det = Detector(model, consumer, FakeProducer(journal), FakeStore(journal), "preds", "dlq", monitor=monitor,
                   clock_ns=lambda: now[0], drift_topic="drift")
    det.step()
    assert not hasattr(det.store, "windows")  # 20 records, the window is still open
    now[0] = 5 * 10**9
    det.step()  # nothing came, and its time is not up
    assert not hasattr(det.store, "windows")
    now[0] = 11 * 10**9
    assert det.step() == 0
    assert [w["records"] for w in det.store.windows] == [20] and journal[-2:] == ["store windows", "publish"]
    assert [t for t, *_ in det.producer.sent].count("drift") == 1 and det.stats.windows == 1


class Trickle:
    """A consumer whose every poll returns ``per_poll`` new records, as a slow stream's polls do."""

    def __init__(self, per_poll: int) -> None:
        self.per_poll, self.offset = per_poll, 0

    def poll(self, n, timeout_ms):
        out = [Message("flows", 0, self.offset + i, None, b"{}", {}) for i in range(min(n, self.per_poll))]
        self.offset += len(out)
        return out

    def caught_up(self):
        return False

    def commit(self, offsets, deadline_s):
        return True


def test_the_read_ahead_keeps_reading_small_polls_while_the_writer_is_busy_up_to_its_room_in_records():
    reader = ReadAhead(Trickle(per_poll=1), lambda messages: len(messages), batch_size=10, poll_timeout_ms=10,
                       depth=2).start()
    try:
        deadline = time.monotonic() + 10
        while reader.waiting < 20 and time.monotonic() < deadline:  # the writer takes nothing meanwhile
            time.sleep(0.01)
        time.sleep(0.1)
        assert reader.waiting == 20  # 20 polls of one record wait (2 batches' worth), not 2 polls
        first = reader.next(1.0)
        taken = [first] + reader.more(first[2], room=9)
        assert [len(m) for m, _, _ in taken] == [1] * 10  # one write takes a whole batch of them, in order
        assert [m[0].offset for m, _, _ in taken] == list(range(10))
        deadline = time.monotonic() + 10
        while reader.waiting < 20 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert reader.waiting == 20
    finally:
        left = reader.stop()
    assert [m[0].offset for m, _ in left] == list(range(10, 10 + len(left)))  # what was read, in order, none lost


class StuckAfter:
    """A consumer with nothing to read whose caught-up check hangs (a client call that never returns) once
    ``good`` checks have answered."""

    def __init__(self, good: int) -> None:
        self.good, self.release = good, threading.Event()

    def poll(self, n, timeout_ms):
        time.sleep(timeout_ms / 1000)
        return []

    def caught_up(self):
        if self.good <= 0:
            self.release.wait(30)
        self.good -= 1
        return True

    def commit(self, offsets, deadline_s):
        return True


def test_idleness_counts_only_what_a_check_confirmed_so_a_stuck_read_never_times_out_as_idle():
    consumer = StuckAfter(good=5)
    reader = ReadAhead(consumer, len, batch_size=10, poll_timeout_ms=20).start()
    try:
        deadline = time.monotonic() + 10
        while consumer.good > 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.1)
        held = reader.idle_s()
        assert 0 < held < 1  # four checks apart confirmed it
        time.sleep(0.5)  # the fifth check hangs: half a second more passes, unconfirmed
        assert reader.idle_s() == held
        consumer.release.set()
        deadline = time.monotonic() + 10
        while reader.idle_s() <= held + 0.4 and time.monotonic() < deadline:  # answered: it counts again
            time.sleep(0.01)
        assert reader.idle_s() > held + 0.4
    finally:
        consumer.release.set()
        reader.stop()


def test_a_poll_bigger_than_the_room_left_waits_until_the_writer_takes_what_waits():
    reader = ReadAhead(Trickle(per_poll=15), lambda messages: len(messages), batch_size=20, poll_timeout_ms=10,
                       depth=1).start()
    try:
        first = reader.next(5.0)
        assert first is not None and len(first[0]) == 15
        time.sleep(0.2)
        assert reader.waiting == 15  # a second poll of 15 would not fit the 20 records of room: it is held back
        assert len(reader.next(5.0)[0]) == 15
    finally:
        reader.stop()
