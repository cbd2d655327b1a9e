"""The Page-Hinkley change detector on synthetic streams: quiet on noise, quick on steps."""

from __future__ import annotations

import math

import numpy as np
import pytest

from kstream.drift.pagehinkley import PageHinkley
from kstream.errors import ConfigError

# --- Page-Hinkley ---------------------------------------------------------------------------


def test_page_hinkley_is_quiet_on_stationary_noise():
    alarms = 0
    for seed in range(20):
        ph, rng = PageHinkley(), np.random.default_rng(seed)
        alarms += sum(ph.update(v) is not None for v in rng.normal(0.0, 1.0, 1000))
    assert alarms <= 2  # exp(-2 * 0.5 * 10 / 1) ~ 5e-5 per excursion; measured 0 in these 20,000


@pytest.mark.parametrize("step, direction, within", [(4.5, "up", 6), (-4.5, "down", 6), (9, "up", 1), (-9, "down", 1)])
def test_page_hinkley_catches_a_step(step, direction, within):
    delays = []
    for seed in range(10):
        ph, rng = PageHinkley(), np.random.default_rng(seed)
        before = [ph.update(v) for v in rng.normal(0.0, 0.6, 30)]
        after = [ph.update(v) for v in rng.normal(step, 0.6, 20)]
        assert not any(before)
        delays.append(next(i for i, d in enumerate(after) if d))
        assert after[delays[-1]] == direction
    assert max(delays) <= within  # a bigger step is seen sooner


def test_page_hinkley_works_in_units_of_scale():
    values = np.random.default_rng(7).normal(0.9, 0.02, 60)
    values[30:] -= 0.1
    ph_raw, ph_scaled = PageHinkley(delta=0.01, threshold=0.2), PageHinkley(delta=0.5, threshold=10)
    raw = [ph_raw.update(v) for v in values]
    scaled = [ph_scaled.update(v, scale=0.02) for v in values]  # the same test, 50 times finer units
    assert raw == scaled and "down" in raw and raw.index("down") >= 30


def test_page_hinkley_waits_for_min_samples_and_skips_missing_values():
    ph = PageHinkley(min_samples=4)
    assert [ph.update(v) for v in [0.0, 1.0, math.nan, None, 1.0]] == [None] * 5
    assert ph.update(1.0, scale=0) is None and ph.n == 3
    with pytest.raises(ConfigError):
        PageHinkley(threshold=0)

