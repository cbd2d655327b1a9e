"""The detector loop's logic with plain fakes for its I/O (Kafka delivery is in test_delivery)."""

import json

import numpy as np
import pytest

from kstream import artifacts
from kstream.artifacts import ModelRef
from kstream.clients import Message
from kstream.detector import Detector
from kstream.serialization import REASON_HEADER, SEND_TIME_HEADER, encode_flow


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
