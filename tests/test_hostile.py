"""Hostile input: whatever a record holds, it ends stored or dead-lettered exactly once, and nothing stops.

Property tests drive :meth:`Detector.process` and :meth:`Detector.write` with generated records
(values, keys and headers of any shape and size) into a real SQLite store and a fake producer that
enforces the Kafka client's own rules (record size, header types). The last test crafts a record
the Kafka client itself cannot read and streams it through the real broker.

Hypothesis profiles: ``kstream`` (default, a few seconds) and ``kstream-thorough`` (many more
examples); choose one with ``KSTREAM_HYPOTHESIS_PROFILE=kstream-thorough``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import tempfile
import time
from pathlib import Path

import kafka
import numpy as np
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from kafka.admin import NewTopic
from kafka.consumer.fetcher import Fetcher
from kafka.coordinator.assignors.range import RangePartitionAssignor
from kafka.coordinator.consumer import ConsumerCoordinator
from kafka.protocol.consumer.offsets import OffsetSpec
from kafka.record.default_records import DefaultRecordBatchBuilder

from kstream import app
from kstream.clients import BACKENDS, Message, ensure_topics, kafka_python
from kstream.detector.loop import Detector
from kstream.messages.deadletters import (
    MAX_REASON_BYTES,
    ORIGINAL_SHA256_HEADER,
    ORIGINAL_SIZE_HEADER,
    REASON_HEADER,
    RECORD_OVERHEAD,
    SOURCE_HEADER,
    DeadLetterBuilder,
    minimum_budget,
)
from kstream.messages.wire import (
    SCHEMA_HEADER,
    SEND_TIME_HEADER,
    decode_flows,
    encode_flow,
    encode_vector,
    vector_schema,
)
from kstream.modeling import artifacts
from kstream.modeling.artifacts import ModelRef
from kstream.stores.sqlite import SQLiteStore

hypothesis_settings.register_profile(
    "kstream", max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
hypothesis_settings.register_profile(
    "kstream-thorough", max_examples=600, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
hypothesis_settings.load_profile(os.environ.get("KSTREAM_HYPOTHESIS_PROFILE", "kstream"))

MB = 1_000_000

log = logging.getLogger(__name__)


# --- the real client's rules, the detector under test ---------------------------------------------


class KafkaRulesProducer:
    """A producer that refuses what kafka-python's KafkaProducer refuses, and keeps what it accepts."""

    def __init__(self, max_request_size: int):
        self.max_request_size = max_request_size
        self.sent: list[tuple[str, bytes, bytes | None, list[tuple[str, bytes]]]] = []

    def publish(self, records, deadline_s=None):
        for r in records:
            pairs = list(r.headers)
            assert type(r.value) is bytes and (r.key is None or type(r.key) is bytes)
            assert all(type(n) is str and type(v) is bytes for n, v in pairs), "header names str, values bytes"
            for name, _ in pairs:
                name.encode("utf-8")  # the client encodes names strictly: a lone surrogate would raise here
            size = DefaultRecordBatchBuilder.estimate_size_in_bytes(r.key, r.value, pairs)  # the client's estimate
            assert size <= self.max_request_size, f"record of {size} bytes > max_request_size {self.max_request_size}"
            self.sent.append((r.topic, r.value, r.key, pairs))


def _detector(model, store, budget):
    producer = KafkaRulesProducer(budget + RECORD_OVERHEAD)
    return Detector(model, None, producer, store, "preds", "dlq", dlq_budget=budget), producer


def _send_flows(bootstrap: str, topic: str, model, rows) -> None:
    """Send ``rows`` as JSON flows (keys r-0, r-1, ..., with a send time) to ``topic``, made with one partition."""
    ensure_topics(bootstrap, {topic: 1})
    producer = kafka.KafkaProducer(bootstrap_servers=bootstrap)
    try:
        for i, row in enumerate(rows):
            producer.send(topic, key=f"r-{i}".encode(), value=encode_flow(model.features, np.array(row)),
                          headers=[(SEND_TIME_HEADER, str(time.time_ns()).encode())])
        producer.flush()
    finally:
        producer.close()


def _stored(path: Path) -> list[tuple]:
    with sqlite3.connect(path) as db:
        return db.execute('SELECT "offset", record_id, score, send_ns, predicted_label FROM predictions').fetchall()


def _check_every_record_ends_once(model, messages, budget):
    """process -> write into a real SQLite store: each message is one row or one dead letter."""
    with tempfile.TemporaryDirectory() as tmp:
        store = SQLiteStore(Path(tmp) / "p.sqlite")
        try:
            det, producer = _detector(model, store, budget)
            result = det.process(messages)
            det.write(result)
            rows = _stored(store.path)
        finally:
            store.close()
    dead = [dict(h) for t, v, k, h in producer.sent if t == "dlq"]
    dead_offsets = [int(h[SOURCE_HEADER].rsplit(b"/", 1)[1]) for h in dead]
    stored_offsets = [r[0] for r in rows]
    assert sorted(stored_offsets + dead_offsets) == sorted(m.offset for m in messages)
    assert len([t for t, *_ in producer.sent if t == "preds"]) == len(rows) == len(result.predictions)
    for _offset, rid, score, send_ns, label in rows:
        assert len(rid.encode("utf-8")) <= 512 and 0.0 <= score <= 1.0 and label
        assert send_ns is None or 0 <= send_ns < 2**63
    unreadable = {m.offset for m in messages if m.error is not None}
    for headers, offset in zip(dead, dead_offsets):
        assert 0 < len(headers[REASON_HEADER]) <= MAX_REASON_BYTES
        assert (offset in unreadable) == headers[REASON_HEADER].startswith(b"the Kafka client could not read")
        # the per-message safety net is for bugs: no data may need it
        assert not headers[REASON_HEADER].startswith(b"the detector failed"), headers[REASON_HEADER]
    return stored_offsets, dead


