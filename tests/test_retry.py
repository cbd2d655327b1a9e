"""kstream.retry: retries and waits until a deadline, on a fake clock (minutes of backoff run at once),
and the SQLite store's retry on a real database that is full and then has room again."""

from __future__ import annotations

import logging
import sqlite3
import threading
from itertools import islice

import pytest

from kstream.errors import StoreError
from kstream.retry import Backoff, Deadline, retry, wait_until
from kstream.stores.sqlite import SQLiteStore


class FakeClock:
    """A monotonic clock that moves only when something sleeps on it (or a call is said to take time)."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class Flaky:
    """A call that raises each of ``errors`` in turn (taking ``takes_s`` of the clock each time), then returns."""

    def __init__(self, clock: FakeClock, errors: list[BaseException], result: str = "done", takes_s: float = 0.0):
        self.clock, self.errors, self.result, self.takes_s = clock, list(errors), result, takes_s
        self.calls: list[float] = []  # the clock at each call

    def __call__(self) -> str:
        self.calls.append(self.clock.now)
        self.clock.now += self.takes_s
        if self.errors:
            raise self.errors.pop(0)
        return self.result


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


# --- retry ----------------------------------------------------------------------------------------


def test_retries_then_returns_the_result(clock):
    call = Flaky(clock, [OSError("busy"), OSError("busy")])
    assert retry(call, retry_on=OSError, deadline=Deadline(60, clock), sleep=clock.sleep) == "done"
    assert len(call.calls) == 3 and clock.sleeps == [0.2, 0.4]


def test_gives_up_at_the_deadline_with_the_last_error_itself(clock):
    errors = [ConnectionError(f"attempt {n}") for n in range(100)]
    call = Flaky(clock, errors, takes_s=1.0)
    with pytest.raises(ConnectionError) as raised:
        retry(call, retry_on=ConnectionError, deadline=Deadline(20, clock), sleep=clock.sleep)
    tried = len(call.calls)
    assert raised.value is errors[tried - 1] and str(raised.value) == f"attempt {tried - 1}"
    # every attempt but the last ended before the deadline; the last ended at or after it
    ends = [at + 1.0 for at in call.calls]
    assert all(end < 1020.0 for end in ends[:-1]) and ends[-1] >= 1020.0
    assert len(clock.sleeps) == tried - 1  # no wait after the last attempt


def test_the_error_raised_at_the_deadline_can_be_named_by_the_caller(clock):
    call = Flaky(clock, [sqlite3.OperationalError("database is locked")] * 50, takes_s=2.0)
    with pytest.raises(StoreError, match="locked") as raised:
        try:
            retry(call, retry_on=sqlite3.OperationalError, deadline=Deadline(10, clock), sleep=clock.sleep)
        except sqlite3.OperationalError as err:
            raise StoreError(f"cannot write: {err}") from err
    assert isinstance(raised.value.__cause__, sqlite3.OperationalError)


def test_an_error_not_listed_passes_straight_through(clock):
    call = Flaky(clock, [ValueError("a bug, not an outage")])
    with pytest.raises(ValueError, match="a bug"):
        retry(call, retry_on=OSError, deadline=Deadline(60, clock), sleep=clock.sleep)
    assert len(call.calls) == 1 and clock.sleeps == []


def test_an_error_retry_if_refuses_passes_straight_through(clock):
    call = Flaky(clock, [PermissionError("not authorized")])
    seen: list[BaseException] = []

    def transient(err: OSError) -> bool:
        seen.append(err)
        return not isinstance(err, PermissionError)

    with pytest.raises(PermissionError):
        retry(call, retry_on=OSError, retry_if=transient, deadline=Deadline(60, clock), sleep=clock.sleep)
    assert len(call.calls) == 1 and clock.sleeps == [] and isinstance(seen[0], PermissionError)
    # the same predicate lets a transient error of the same family be retried
    call = Flaky(clock, [TimeoutError("slow"), PermissionError("not authorized")])
    with pytest.raises(PermissionError):
        retry(call, retry_on=OSError, retry_if=transient, deadline=Deadline(60, clock), sleep=clock.sleep)
    assert len(call.calls) == 2 and clock.sleeps == [0.2]


def test_a_deadline_of_zero_makes_one_attempt(clock):
    call = Flaky(clock, [OSError("down")] * 3)
    with pytest.raises(OSError):
        retry(call, retry_on=OSError, deadline=Deadline(0, clock), sleep=clock.sleep)
    assert len(call.calls) == 1 and clock.sleeps == []


def test_the_backoff_doubles_from_its_first_wait_and_stays_at_its_cap(clock):
    call = Flaky(clock, [OSError("down")] * 9)
    retry(call, retry_on=OSError, deadline=Deadline(300, clock), sleep=clock.sleep)
    assert clock.sleeps == [0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0, 5.0, 5.0]
    clock.sleeps.clear()
    call = Flaky(clock, [OSError("down")] * 5)
    retry(call, retry_on=OSError, deadline=Deadline(300, clock), backoff=Backoff(first=1.0, cap=3.0, factor=3.0),
          sleep=clock.sleep)
    assert clock.sleeps == [1.0, 3.0, 3.0, 3.0, 3.0]
    assert list(islice(Backoff(first=9.0, cap=2.0).delays(), 2)) == [2.0, 2.0]  # never above the cap


def test_a_wait_is_not_cut_at_the_deadline_so_the_last_attempt_comes_after_it(clock):
    # what the stores and clients did before this module: a late attempt may still find the outage over
    call = Flaky(clock, [OSError("down")])
    assert retry(call, retry_on=OSError, deadline=Deadline(0.1, clock), backoff=Backoff(first=5.0),
                 sleep=clock.sleep) == "done"
    assert call.calls == [1000.0, 1005.0]


def test_on_retry_sees_each_failed_attempt_and_its_wait_before_the_wait(clock):
    errors = [OSError("one"), OSError("two"), OSError("three")]
    call = Flaky(clock, list(errors))
    seen: list[tuple[BaseException, float, float]] = []
    retry(call, retry_on=OSError, deadline=Deadline(60, clock), sleep=clock.sleep,
          on_retry=lambda err, wait_s: seen.append((err, wait_s, clock.now)))
    assert [(err, wait_s) for err, wait_s, _ in seen] == [(errors[0], 0.2), (errors[1], 0.4), (errors[2], 0.8)]
    assert [at for _, _, at in seen] == pytest.approx([1000.0, 1000.2, 1000.6])  # each told before its wait


def test_on_retry_is_not_called_for_the_error_that_ends_the_retries(clock):
    call = Flaky(clock, [OSError(f"down {n}") for n in range(10)], takes_s=1.0)
    seen: list[BaseException] = []
    with pytest.raises(OSError) as raised:
        retry(call, retry_on=OSError, deadline=Deadline(3, clock), sleep=clock.sleep,
              on_retry=lambda err, wait_s: seen.append(err))
    assert all(err is not raised.value for err in seen) and len(seen) == len(call.calls) - 1


def test_a_backoff_function_chooses_the_wait_per_failure_and_zero_tries_again_at_once(clock):
    class Pending(Exception):
        def __init__(self, resend: bool) -> None:
            super().__init__(resend)
            self.resend = resend

    delays = Backoff().delays()
    call = Flaky(clock, [Pending(False), Pending(True), Pending(False), Pending(True)])
    waits: list[float] = []
    retry(call, retry_on=Pending, deadline=Deadline(60, clock), sleep=clock.sleep,
          backoff=lambda err: next(delays) if err.resend else 0.0, on_retry=lambda err, wait_s: waits.append(wait_s))
    assert waits == [0.0, 0.2, 0.0, 0.4]
    assert clock.sleeps == [0.2, 0.4]  # a wait of 0 does not sleep at all


def test_seconds_are_a_deadline_from_now_on_the_monotonic_clock():
    sleeps: list[float] = []
    call = Flaky(FakeClock(), [OSError("busy")])
    assert retry(call, retry_on=OSError, deadline=60, sleep=sleeps.append) == "done"
    assert sleeps == [0.2]


def test_keyboard_interrupt_is_never_retried(clock):
    call = Flaky(clock, [KeyboardInterrupt()])
    with pytest.raises(KeyboardInterrupt):
        retry(call, retry_on=Exception, deadline=Deadline(60, clock), sleep=clock.sleep)
    assert len(call.calls) == 1


# --- Deadline -------------------------------------------------------------------------------------


def test_a_deadline_counts_down_and_bounds_timeouts(clock):
    deadline = Deadline(10, clock)
    assert deadline.remaining() == 10 and not deadline.expired
    assert deadline.remaining(cap=0.2) == 0.2 and deadline.remaining(floor=30.0) == 30.0
    clock.now += 9.5
    assert deadline.remaining() == pytest.approx(0.5) and deadline.remaining(floor=1.0, cap=30.0) == 1.0
    clock.now += 0.5
    assert deadline.expired and deadline.remaining() == 0.0
    clock.now += 100
    assert deadline.remaining() == 0.0 and deadline.remaining(floor=0.1) == 0.1  # never negative
    assert "10s" in repr(deadline)


# --- wait_until -----------------------------------------------------------------------------------


def test_wait_until_returns_at_once_when_the_answer_is_yes(clock):
    assert wait_until(lambda: True, Deadline(5, clock), interval=1.0, sleep=clock.sleep) is True
    assert clock.sleeps == []


def test_wait_until_asks_every_interval_until_yes(clock):
    asked: list[float] = []

    def ready() -> bool:
        asked.append(clock.now)
        return clock.now >= 1001.5

    assert wait_until(ready, Deadline(5, clock), interval=0.5, sleep=clock.sleep) is True
    assert asked == [1000.0, 1000.5, 1001.0, 1001.5]


def test_wait_until_says_no_once_the_deadline_has_passed(clock):
    asked: list[float] = []
    assert wait_until(lambda: asked.append(clock.now), Deadline(2, clock), interval=0.5, sleep=clock.sleep) is False
    assert asked == [1000.0, 1000.5, 1001.0, 1001.5, 1002.0]  # asked last at the deadline itself


def test_wait_until_passes_an_error_of_the_question_through(clock):
    def exited() -> bool:
        raise RuntimeError("the server exited with code 1")

    with pytest.raises(RuntimeError, match="exited"):
        wait_until(exited, Deadline(5, clock), interval=0.5, sleep=clock.sleep)
    assert clock.sleeps == []


def test_wait_until_with_interval_zero_never_sleeps(clock):
    answers = iter([False, False, True])

    def poll() -> bool:
        clock.now += 0.2  # a poll that waits by itself
        return next(answers)

    assert wait_until(poll, Deadline(5, clock), interval=0, sleep=clock.sleep) is True
    assert clock.sleeps == []


def test_wait_until_takes_seconds_and_a_truthy_answer():
    assert wait_until(lambda: ["a record"], 1.0, interval=0.01) is True
    assert wait_until(list, 0.05, interval=0.01) is False  # an empty poll


# --- a call site on real SQLite: a full store is retried until it has room, or until the deadline ----


def _rows(n: int) -> list[dict]:
    return [{"record_id": "x" * 500, "predicted_label": "attack", "score": 0.9, "model_id": "m", "send_ns": 1,
             "predicted_ns": 2, "topic": "flows", "topic_id": "a1", "partition": 0, "offset": i} for i in range(n)]


def _limit_pages(store: SQLiteStore, pages: int | None) -> None:
    """SQLite's own size limit for this connection: past it a write fails as on a full disk."""
    with store._lock:
        if pages is None:
            pages = int(store._db.execute("PRAGMA page_count").fetchone()[0])
        store._db.execute(f"PRAGMA max_page_count={pages}")


def test_a_full_sqlite_store_is_retried_until_it_has_room(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="kstream")
    with SQLiteStore(tmp_path / "p.sqlite", deadline_s=60) as store:
        _limit_pages(store, None)
        room = threading.Timer(1.0, _limit_pages, args=(store, 1_000_000))
        room.start()
        try:
            store.write(_rows(200))
        finally:
            room.cancel()
        assert store.count() == 200
    retries = [r.getMessage() for r in caplog.records if "not writable" in r.getMessage()]
    assert retries and all("database or disk is full" in m for m in retries)
    assert "retrying in 0.2s" in retries[0]


def test_a_full_sqlite_store_fails_at_the_deadline_in_one_line_and_writes_nothing(tmp_path):
    with SQLiteStore(tmp_path / "p.sqlite", deadline_s=1) as store:
        _limit_pages(store, None)
        with pytest.raises(StoreError, match=r"for 1s \(database or disk is full\); nothing was committed") as raised:
            store.write(_rows(200))
        assert isinstance(raised.value.__cause__, sqlite3.OperationalError)
        assert store.count() == 0
