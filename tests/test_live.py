"""The live view's data: states read from a real store, the adaptive read interval, status lines."""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd
import pytest

from kstream.analysis.watch import BatchTally, LiveState, StoreWatch
from kstream.drift.monitor import WindowResult, window_row
from kstream.stores.sqlite import SQLiteStore


def _rows(start, n, topic="flows.t", label="attack"):
    return [dict(record_id=f"r{i}", predicted_label=label, score=0.9, model_id="m", send_ns=i * 10**6,
                 predicted_ns=i * 10**6 + 5 * 10**6, topic=topic, topic_id="t", partition=0, offset=i)
            for i in range(start, start + n)]


def test_a_watch_reads_what_the_detectors_stored_for_its_topic_only(tmp_path):
    with SQLiteStore(tmp_path / "p.sqlite") as store:
        store.write(_rows(0, 30) + _rows(0, 7, topic="another.run"))
        watch = StoreWatch(store, "flows.t", dead_letters=lambda: 2, sent=lambda: 40, drift=True, every_s=60)
        state = watch.poll()
        assert len(state.predictions) == 30 and state.dead_lettered == 2 and state.sent == 40
        assert state.windows is not None and state.windows.empty
        assert watch.poll() is None  # not due for another minute
        w = WindowResult(0, 0, 10**9, 30, {}, [], 0.0, 0.0, 1.0, 0.9, None, {}, False, False, [])
        store.write_windows([window_row(w, "m1", "flows.t", "m", ["attack_rate > 0.5"])])
        store.write(_rows(30, 10))
        state = watch.poll(force=True)
        assert len(state.predictions) == 40 and len(state.windows) == 1 and state.alerts == 1
        assert "40 predicted" in state.status_line() and "drift 0/1 windows, 1 alert" in state.status_line()


def test_a_slow_view_is_read_less_often(tmp_path):
    now = [0.0]
    with SQLiteStore(tmp_path / "p.sqlite") as store:
        watch = StoreWatch(store, "flows.t", every_s=1.0, clock=lambda: now[0])
        assert watch.poll() is not None
        now[0] = 1.0
        assert watch.poll() is not None  # a second later: due
        watch.done(0.5)  # reading and drawing took half a second: the next read waits 2.5 s
        now[0] = 3.0
        assert watch.poll() is None and watch.reads == 2
        now[0] = 3.5
        assert watch.poll() is not None and watch.poll(force=True) is not None and watch.reads == 4


def test_state_status_line_counts_recent_records_per_second():
    times = [0] * 10 + [6 * 10**9] * 10 + [10 * 10**9] * 10  # the last 5 s hold 20 records
    frame = pd.DataFrame({"predicted_label": ["benign"] * 30, "latency_ms": [1.0] * 30, "predicted_ns": times})
    assert LiveState(frame).status_line().startswith("30 predicted | 4 rec/s | p99 1.0 ms | benign 30 |")


def test_batch_tally_counts_classes_latency_and_the_detector_totals():
    now = [0.0]
    tally = BatchTally(keep=3, clock=lambda: now[0])
    for second, label in enumerate(["attack", "benign", "attack"]):
        now[0] = float(second)
        tally.add(SimpleNamespace(predictions=_rows(second * 10, 10, label=label)),
                  SimpleNamespace(dead_lettered=second, windows=second, drifted=0, alerts=0))
    assert tally.records == 30 and tally.classes == {"attack": 20, "benign": 10}
    assert len(tally.latency_ms) == 3  # only the last `keep` latencies are kept
    assert tally.status_line() == ("30 predicted | 15 rec/s | p99 5.0 ms | attack 20, benign 10 | 2 dead-lettered"
                                   " | drift 0/2 windows, 0 alerts")
    assert BatchTally().status_line().startswith("0 predicted | 0 rec/s | p99 - | no classes yet")


@pytest.mark.parametrize("windows", [None, 0])
def test_a_run_without_drift_says_nothing_of_drift(windows):
    frame = pd.DataFrame({"predicted_label": [], "latency_ms": [], "predicted_ns": []})
    assert "drift" not in LiveState(frame).status_line()