# --- strategies -------------------------------------------------------------------------------------
# Strategies draw small recipes (a failing example stays readable); _build turns them into records.


class Big:
    """``unit * n`` bytes, shown by its size in Hypothesis reports."""

    def __init__(self, unit: bytes, n: int):
        self.unit, self.n = unit, n

    def __repr__(self):
        return f"Big({self.unit!r} * {self.n})"

    def build(self) -> bytes:
        return self.unit * self.n


class Value:
    """A record value made of pieces (bytes or Big), optionally cut to a fraction of its length."""

    def __init__(self, *pieces, cut: float | None = None):
        self.pieces, self.cut = pieces, cut

    def __repr__(self):
        return f"Value({', '.join(map(repr, self.pieces))}{'' if self.cut is None else f', cut={self.cut}'})"

    def build(self) -> bytes:
        raw = b"".join(p.build() if isinstance(p, Big) else p for p in self.pieces)
        return raw if self.cut is None else raw[: int(len(raw) * self.cut)]


class ManyHeaders:
    def __init__(self, n: int):
        self.n = n

    def __repr__(self):
        return f"ManyHeaders({self.n})"

    def build(self) -> dict[str, bytes]:
        return {f"h{i}": b"v" * 700 for i in range(self.n)}


def _build(data):
    if isinstance(data, (Big, Value, ManyHeaders)):
        return data.build()
    if isinstance(data, dict):
        return {name: _build(value) for name, value in data.items()}
    return data


def _messages(recipes) -> list[Message]:
    return [Message("flows", 0, i, _build(k), _build(v), _build(h), error=e) for i, (k, v, h, e) in enumerate(recipes)]


NUMBER_TOKENS = [b"1e308", b"-1e308", b"1.7976931348623157e308", b"3.5e38", b"-3.5e38", b"1e39", b"1e-400", b"1e400",
                 b"-1e400", b"18446744073709551616", b"-9223372036854775809", b"1" + b"0" * 400, b"9" * 5000, b"-0"]
NOT_NUMBERS = [b"NaN", b"Infinity", b"-Infinity", b"nan", b"inf", b"true", b"false", b'"12"', b'""', b"{}", b"[]",
               b'{"a": 1}', b"null"]


def _nested(depth: int) -> Value:
    return Value(Big(b"[", depth), Big(b"]", depth))


feature_values = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False).map(lambda x: Value(json.dumps(x).encode())),  # to 1.8e308
    st.integers(min_value=-(2**70), max_value=2**70).map(lambda n: Value(str(n).encode())),
    st.sampled_from(NUMBER_TOKENS).map(Value),
    st.sampled_from(NOT_NUMBERS).map(Value),
    st.text(max_size=30).map(lambda t: Value(json.dumps(t).encode())),
    st.integers(min_value=0, max_value=60).map(_nested),
    st.integers(min_value=1015, max_value=1030).map(_nested),  # around orjson's depth limit of 1024
    st.sampled_from([2 * MB, 3 * MB]).map(lambda n: Value(b'"', Big(b"x", n), b'"')),  # strings of several MB
)


@st.composite
def flow_values(draw, features, base_rows):
    """A flow object: a real row with some features changed, dropped or repeated (duplicate keys)."""
    row = dict(zip(features, draw(st.sampled_from(base_rows))))
    pairs = [(name, Value(b"null" if value != value else json.dumps(value).encode())) for name, value in row.items()]
    for _ in range(draw(st.integers(0, 4))):
        i = draw(st.integers(0, len(pairs) - 1))
        pairs[i] = (pairs[i][0], draw(feature_values))
    if draw(st.booleans()):
        keep = draw(st.integers(0, len(pairs)))
        pairs = pairs[:keep] if draw(st.booleans()) else pairs[keep:]
    for _ in range(draw(st.integers(0, 2))):
        pairs.insert(draw(st.integers(0, len(pairs))), (draw(st.sampled_from(features)), draw(feature_values)))
    if draw(st.integers(0, 9)) == 9:
        pairs.append(("padding", Value(b'"', Big(b"p", 10 * MB), b'"')))  # 10 MB the model ignores
    pieces = [b"{"]
    for n, (name, value) in enumerate(pairs):
        pieces += [b"," if n else b"", json.dumps(name).encode(), b":", *value.pieces]
    return Value(*[p for p in pieces if p != b""], b"}")


