import hashlib
import json
import math

import numpy as np
import pytest

from kstream.messages.wire import decode_flows, encode_flow, encode_vector, record_id, send_time, vector_schema

FEATURES = ["a", "b", "c", "d"]


def test_round_trip_keeps_values_and_maps_non_finite_to_nan():
    row = np.array([1.0, 2.5e-7, np.inf, np.nan])
    value = encode_flow(FEATURES, row)
    assert json.loads(value) == {"a": 1.0, "b": 2.5e-7, "c": None, "d": None}
    batch = decode_flows([value], FEATURES)
    assert batch.matrix[0, :2].tolist() == [1.0, 2.5e-7] and math.isnan(batch.matrix[0, 2])


def test_a_vector_decodes_to_what_the_same_row_as_json_decodes_to():
    rows = np.array([[1.0, 2.5e-7, np.inf, np.nan], [-0.0, 1e308, 3.0, -np.inf], [7.0, 8.0, 9.0, 10.0]])
    schema = vector_schema(FEATURES).encode()
    as_json = decode_flows([encode_flow(FEATURES, r) for r in rows], FEATURES)
    as_vectors = decode_flows([encode_vector(r) for r in rows], FEATURES, schemas=[schema] * 3)
    np.testing.assert_array_equal(as_vectors.matrix, as_json.matrix)  # infinities are missing in both
    assert as_vectors.rows == as_json.rows == [0, 1, 2] and as_vectors.missing == as_json.missing == [2, 1, 0]
    assert vector_schema(FEATURES) != vector_schema(FEATURES[::-1])  # the order is part of the schema


def test_a_poll_of_json_and_vectors_keeps_each_row_with_its_record():
    schema = vector_schema(FEATURES).encode()
    values = [encode_vector(np.array([1.0, 1, 1, 1])), b'{"a": 2}', encode_vector(np.array([3.0, 3, 3, np.nan])),
              encode_vector(np.full(4, np.nan)), encode_vector(np.array([5.0, 5, 5])), b"junk"]
    schemas = [schema, None, schema.decode(), schema, schema, None]  # a header read as text is the same schema
    batch = decode_flows(values, FEATURES, max_missing=0.5, schemas=schemas)
    assert {r: batch.matrix[i, 0] for i, r in enumerate(batch.rows)} == {0: 1.0, 2: 3.0}
    reasons = dict(batch.errors)
    assert sorted(reasons) == [1, 3, 4, 5]
    assert reasons[1] == "3 of 4 model features missing" and reasons[3] == "4 of 4 model features missing"
    assert reasons[4] == f"vector value is 24 bytes; schema {schema.decode()} takes 32 (4 float64)"


def test_a_vector_of_another_schema_is_refused_with_both_schemas_named():
    other = vector_schema(["a", "b", "c", "e"]).encode()
    batch = decode_flows([encode_vector(np.ones(4)), encode_vector(np.ones(4))], FEATURES,
                         schemas=[other, b"\xff" * 100_000])
    assert batch.rows == [] and batch.matrix.shape == (0, 4)
    first, second = (reason for _, reason in batch.errors)
    assert other.decode() in first and vector_schema(FEATURES) in first and "send JSON" in first
    assert len(second) < 400 and "100000 bytes" in second  # a huge header is described, not quoted


def test_matrix_follows_the_requested_feature_order_and_ignores_extras():
    batch = decode_flows([b'{"d": 4, "a": 1, "zz": 9}'], ["d", "c", "a"])
    assert batch.matrix.shape == (1, 3)
    assert batch.matrix[0, 0] == 4 and math.isnan(batch.matrix[0, 1]) and batch.matrix[0, 2] == 1
    assert batch.missing == [1]


def test_bad_rows_are_reported_with_reasons_and_good_rows_kept():
    values = [
        b'{"a": 1, "b": 2, "c": 3, "d": 4}',
        b'{"a": 1, "b": ',
        b'[1, 2, 3]',
        b'{"a": "high", "b": 2}',
        b'{"a": true}',
        b'{"a": 1, "b": 2}',  # half the features: imputed, not rejected
        b'{"x": 1}',
        None,
    ]
    batch = decode_flows(values, FEATURES)
    assert batch.rows == [0, 5]
    reasons = dict(batch.errors)
    assert reasons[1].startswith("value is not valid JSON")
    assert "not an object" in reasons[2]
    assert reasons[3] == "non-numeric value for feature 'a': 'high'"
    assert reasons[4] == "non-numeric value for feature 'a': true"
    assert reasons[6] == "4 of 4 model features missing"
    assert "empty" in reasons[7]
    assert batch.missing == [0, 2]


def test_empty_batch_gives_an_empty_matrix_of_the_right_width():
    assert decode_flows([], FEATURES).matrix.shape == (0, 4)


