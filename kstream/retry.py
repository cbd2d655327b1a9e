"""Retry until a deadline: :class:`Deadline`, :class:`Backoff`, :func:`retry` and :func:`wait_until`.

Every loop in kstream that waits on something outside it (a store another connection locks, a
Kafka cluster that does not answer, a server that is still starting) is built from these:

- :class:`Deadline`: a moment on the monotonic clock; what is left of it bounds each wait.
- :class:`Backoff`: the waits between attempts, growing from ``first`` by ``factor`` up to ``cap``.
- :func:`retry`: call until it returns; the errors it lists are tried again after a wait while
  the deadline has not passed, then the last one is raised for the caller to name. Any other
  error passes straight through at once.
- :func:`wait_until`: ask a question every ``interval`` until it says yes or the deadline passes.

A store that is locked for a moment:

>>> import sqlite3
>>> answers = iter([sqlite3.OperationalError("database is locked"), "written"])
>>> def write():
...     answer = next(answers)
...     if isinstance(answer, Exception):
...         raise answer
...     return answer
>>> retry(write, retry_on=sqlite3.OperationalError, deadline=60, backoff=Backoff(first=0.01),
...       on_retry=lambda err, wait_s: print(f"{err}; retrying in {wait_s:.2f}s"))
database is locked; retrying in 0.01s
'written'

The clock and the sleep can be given, so a test runs through minutes of waiting at once
(tests/test_retry.py does).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

__all__ = ["Backoff", "Deadline", "retry", "wait_until"]

T = TypeVar("T")
E = TypeVar("E", bound=BaseException)

Clock = Callable[[], float]
Sleep = Callable[[float], None]


class Deadline:
    """The moment ``seconds`` from now on ``clock`` (monotonic seconds: wall-clock jumps do not move it).

    >>> now = [100.0]
    >>> deadline = Deadline(30, clock=lambda: now[0])
    >>> deadline.remaining(), deadline.expired
    (30.0, False)
    >>> now[0] = 125.0; deadline.remaining(cap=2.0), deadline.remaining()
    (2.0, 5.0)
    >>> now[0] = 130.0; deadline.expired, deadline.remaining(), deadline.remaining(floor=1.0)
    (True, 0.0, 1.0)
    """

    def __init__(self, seconds: float, clock: Clock = time.monotonic) -> None:
        self.seconds = seconds
        self.clock = clock
        self.at = clock() + seconds

    def remaining(self, floor: float = 0.0, cap: float = math.inf) -> float:
        """Seconds left, raised to ``floor`` and cut to ``cap``: the timeout of one wait within the deadline.

        A ``floor`` above 0 gives a call that must not be asked to finish at once (a flush, a
        commit) at least that long, even once the deadline has passed.
        """
        return min(cap, max(floor, self.at - self.clock()))

    @property
    def expired(self) -> bool:
        """True once the clock has reached the deadline."""
        return self.clock() >= self.at

    def __repr__(self) -> str:
        return f"Deadline({self.seconds:g}s, {self.at - self.clock():.1f}s left)"


@dataclass(frozen=True)
class Backoff:
    """Waits between attempts: ``first`` seconds, then ``factor`` times longer each time, never above ``cap``.

    >>> from itertools import islice
    >>> list(islice(Backoff().delays(), 7))
    [0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0]
    >>> list(islice(Backoff(first=0.5, factor=1).delays(), 3))  # a fixed interval
    [0.5, 0.5, 0.5]
    """

    first: float = 0.2
    cap: float = 5.0
    factor: float = 2.0

    def delays(self) -> Iterator[float]:
        """The waits, one per retry, without end."""
        delay = min(self.first, self.cap)
        while True:
            yield delay
            delay = min(delay * self.factor, self.cap)


def retry(
    call: Callable[[], T],
    *,
    retry_on: type[E] | tuple[type[E], ...],
    deadline: Deadline | float,
    retry_if: Callable[[E], bool] | None = None,
    backoff: Backoff | Callable[[E], float] = Backoff(),
    on_retry: Callable[[E, float], None] | None = None,
    sleep: Sleep = time.sleep,
) -> T:
    """``call()``'s result, calling it again after a wait when it raises one of ``retry_on``, until ``deadline``.

    After a failed attempt:

    - an error not of ``retry_on``, or one ``retry_if`` (given the error) refuses, is raised at once;
    - once ``deadline`` (a :class:`Deadline`, or seconds from now) has passed, the error is raised
      as it is: the caller turns it into its own named error (``raise StoreError(...) from err``);
    - otherwise the wait is the next of ``backoff`` (or ``backoff(err)``, for a wait that depends on
      the failure; 0 tries again at once), ``on_retry(err, wait_s)`` is called (to log it), and
      after the wait ``call`` is tried again.

    A wait is not cut short at the deadline, so the last attempt may start up to one wait after it;
    ``deadline=0`` makes one attempt.

    >>> calls = []
    >>> def refused():
    ...     calls.append(1)
    ...     raise ConnectionRefusedError("nobody at port 9")
    >>> retry(refused, retry_on=ConnectionError, deadline=0)
    Traceback (most recent call last):
    ...
    ConnectionRefusedError: nobody at port 9
    >>> len(calls)
    1
    """
    if not isinstance(deadline, Deadline):
        deadline = Deadline(deadline)
    delays = backoff.delays() if isinstance(backoff, Backoff) else None

    def next_wait(err: E) -> float:
        return next(delays) if delays is not None else backoff(err)  # type: ignore[operator]
    while True:
        try:
            return call()
        except retry_on as err:
            if (retry_if is not None and not retry_if(err)) or deadline.expired:
                raise
            wait_s = next_wait(err)
            if on_retry is not None:
                on_retry(err, wait_s)
            if wait_s > 0:
                sleep(wait_s)


def wait_until(predicate: Callable[[], Any], deadline: Deadline | float, interval: float,
               sleep: Sleep = time.sleep) -> bool:
    """True as soon as ``predicate()`` is true, asked every ``interval`` seconds; False once ``deadline`` has passed.

    ``predicate`` is asked first at once, and once more whenever the deadline has not passed after a
    ``no``; an error it raises ends the wait. ``interval`` 0 asks again at once (for a question that
    waits by itself, such as a poll with a timeout).

    >>> wait_until(lambda: True, deadline=0, interval=1.0)
    True
    >>> now = [0.0]
    >>> def tick(seconds):
    ...     now[0] += seconds
    >>> wait_until(lambda: now[0] >= 2.0, Deadline(5, clock=lambda: now[0]), interval=0.5, sleep=tick), now[0]
    (True, 2.0)
    >>> wait_until(lambda: False, Deadline(5, clock=lambda: now[0]), interval=0.5, sleep=tick), now[0]
    (False, 7.0)
    """
    if not isinstance(deadline, Deadline):
        deadline = Deadline(deadline)
    while True:
        if predicate():
            return True
        if deadline.expired:
            return False
        if interval > 0:
            sleep(interval)