def values(features, base_rows):
    flows = flow_values(features, base_rows)
    return st.one_of(
        flows,
        flows,
        st.tuples(flows, st.floats(0, 1)).map(lambda t: Value(*t[0].pieces, cut=t[1])),  # truncated JSON
        st.binary(max_size=300).map(Value),  # garbage
        st.sampled_from([None, b"", b"null", b"[1, 2]", b'"flow"', b"1e400", b"true", b"{}", b"\xef\xbb\xbf{}"]),
        st.integers(min_value=0, max_value=3000).map(_nested),
        st.binary(min_size=1, max_size=50).map(lambda b: Value(b'{"Flow Duration": "', b, b'"}')),  # not UTF-8
        st.sampled_from([b"{", b"\xff", b" "]).map(lambda unit: Value(Big(unit, 10 * MB))),  # 10 MB values
    )


keys = st.one_of(
    st.none(),
    st.just(b""),
    st.binary(max_size=40),
    st.binary(min_size=160, max_size=600),  # around the 512-byte record id limit
    st.integers(min_value=1000, max_value=300_000).map(lambda n: Big(b"\xff", n)),
)

header_names = st.one_of(
    st.text(max_size=20),
    st.sampled_from([REASON_HEADER, SOURCE_HEADER, ORIGINAL_SIZE_HEADER, "bad\udcff", "\udc80" * 3, "", "n" * 2000]),
)
header_values = st.one_of(st.none(), st.binary(max_size=40), st.just(Big(b"h", 2 * MB)))
send_times = st.one_of(
    st.integers(min_value=0, max_value=2**64).map(lambda n: str(n).encode()),  # 2**63 and beyond: not a time
    st.sampled_from([b"1" * 20, b"9" * 19, b"-5", b"+5", b" 5", b"5\n", "\u0661".encode(), b"1e9", b"", b"\x00"]),
)


@st.composite
def headers(draw):
    if draw(st.integers(0, 9)) == 9:
        return ManyHeaders(draw(st.integers(100, 3000)))  # many headers
    found = draw(st.dictionaries(header_names, header_values, max_size=12))
    if draw(st.booleans()):
        found[SEND_TIME_HEADER] = draw(send_times)
    return found


def vectors(features, base_rows):
    """Vector values (see kstream.messages.wire) with a schema header: the model's vectors, any 8n bytes
    (every float64 pattern: NaN, infinities, subnormals), any length, all missing, and other schemas."""
    n = len(features)
    right = vector_schema(features).encode()
    vector_values = st.one_of(
        st.sampled_from(base_rows).map(lambda row: Value(encode_vector(np.array(row)))),
        st.binary(min_size=8 * n, max_size=8 * n).map(Value),
        st.binary(max_size=8 * n + 16).map(Value),
        st.just(Value(encode_vector(np.full(n, np.nan)))),
        st.none(),
    )
    schemas = st.one_of(st.just(right), st.just(right), st.just(right[:-1] + b"0"), st.binary(max_size=40),
                        st.just(Big(b"s", MB)))
    return st.tuples(vector_values, schemas).map(lambda t: (t[0], {SCHEMA_HEADER: t[1]}))


def records(features, base_rows, max_size=10):
    unreadable = st.sampled_from([None] * 9 + ["CorruptRecordError: x"])  # a placeholder of Consumer.poll
    plain = st.tuples(keys, values(features, base_rows), headers(), unreadable)
    vector = st.tuples(keys, vectors(features, base_rows), unreadable).map(lambda t: (t[0], *t[1], t[2]))
    return st.lists(st.one_of(plain, plain, vector), min_size=1, max_size=max_size)


# --- fixtures ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model(models_dir):
    return artifacts.load(ModelRef("cicids2017", "binary_class", "decision-tree", models_dir=models_dir))


@pytest.fixture(scope="module")
def base_rows(model, cicids):
    held_out = model.held_out(cicids)
    return [tuple(row) for row in held_out.features[model.features].to_numpy()[:50].tolist()]


# --- properties -------------------------------------------------------------------------------------


@given(data=st.data(), budget=st.sampled_from([minimum_budget(), 20_000, 1_000_000 - RECORD_OVERHEAD]))
def test_every_record_ends_stored_or_dead_lettered_exactly_once(model, base_rows, data, budget):
    batch = _messages(data.draw(records(model.features, base_rows)))
    _check_every_record_ends_once(model, batch, budget)


# send-time header values, with the time a detector must read from them (None: not a time)
timed = st.one_of(
    st.integers(min_value=0, max_value=2**63 - 1).map(lambda n: (str(n).encode(), n)),
    st.integers(min_value=2**63, max_value=10**30).map(lambda n: (str(n).encode(), None)),
    st.sampled_from([b"1" * 20, b"-5", b"+5", b" 5", b"5\n", "\u0661".encode(), b"1e9", b"", b"\x00", b"0x1"]).map(
        lambda raw: (raw, None)),
)


@given(data=st.data())
@hypothesis_settings(max_examples=15)
def test_valid_flows_mixed_with_bad_records_are_still_scored(model, base_rows, data):
    rows = data.draw(st.lists(st.tuples(st.sampled_from(base_rows), timed), min_size=1, max_size=5))
    good = [(b"good", encode_flow(model.features, np.array(r)), {SEND_TIME_HEADER: raw}, None) for r, (raw, _) in rows]
    bad = data.draw(records(model.features, base_rows, max_size=6))
    order = data.draw(st.permutations(range(len(good) + len(bad))))
    items = good + bad
    batch = _messages([items[j] for j in order])
    with tempfile.TemporaryDirectory() as tmp:
        store = SQLiteStore(Path(tmp) / "p.sqlite")
        try:
            det, _ = _detector(model, store, 1_000_000 - RECORD_OVERHEAD)
            det.write(det.process(batch))
            send_ns = {row[0]: row[3] for row in _stored(store.path)}
        finally:
            store.close()
    expected = {i: rows[j][1][1] for i, j in enumerate(order) if j < len(good)}
    assert {i: send_ns.get(i, "missing") for i in expected} == expected
    _check_every_record_ends_once(model, batch, 1_000_000 - RECORD_OVERHEAD)


