import numpy as np
import pytest

from kstream.errors import ConfigError
from kstream.generator import generate, pace
from kstream.messages.wire import SCHEMA_HEADER, decode_flows, vector_schema
from kstream.settings import Settings


class FakeClock:
    def __init__(self):
        self.now = 0.0
        self.slept = 0.0

    def __call__(self):
        return self.now

    def sleep(self, s):
        self.slept += s
        self.now += s


def test_pace_spreads_items_at_the_rate():
    clock = FakeClock()
    assert list(pace(range(101), 50, clock=clock, sleep=clock.sleep)) == list(range(101))
    assert clock.now == pytest.approx(2.0)


def test_pace_catches_up_after_a_stall_instead_of_slowing_down():
    clock = FakeClock()
    out = []
    for i in pace(range(10), 10, clock=clock, sleep=clock.sleep):
        out.append(i)
        if i == 2:
            clock.now += 0.5  # the consumer of the stream stalls
    assert out == list(range(10))
    assert clock.now == pytest.approx(0.9)  # the last item is still due at 9/10 s
    assert clock.slept == pytest.approx(0.4)  # 0.2 before the stall, 0.2 after catching up


def test_unpaced_never_sleeps_and_negative_rate_fails():
    clock = FakeClock()
    assert list(pace(range(5), 0, clock=clock, sleep=clock.sleep)) == [0, 1, 2, 3, 4]
    assert clock.slept == 0
    with pytest.raises(ConfigError, match="rate"):
        list(pace(range(5), -1))


class SentRecords:
    """A plain fake producer: keeps what the generator sends."""

    def __init__(self):
        self.sent = []

    def send(self, topic, value, key=None, headers=None):
        self.sent.append((topic, value, key, dict(headers or {})))

    def flush(self, deadline_s=300):
        pass


def test_vectors_hold_the_receiving_models_features_in_its_order_and_decode_back(cicids):
    data = cicids.take(np.arange(5))
    order = [data.feature_names[3], data.feature_names[0], "not a column"]  # a model's own order, one feature missing
    producer = SentRecords()
    generate(data, producer, "flows", progress=False, value_format="vector", features=order)
    values = [value for _, value, _, _ in producer.sent]
    schemas = [headers[SCHEMA_HEADER] for _, _, _, headers in producer.sent]
    assert set(schemas) == {vector_schema(order).encode()} and {len(v) for v in values} == {8 * 3}
    decoded = decode_flows(values, order, max_missing=0.5, schemas=schemas)
    expected = data.features.reindex(columns=order).to_numpy(dtype=float)
    np.testing.assert_array_equal(decoded.matrix, np.where(np.isinf(expected), np.nan, expected))
    assert [key for _, _, key, _ in producer.sent] == [i.encode() for i in data.ids]


def test_json_stays_the_default_and_an_unknown_value_format_fails_at_start(cicids):
    producer = SentRecords()
    generate(cicids.take(np.arange(2)), producer, "flows", progress=False)
    assert all(value.startswith(b"{") and SCHEMA_HEADER not in headers for _, value, _, headers in producer.sent)
    with pytest.raises(ConfigError, match="unknown value format 'avro'; choose one of: json, vector"):
        generate(cicids, producer, "flows", progress=False, value_format="avro")
    with pytest.raises(ConfigError, match="unknown value format 'avro'"):
        Settings.resolve({}, env={"KSTREAM_VALUE_FORMAT": "avro"})
