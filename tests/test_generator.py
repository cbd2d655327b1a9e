import pytest

from kstream.errors import ConfigError
from kstream.generator import pace


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