@given(raw=st.one_of(st.binary(max_size=2000).map(Value), values(["a", "b"], [(1.0, 2.0)])))
@hypothesis_settings(max_examples=200)
def test_decoding_never_raises_and_accounts_for_every_value(raw):
    batch = decode_flows([_build(raw), b'{"a": 1}'], ["a", "b"])
    assert sorted(batch.rows + [i for i, _ in batch.errors]) == [0, 1]
    assert all(len(reason) < 400 for _, reason in batch.errors)


@given(key=keys, value=st.one_of(st.none(), st.binary(max_size=3000), st.just(Big(b"v", 3 * MB))),
       hdrs=headers(), reason=st.text(max_size=3000), budget=st.integers(minimum_budget(), 50_000))
@hypothesis_settings(max_examples=150)
def test_a_dead_letter_always_fits_its_budget_and_keeps_what_fits(key, value, hdrs, reason, budget):
    (msg,) = _messages([(key, value, hdrs, None)])
    letter = DeadLetterBuilder(budget).build(msg, reason)
    value = msg.value or b""
    names = [n for n, _ in letter.headers]
    assert letter.size() <= budget
    assert names.count(REASON_HEADER) == 1 and names.count(SOURCE_HEADER) == 1 and len(set(names)) == len(names)
    assert dict(letter.headers)[SOURCE_HEADER] == b"flows/0/0"
    assert value.startswith(letter.value)
    truncated = ORIGINAL_SIZE_HEADER in names
    assert truncated == (letter.value != value)
    if truncated:
        assert dict(letter.headers)[ORIGINAL_SIZE_HEADER] == str(len(value)).encode()
        assert dict(letter.headers)[ORIGINAL_SHA256_HEADER] == hashlib.sha256(value).hexdigest().encode()


# --- the Kafka client itself cannot read a record -----------------------------------------------------


class _NotUtf8(str):
    """A header name kafka-python's producer writes as bytes that are not UTF-8 (the broker takes them)."""

    def encode(self, *args, **kwargs):
        return b"\xff\xfe-not-utf8"


@pytest.mark.kafka
def test_a_record_the_kafka_client_cannot_read_is_dead_lettered_and_the_partition_goes_on(
    settings, kafka_bootstrap, read_topic, model, base_rows
):
    """kafka-python raises on a header key that is not UTF-8 and then spins on it forever; the
    detector dead-letters exactly that record by its offset and scores the records after it.
    Records in the same producer batch after such a record cannot be read by this client either:
    they are dead-lettered too, each once, and the partition goes on after the batch."""
    ensure_topics(kafka_bootstrap, {settings.topic: 1})
    admin = kafka.KafkaAdminClient(bootstrap_servers=kafka_bootstrap)  # a DLQ smaller than the largest input
    try:
        admin.create_topics([NewTopic(settings.dlq_topic, 1, 1, topic_configs={"max.message.bytes": "1000000"})])
    finally:
        admin.close()
    good = [encode_flow(model.features, np.array(r)) for r in base_rows[:8]]
    producer = kafka.KafkaProducer(bootstrap_servers=kafka_bootstrap, linger_ms=500)

    def send(key, value, headers=(), flush=True):
        producer.send(settings.topic, key=key.encode(), value=value,
                      headers=[(SEND_TIME_HEADER, str(time.time_ns()).encode()), *headers])
        if flush:
            producer.flush()  # one record batch per record

    try:
        for i in range(3):
            send(f"good-{i}", good[i])  # offsets 0-2
        send("unreadable", good[3], [(_NotUtf8("x"), b"1")])  # offset 3
        for i in range(4, 6):
            send(f"good-{i}", good[i])  # offsets 4-5
        send("huge", b"\x00" * 990_000, [("junk", b"j" * 50_000)])  # offset 6: garbage near Kafka's size limit
        send("unreadable-2", good[6], [(_NotUtf8("x"), b"1")], flush=False)  # offsets 7-8: one batch
        send("same-batch", good[7])
        send("good-9", good[0])  # offset 9
    finally:
        producer.close()
    stats = app.detect(settings.replace(records=10), model, idle_timeout_s=60, progress=False, handle_signals=False)
    assert stats.records == 10 and stats.predicted == 6 and stats.dead_lettered == 4
    with sqlite3.connect(settings.store_url) as db:
        stored = dict(db.execute('SELECT "offset", record_id FROM predictions').fetchall())
    assert stored == {0: "good-0", 1: "good-1", 2: "good-2", 4: "good-4", 5: "good-5", 9: "good-9"}
    dead = {dict(m.headers)[SOURCE_HEADER].decode(): m for m in read_topic(kafka_bootstrap, settings.dlq_topic, 4)}
    assert sorted(dead) == [f"{settings.topic}/0/{o}" for o in (3, 6, 7, 8)]
    reasons = {o: dict(dead[f"{settings.topic}/0/{o}"].headers)[REASON_HEADER].decode() for o in (3, 7, 8)}
    assert all(r.startswith("the Kafka client could not read this record: CorruptRecordError")
               for r in reasons.values())
    assert "batch, which ends at offset 8" in reasons[8]
    assert all(dead[f"{settings.topic}/0/{o}"].key is None for o in (3, 7, 8))  # the client gave nothing but where
    huge = dead[f"{settings.topic}/0/6"]  # too large for the DLQ with its reason: cut, with size and hash
    assert huge.key == b"huge" and dict(huge.headers)["junk"] == b"j" * 50_000
    assert dict(huge.headers)[ORIGINAL_SIZE_HEADER] == b"990000" and 900_000 < len(huge.value) < 990_000
    assert dict(huge.headers)[ORIGINAL_SHA256_HEADER] == hashlib.sha256(b"\x00" * 990_000).hexdigest().encode()


