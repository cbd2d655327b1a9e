"""The drift reference: PSI, quantile bins, JSON round trips, bad references."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from kstream.drift.monitor import DriftMonitor
from kstream.drift.reference import EPS, FeatureReference, psi
from kstream.errors import ConfigError, DataError, ModelError

# --- PSI ------------------------------------------------------------------------------------


def test_psi_of_identical_distributions_is_zero():
    assert psi([0.2, 0.3, 0.5], [0.2, 0.3, 0.5]) == 0.0
    assert psi([20, 30, 50], [2, 3, 5]) == pytest.approx(0.0)  # counts are normalised


def test_psi_hand_computed():
    # (0.25 - 0.5) ln(0.25 / 0.5) + (0.75 - 0.5) ln(0.75 / 0.5)
    assert psi([0.5, 0.5], [0.25, 0.75]) == pytest.approx(0.25 * math.log(2) + 0.25 * math.log(1.5))
    # three bins, counts: reference 40/40/20 of 100, live 10/30/60 of 100
    expected = (0.1 - 0.4) * math.log(0.1 / 0.4) + (0.3 - 0.4) * math.log(0.3 / 0.4) + (0.6 - 0.2) * math.log(3)
    assert psi([40, 40, 20], [10, 30, 60]) == pytest.approx(expected)


def test_psi_is_symmetric_and_vectorised_over_rows():
    ref = np.array([[0.1, 0.9], [0.5, 0.5]])
    live = np.array([[0.3, 0.7], [0.5, 0.5]])
    both = psi(ref, live)
    assert both.shape == (2,) and both[1] == 0.0
    assert both[0] == pytest.approx(psi(live[0], ref[0])) == pytest.approx(psi(ref[0], live[0]))


def test_psi_empty_bin_uses_eps():
    # the reference never saw bin 3; the live window puts 10% there
    expected = (0.4 - 0.5) * math.log(0.4 / 0.5) + (0.1 - EPS) * math.log(0.1 / EPS)
    assert psi([0.5, 0.5, 0.0], [0.5, 0.4, 0.1]) == pytest.approx(expected)
    assert psi([0.5, 0.5, 0.0], [0.5, 0.4, 0.1], eps=1e-3) < psi([0.5, 0.5, 0.0], [0.5, 0.4, 0.1])
    assert math.isfinite(psi([1.0, 0.0], [0.0, 1.0]))


def test_psi_refuses_bins_of_different_shapes():
    with pytest.raises(DataError, match="one shape"):
        psi([0.5, 0.5], [0.2, 0.3, 0.5])


# --- FeatureReference -----------------------------------------------------------------------


def test_reference_keeps_heavy_ties_in_one_bin():
    rng = np.random.default_rng(0)
    col = np.where(rng.random(10_000) < 0.9, 0.0, rng.integers(1, 1000, 10_000).astype(float))
    ref = FeatureReference.fit(col.reshape(-1, 1), ["fwd_urg"], bins=10)
    props = ref.proportions[0]
    assert len(props) == len(ref.edges[0]) + 2 and sum(props) == pytest.approx(1.0)
    assert props[1] == pytest.approx(np.mean(col == 0))  # every zero in the bin right after "below min"
    assert ref.edges[0][1] > 0 and props[0] == 0.0 and props[-2] == 0.0 and props[-1] == 0.0


def test_reference_cuts_between_observed_values():
    counts = np.tile(np.arange(0.0, 20.0), 50).reshape(-1, 1)  # integer counters
    ref = FeatureReference.fit(counts, ["packets"], bins=5)
    inner = ref.edges[0][1:-1]
    assert all(e % 1 == 0.5 for e in inner)  # halfway between two integers
    jittered = counts + np.random.default_rng(1).uniform(-0.3, 0.3, counts.shape)
    window = DriftMonitor(ref, window_records=len(counts)).update(np.clip(jittered, 0, 19))[0]
    assert window.max_psi < 0.01  # jitter under half a gap moves nothing across a cut


def test_reference_handles_missing_constant_and_empty_columns():
    x = np.array([[1.0, 5.0, np.nan], [np.inf, 5.0, np.nan], [3.0, 5.0, -np.inf], [np.nan, 5.0, np.nan]])
    ref = FeatureReference.fit(x, ["a", "const", "empty"], bins=2)
    assert ref.proportions[0][-1] == pytest.approx(0.5)  # NaN and +inf count as missing
    assert len(ref.edges[1]) == 2 and ref.proportions[1] == [0.0, 1.0, 0.0, 0.0]  # below, =5, above, missing
    assert ref.edges[2] == [] and ref.proportions[2] == [0.0, 1.0]
    monitor = DriftMonitor(ref, window_records=4, min_records=4)
    same = monitor.update(x)[0]
    assert same.max_psi == 0.0 and not same.drifted
    moved = monitor.update(np.column_stack([x[:, 0], np.full(4, 6.0), x[:, 2]]))[0]
    assert moved.drifting == ["const"] and moved.psi_top["const"] > 1  # a constant that moves is drift


def test_reference_round_trips_through_json():
    rng = np.random.default_rng(2)
    ref = FeatureReference.fit(
        rng.lognormal(size=(1000, 3)), ["a", "b", "c"], scores=rng.uniform(0.5, 1, 1000),
        labels=rng.choice(["benign", "attack"], 1000),
    )  # fmt: skip
    back = FeatureReference.from_dict(json.loads(json.dumps(ref.to_dict())))
    assert back == ref
    assert 0.4 < back.attack_rate < 0.6 and 0.7 < back.score_mean < 0.8
    x = rng.lognormal(0.3, size=(300, 3))
    assert back.feature_psi(x) == ref.feature_psi(x) and min(ref.feature_psi(x).values()) > 0.05


@pytest.mark.parametrize(
    "broken",
    [
        {},
        {"kind": "something else"},
        {"drop": "features"},
        {"swap": "proportions"},
    ],
)
def test_malformed_reference_is_a_model_error(broken):
    data = FeatureReference.fit(np.arange(100.0).reshape(-1, 1), ["x"]).to_dict()
    if not broken:
        data = {}
    elif "kind" in broken:
        data["kind"] = broken["kind"]
    elif "drop" in broken:
        del data["features"]
    else:
        data["features"][0]["proportions"] = data["features"][0]["proportions"][:-1]
    with pytest.raises(ModelError, match="retrain"):
        FeatureReference.from_dict(data)


def test_reference_input_errors():
    with pytest.raises(DataError, match="2 feature columns"):
        FeatureReference.fit(np.zeros((5, 3)), ["a", "b"])
    with pytest.raises(DataError, match="0 rows"):
        FeatureReference.fit(np.zeros((0, 2)), ["a", "b"])
    with pytest.raises(ConfigError, match="bins"):
        FeatureReference.fit(np.zeros((5, 1)), ["a"], bins=1)