# --- hostile values --------------------------------------------------------------------------------


def _reason(value, features=FEATURES):
    batch = decode_flows([value], features)
    assert batch.rows == [] and len(batch.errors) == 1
    return batch.errors[0][1]


def test_numbers_beyond_orjson_are_read_by_the_json_module_for_that_record_only():
    values = [
        b'{"a": 1e400, "b": -1e400, "c": 1, "d": 2}',  # beyond float64: missing, like inf
        b'{"a": 123456789012345678901234567890, "b": 1, "c": 2, "d": 3}',  # beyond 64 bits: a float
        b'{"a": ' + b"9" * 5000 + b', "b": 1e400, "c": 1, "d": 1}',  # more digits than int() takes
        b'{"a": 1e400, "a": 5, "b": 1, "c": 1, "d": 1}',  # duplicate keys: the last one, as orjson does
        b'{"a": 5, "a": 6, "b": 1, "c": 1, "d": 1}',
    ]
    batch = decode_flows(values, FEATURES)
    assert batch.rows == [0, 1, 2, 3, 4] and batch.errors == []
    assert batch.missing == [2, 0, 2, 0, 0]
    assert math.isnan(batch.matrix[0, 0]) and math.isnan(batch.matrix[2, 0])
    assert batch.matrix[1, 0] == 1.2345678901234568e29
    assert batch.matrix[3, 0] == 5 and batch.matrix[4, 0] == 6


def test_nan_and_infinity_spellings_are_not_json_numbers():
    for spelling in (b"NaN", b"Infinity", b"-Infinity", b"nan", b"inf", b"1e400 NaN"):
        reason = _reason(b'{"a": 1e400, "b": ' + spelling + b"}")
        assert reason.startswith("value is not valid JSON"), reason


@pytest.mark.parametrize(
    "value, reason",
    [
        (b"", "value is empty (0 bytes)"),
        (None, "value is empty (null message)"),
        (b'"x"', "value is a JSON string, not an object of feature -> number"),
        (b"null", "value is JSON null, not an object of feature -> number"),
        (b"[1, 2]", "value is a JSON array, not an object of feature -> number"),
        (b"1e400", "value is a JSON number, not an object of feature -> number"),
        (b'{"a": 1', "value is not valid JSON: unexpected end of data at char 7"),
        (b"\xff\xfe{}", "value is not valid JSON: str is not valid UTF-8: surrogates not allowed at char 0"),
        (b'{"a": {"b": 1}}', "non-numeric value for feature 'a': a JSON object of 1 key"),
        (b'{"a": false}', "non-numeric value for feature 'a': false"),
        (12, "value is of type int, not bytes"),
    ],
)
def test_every_bad_value_gets_its_reason(value, reason):
    assert _reason(value) == reason


def test_deep_and_huge_feature_values_get_short_reasons():
    deep = b'{"a": ' + b"[" * 1000 + b"]" * 1000 + b"}"  # within orjson's depth limit, beyond repr()'s
    assert _reason(deep) == "non-numeric value for feature 'a': a JSON array of 1 item"
    assert _reason(b"[" * 100_000).startswith("value is not valid JSON: ")
    huge = _reason(b'{"a": "' + b"z" * 600_000 + b'"}')
    assert len(huge) < 120 and huge.endswith("(600000 characters)")


@pytest.mark.parametrize(
    "raw, expected",
    [
        (b"1700000000000000000", 1700000000000000000),
        (b"0", 0),
        (b"9223372036854775807", 2**63 - 1),
        (b"9223372036854775808", None),  # 2**63: beyond SQLite's INTEGER
        (b"1" * 20, None),
        (b"1" * 5000, None),
        (b"-1", None),
        (b"+1", None),
        (b" 1", None),
        (b"1_000", None),
        (b"0x10", None),
        ("\u0661\u0662".encode(), None),  # Arabic-Indic digits: int() would take them
        (b"", None),
        (None, None),
        ("123", None),
    ],
)
def test_send_time_is_parsed_strictly(raw, expected):
    assert send_time(raw) == expected


@pytest.mark.parametrize("key", [b"\xff" * 170, b"\xff" * 171, "\u00e9".encode() * 300, b"k" * 512, b"k" * 513,
                                 b"\xf0\x9f\x98\x80" * 1000, b"\x00" * 2000])
def test_record_ids_are_valid_text_of_at_most_512_bytes_and_keep_distinct_keys_apart(key):
    rid = record_id(key, "flows", 0, 1)
    assert len(rid.encode("utf-8")) <= 512
    assert rid == key.decode("utf-8", "replace") or rid.endswith(hashlib.sha256(key).hexdigest())
    assert record_id(key + b"!", "flows", 0, 1) != rid
    assert record_id(b"", "flows", 3, 9) == record_id(None, "flows", 3, 9) == "flows-3-9"