@pytest.mark.kafka
@pytest.mark.timeout(180)
def test_a_poll_stuck_in_the_kafka_client_is_ended_and_the_detector_goes_on(
    settings, kafka_bootstrap, model, base_rows, monkeypatch, caplog
):
    """kafka-python 3's poll hands its fetch to the client's network thread and waits for the answer
    without a timeout; under load that answer once never came, and the detector stalled for good.
    Here the first fetch waits on a future nothing resolves (the same wait, for ever): the watchdog
    ends that poll, a new client takes the partition from its committed offset, and every record is
    stored once."""
    monkeypatch.setattr(kafka_python, "POLL_STALL_S", 1.0)
    stuck = []
    send_fetches = Fetcher.send_fetches

    def first_one_never_returns(fetcher):
        if not stuck:
            stuck.append(fetcher)

            async def never():
                await kafka.future.Future()

            return fetcher._manager.run(never)
        return send_fetches(fetcher)

    monkeypatch.setattr(Fetcher, "send_fetches", first_one_never_returns)
    _send_flows(kafka_bootstrap, settings.topic, model, base_rows[:20])
    with caplog.at_level(logging.WARNING, logger="kstream.clients.kafka_python"):
        stats = app.detect(settings.replace(records=20), model, idle_timeout_s=120, progress=False,
                           handle_signals=False)
    assert stuck, "the stuck fetch never happened: the test proves nothing"
    assert any("has not returned from poll" in r.getMessage() for r in caplog.records)
    assert stats.records == 20 and stats.predicted == 20
    with sqlite3.connect(settings.store_url) as db:
        stored = sorted(db.execute('SELECT "offset" FROM predictions').fetchall())
    assert stored == [(o,) for o in range(20)]


@pytest.mark.kafka
@pytest.mark.timeout(180)
def test_an_offsets_check_stuck_in_the_kafka_client_is_ended_and_never_taken_for_idleness(
    settings, kafka_bootstrap, model, base_rows, monkeypatch, caplog, stored_rows
):
    """kafka-python 3 answers every call on its network thread, and a caller waits for that answer without a
    timeout. A CI run saw a detector's client stop answering as it joined its group: its read-ahead waited
    inside the check "have I read everything?", the idle clock ran on, and the detector stopped at its idle
    timeout having read nothing. Here the second such check after every record is stored waits for ever:
    the waiting is not counted as idleness (the idle timeout, 3 s, is shorter than the wait), the watchdog
    ends the check, a new client joins, and the detector then stops idle with every record stored once."""
    monkeypatch.setattr(kafka_python, "POLL_STALL_S", 5.0)
    monkeypatch.setattr(kafka_python, "CHECK_TIMEOUTS", 0)
    monkeypatch.setattr(kafka_python, "UNOWNED_STALL_S", 2.0)  # a first assignment of nothing is not what this
    monkeypatch.setattr(kafka_python, "UNOWNED_CHECK_S", 0.5)  # test waits for (it cost 30 s in a CI run)
    stuck, done_checks = [], []
    ends = Fetcher.beginning_or_end_offset

    def second_idle_check_never_returns(fetcher, partitions, timestamp, timeout_ms=None):
        if timestamp == OffsetSpec.LATEST and not stuck and stored_rows(settings.store_url, "predictions") == 20:
            if done_checks:
                stuck.append(fetcher)

                async def never():
                    await kafka.future.Future()

                return fetcher._net.run(never)
            done_checks.append(fetcher)
        return ends(fetcher, partitions, timestamp, timeout_ms)

    monkeypatch.setattr(Fetcher, "beginning_or_end_offset", second_idle_check_never_returns)
    _send_flows(kafka_bootstrap, settings.topic, model, base_rows[:20])
    with caplog.at_level(logging.INFO, logger="kstream"):
        stats = app.detect(settings, model, idle_timeout_s=3, progress=False, handle_signals=False)
    assert stuck, "the stuck check never happened: the test proves nothing"
    said = [r.getMessage() for r in caplog.records]
    ended = [i for i, m in enumerate(said) if "has not returned from poll (or an offsets check)" in m]
    idle = [i for i, m in enumerate(said) if m.startswith("no new record for")]
    assert ended and idle and ended[0] < idle[0], said  # stopped idle after the rescue, not during the wait
    assert stats.records == 20 and stats.predicted == 20
    with sqlite3.connect(settings.store_url) as db:
        assert sorted(db.execute('SELECT "offset" FROM predictions').fetchall()) == [(o,) for o in range(20)]


