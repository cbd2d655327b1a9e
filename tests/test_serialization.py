import json
import math

import numpy as np

from kstream.serialization import decode_flows, encode_flow

FEATURES = ["a", "b", "c", "d"]


def test_round_trip_keeps_values_and_maps_non_finite_to_nan():
    row = np.array([1.0, 2.5e-7, np.inf, np.nan])
    value = encode_flow(FEATURES, row)
    assert json.loads(value) == {"a": 1.0, "b": 2.5e-7, "c": None, "d": None}
    batch = decode_flows([value], FEATURES)
    assert batch.matrix[0, :2].tolist() == [1.0, 2.5e-7] and math.isnan(batch.matrix[0, 2])


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
    assert reasons[4] == "non-numeric value for feature 'a': True"
    assert reasons[6] == "4 of 4 model features missing"
    assert "empty" in reasons[7]
    assert batch.missing == [0, 2]


def test_empty_batch_gives_an_empty_matrix_of_the_right_width():
    assert decode_flows([], FEATURES).matrix.shape == (0, 4)