class _WithoutTheTopic:
    """Cluster metadata that lacks every topic, as kafka-python's leader once saw a just-created one."""

    def partitions_for_topic(self, topic):
        return None


def _detect_thirty_waiting(settings, bootstrap, model, base_rows, caplog) -> tuple[list[int], bool]:
    """Send 30 flows to a new one-partition topic and detect them with the detector's kafka-python client:
    the offsets stored, and whether the detector said it joined the group again."""
    _send_flows(bootstrap, settings.topic, model, base_rows[:30])
    with caplog.at_level(logging.WARNING, logger="kstream.clients.kafka_python"):
        stats = app.detect(settings.replace(records=30), model, idle_timeout_s=120, progress=False,
                           handle_signals=False)
    assert stats.records == 30 and stats.predicted == 30
    with sqlite3.connect(settings.store_url) as db:
        stored = sorted(offset for (offset,) in db.execute('SELECT "offset" FROM predictions'))
    return stored, any("no partition assigned here" in r.getMessage() for r in caplog.records)


@pytest.mark.kafka
@pytest.mark.timeout(180)
def test_a_group_that_assigned_nothing_is_joined_again_and_every_record_is_stored(
    settings, kafka_bootstrap, model, base_rows, monkeypatch, caplog
):
    """A fault run here showed kafka-python 3.0.12's group leader assign no partition at all (its metadata
    lacked the just-created topic: "No partition metadata") and never rebalance after: the detector sat
    with nothing assigned for ten minutes while every record waited. Here every assignment the first
    client's group makes comes from metadata without the topic, the same way (kafka-python's own
    rejoins included); the detector sees records wait unread with the group's commits standing still,
    joins again with a new client, and stores every record once."""
    monkeypatch.setattr(kafka_python, "UNOWNED_STALL_S", 2.0)
    monkeypatch.setattr(kafka_python, "UNOWNED_CHECK_S", 0.5)
    original = RangePartitionAssignor.assign.__func__
    calls: list[set[str]] = []

    def blind_for_the_first_client(cls, cluster, members):
        calls.append({m.member_id for m in members})
        return original(cls, _WithoutTheTopic() if calls[-1] <= calls[0] else cluster, members)

    monkeypatch.setattr(RangePartitionAssignor, "assign", classmethod(blind_for_the_first_client))
    stored, rejoined = _detect_thirty_waiting(settings, kafka_bootstrap, model, base_rows, caplog)
    assert any(not members <= calls[0] for members in calls), "no new client joined: the test proves nothing"
    assert rejoined and stored == list(range(30))


@pytest.mark.kafka
@pytest.mark.timeout(180)
def test_a_client_that_never_joins_its_group_is_replaced_and_every_record_is_stored(
    settings, kafka_bootstrap, model, base_rows, monkeypatch, caplog
):
    """A CI run saw a kafka-python detector poll for ten minutes without a partition and without ever
    being told its assignment, 30 records waiting. Here the first client's join never completes (the
    way a lost JoinGroup answer would leave it): the detector sees records wait unread with the group's
    commits standing still, replaces the client, and the new one stores every record once."""
    monkeypatch.setattr(kafka_python, "UNOWNED_STALL_S", 2.0)
    monkeypatch.setattr(kafka_python, "UNOWNED_CHECK_S", 0.5)
    ensure_active_group = ConsumerCoordinator.ensure_active_group
    seen: list[ConsumerCoordinator] = []

    def never_for_the_first(coordinator, *args, **kwargs):
        seen.append(coordinator)
        if coordinator is seen[0]:
            time.sleep(0.1)
            return False  # "timeout in ensure_active_group": kafka-python's poll returns without records
        return ensure_active_group(coordinator, *args, **kwargs)

    monkeypatch.setattr(ConsumerCoordinator, "ensure_active_group", never_for_the_first)
    stored, rejoined = _detect_thirty_waiting(settings, kafka_bootstrap, model, base_rows, caplog)
    assert any(c is not seen[0] for c in seen), "no second client tried to join: the test proves nothing"
    assert rejoined and stored == list(range(30))


@pytest.mark.kafka
@pytest.mark.timeout(120)
def test_a_detector_whose_group_assigned_nothing_stops_at_its_idle_timeout_on_an_empty_topic(
    settings, kafka_bootstrap, model, monkeypatch
):
    """The same broken assignment with no record at all: nothing waits, so nothing prompts a rejoin, and the
    detector counted no idle time without a partition; a CI run of ``kstream detect --idle-timeout 3`` on a
    new topic sat there until killed. Idle time now counts once nothing waits for the group."""
    original = RangePartitionAssignor.assign.__func__
    blind: list[bool] = []

    def blind_assignment(cls, cluster, members):
        blind.append(True)
        return original(cls, _WithoutTheTopic(), members)

    monkeypatch.setattr(RangePartitionAssignor, "assign", classmethod(blind_assignment))
    ensure_topics(kafka_bootstrap, {settings.topic: 1})
    started = time.monotonic()
    stats = app.detect(settings, model, idle_timeout_s=3, progress=False, handle_signals=False)
    assert blind, "the assignment was not made blind: the test proves nothing"
    assert stats.records == 0 and time.monotonic() - started < 60


# --- every bad-input class at once, through the real broker --------------------------------------------


def _bad_inputs(features: list[str], good: bytes) -> list[tuple[str, bytes | None, bytes | None, list, str]]:
    """(class, key, value, headers, where it must end: "stored" or "dead-lettered") for each bad-input class."""
    flow = json.loads(good)
    first = features[0]

    rest = json.dumps({k: v for k, v in flow.items() if k != first})

    def with_first(text: str) -> bytes:  # the good flow with its first feature's value written as ``text``
        return ("{" + json.dumps(first) + ":" + text + "," + rest[1:]).encode()

    deep = b"[" * 1000 + b"]" * 1000
    row = np.array([np.nan if flow.get(f) is None else float(flow[f]) for f in features])
    schema = [(SCHEMA_HEADER, vector_schema(features).encode())]
    with_inf = row.copy()
    with_inf[0] = np.inf
    return [
        ("malformed JSON", b"malformed", good[:-7], [], "dead-lettered"),
        ("a JSON array, not an object", b"array", b"[1, 2, 3]", [], "dead-lettered"),
        ("non-numeric value", b"text", with_first('"abc"'), [], "dead-lettered"),
        ("boolean value", b"boolean", with_first("true"), [], "dead-lettered"),
        ("nested object", b"object", with_first('{"a": {"b": 1}}'), [], "dead-lettered"),
        ("nested array 1,000 deep", b"deep", with_first(deep.decode()), [], "dead-lettered"),
        ("a whole value nested 1,000 deep", b"deep-value", deep, [], "dead-lettered"),
        ("string of 3 MB", b"string", with_first(json.dumps("x" * 3 * MB)), [], "dead-lettered"),
        ("NaN spelled as a JSON literal", b"nan", with_first("NaN"), [], "dead-lettered"),
        ("Infinity spelled as a JSON literal", b"inf", with_first("-Infinity"), [], "dead-lettered"),
        ("empty value (0 bytes)", b"empty", b"", [], "dead-lettered"),
        ("null value (tombstone)", b"tombstone", None, [], "dead-lettered"),
        ("value of 10 MB", b"ten-mb", b"\x00" * 10 * MB, [], "dead-lettered"),
        ("non-UTF-8 header key", b"header-key", good, [(_NotUtf8("x"), b"1")], "dead-lettered"),
        ("integer beyond 2^64", b"int", with_first(str(2**70)), [], "stored"),
        ("float 1e308 (beyond float32)", b"float", with_first("1e308"), [], "stored"),
        ("float beyond float64 (1e400)", b"huge-float", with_first("1e400"), [], "stored"),
        ("duplicate keys", b"duplicate", good[:-1] + f',"{first}":3'.encode() + b"}", [], "stored"),
        ("null feature", b"null", with_first("null"), [], "stored"),
        ("send-time header of 20 digits", b"send-time", good, [(SEND_TIME_HEADER, b"9" * 20)], "stored"),
        ("garbage header values", b"garbage", good, [("junk", bytes(range(256))), ("", b"\xff")], "stored"),
        ("oversized headers (500 KB)", b"big-headers", good, [("big", b"h" * 500_000)], "stored"),
        ("non-UTF-8 key", b"\xff\xfe\x00key", good, [], "stored"),
        ("key of 100 KB", b"k" * 100_000, good, [], "stored"),
        ("vector of another schema", b"vec-schema", encode_vector(row), [(SCHEMA_HEADER, b"f64le-0123456789abcdef")],
         "dead-lettered"),
        ("vector one feature short", b"vec-short", encode_vector(row[:-1]), schema, "dead-lettered"),
        ("vector of all NaN", b"vec-nan", encode_vector(np.full(len(row), np.nan)), schema, "dead-lettered"),
        ("JSON value with a vector schema header", b"vec-json", good, schema, "dead-lettered"),
        ("schema header of 1 MB", b"vec-big-schema", encode_vector(row), [(SCHEMA_HEADER, b"s" * MB)], "dead-lettered"),
        ("vector with an infinity", b"vec-inf", encode_vector(with_inf), schema, "stored"),
    ]


@pytest.mark.kafka
@pytest.mark.parametrize("client", list(BACKENDS))
def test_every_bad_input_class_among_good_flows_ends_stored_or_dead_lettered_once(
    settings, kafka_bootstrap, read_topic, model, base_rows
):
    """1,000 good flows with one record of each bad-input class between them, through the real broker:
    each good flow is stored, each bad record ends where its class must, each exactly once, and the
    counts of this test are the bad-input table of docs/reliability.md."""
    good = [encode_flow(model.features, np.array(base_rows[i % len(base_rows)])) for i in range(1000)]
    bad = _bad_inputs(list(model.features), good[0])
    admin = kafka.KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:  # a flows topic that takes the 10 MB value; the DLQ keeps Kafka's default 1 MB
        admin.create_topics([NewTopic(settings.topic, 1, 1, topic_configs={"max.message.bytes": str(12 * MB)})])
    finally:
        admin.close()
    producer = kafka.KafkaProducer(bootstrap_servers=kafka_bootstrap, max_request_size=12 * MB, linger_ms=0)
    where: dict[int, tuple[str, str]] = {}  # offset -> (class, expected end)
    step = len(good) // len(bad)
    try:
        offset = 0
        for i, value in enumerate(good):
            producer.send(settings.topic, key=f"good-{i}".encode(), value=value,
                          headers=[(SEND_TIME_HEADER, str(time.time_ns()).encode())]).get(30)
            where[offset] = ("good flow", "stored")
            offset += 1
            if i % step == step - 1 and i // step < len(bad):
                name, key, value, headers, end = bad[i // step]
                producer.send(settings.topic, key=key, value=value, headers=headers).get(30)  # one batch each
                where[offset] = (name, end)
                offset += 1
    finally:
        producer.close()
    assert sum(1 for name, _ in where.values() if name != "good flow") == len(bad)
    stats = app.detect(settings.replace(records=len(where)), model, idle_timeout_s=60, progress=False,
                       handle_signals=False)
    assert stats.records == len(where)
    with sqlite3.connect(settings.store_url) as db:
        stored = [o for (o,) in db.execute('SELECT "offset" FROM predictions')]
    expected_dead = sum(1 for _, end in where.values() if end == "dead-lettered")
    dead = [int(dict(m.headers)[SOURCE_HEADER].rsplit(b"/", 1)[1]) for m in
            read_topic(kafka_bootstrap, settings.dlq_topic, expected_dead + 1, timeout_s=15)]
    assert len(stored) == len(set(stored)) and len(dead) == len(set(dead)), "a record ended twice"
    assert sorted(stored + dead) == sorted(where), "a record was lost"
    ended = {o: "stored" for o in stored} | {o: "dead-lettered" for o in dead}
    wrong = {where[o][0]: ended[o] for o in where if ended[o] != where[o][1]}
    assert not wrong, wrong
    with sqlite3.connect(settings.store_url) as db:
        latency = dict(db.execute('SELECT "offset", send_ns FROM predictions').fetchall())
    send_time_offset = next(o for o, (name, _) in where.items() if name.startswith("send-time header"))
    assert latency[send_time_offset] is None  # scored, with no latency
    table = [(name, end) for name, end in where.values() if name != "good flow"]
    log.info("bad inputs among %d good flows: %d stored, %d dead-lettered, 0 lost: %s",
             len(good), len(stored), len(dead), table)


@pytest.mark.kafka
def test_hostile_label_records_are_dead_lettered_with_a_reason_and_the_detector_goes_on(
    settings, kafka_bootstrap, read_topic, model
):
    """Among the labels of 300 streamed flows: garbage bytes, a label of 900 KB, a class the model does not name,
    no key, and a label for an id never sent. The first four are dead-lettered with their reason, each once;
    the last waits for its prediction and is counted unknown when its wait ends; every good label is joined."""
    tag = settings.topic.split("-", 1)[1]
    s = settings.replace(labels=True, labels_topic=f"labels-{tag}", prequential_topic=f"preq-{tag}",
                         label_delay="10", label_wait_s=2, prequential_window=100, records=300)
    sent = app.send(s, progress=False)
    assert (sent.records, sent.labels) == (300, 300)
    hostile = [("garbage", b"g1", b"\xfe\xff\x00garbage"), ("huge", b"g2", b"attack" * 150_000),
               ("unknown class", b"g3", b"definitely-not-a-class"), ("no key", None, b"attack"),
               ("never sent", b"never-sent-id", b"benign")]
    producer = kafka.KafkaProducer(bootstrap_servers=kafka_bootstrap, max_request_size=2 * MB)
    try:
        for _, key, value in hostile:
            producer.send(s.labels_topic, key=key, value=value).get(30)
    finally:
        producer.close()
    stats = app.detect(s.replace(records=0), model, idle_timeout_s=6, progress=False, handle_signals=False)
    assert stats.records == 300 + 300 + len(hostile) and stats.predicted == 300
    counts = stats.labels
    assert (counts["accepted"], counts["joined"], counts["dead_lettered"], counts["unknown"]) == (301, 300, 4, 1)
    dead = read_topic(kafka_bootstrap, s.dlq_topic, 4)
    reasons = {m.key: dict(m.headers)[REASON_HEADER].decode() for m in dead}
    assert len(dead) == 4 and all(dict(m.headers)[SOURCE_HEADER].decode().startswith(s.labels_topic) for m in dead)
    assert reasons[b"g1"].startswith("label value is not UTF-8 text")
    assert reasons[b"g2"] == "label value is 900000 bytes, more than the 256 a label may have"
    assert reasons[b"g3"].startswith("label 'definitely-not-a-class' is not a class the model names")
    assert reasons[None].startswith("label has no key")
    with sqlite3.connect(s.store_url) as db:
        joined = db.execute('SELECT COUNT(*) FROM labels WHERE "window" IS NOT NULL').fetchone()[0]
        waiting = db.execute('SELECT record_id FROM labels WHERE "window" IS NULL').fetchall()
        windows = db.execute("SELECT SUM(records) FROM prequential").fetchone()[0]
    assert joined == windows == 300 and waiting == [("never-sent-id",)]
