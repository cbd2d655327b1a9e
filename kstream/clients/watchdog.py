"""A watchdog for calls into a client library that may never return.

kafka-python 3's consumer runs its network loop on a thread of its own, and ``poll`` hands it
work and waits for the answer without a timeout. Under load that answer has been seen never to
come (a full test run once waited ten minutes on one poll): the detector's read-ahead thread, and
with it every partition the detector owns, stalled. :class:`Watchdog` notices a call that overran
its deadline and calls a function that can end it from another thread (for kafka-python, stopping
the client's network loop, which fails the waiting call).

>>> fired = []
>>> dog = Watchdog(lambda: fired.append("stuck"), check_every_s=0.01)
>>> with dog.watch(0.05):
...     time.sleep(0.2)  # a call that overran its 0.05 s by far
>>> fired, dog.fired
(['stuck'], 1)
>>> with dog.watch(5.0):
...     pass  # one that returned in time
>>> dog.fired
1
>>> dog.close()
>>> with dog.watch(0.05):  # closed, then used again: it watches again
...     time.sleep(0.2)
>>> fired, dog.fired
(['stuck', 'stuck'], 2)
>>> dog.close()
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator

__all__ = ["Watchdog"]

log = logging.getLogger(__name__)


class Watchdog:
    """Calls ``on_overrun`` (on its own thread) once for each watched call still running past its deadline.

    One daemon thread per watchdog, started on the first :meth:`watch`, checks every
    ``check_every_s``; a watched call costs two attribute writes, so it can guard every poll.
    """

    def __init__(self, on_overrun: Callable[[], None], check_every_s: float = 1.0) -> None:
        self._on_overrun = on_overrun
        self._check_every_s = check_every_s
        self._deadline: float | None = None
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None
        #: how many watched calls overran
        self.fired = 0

    @contextlib.contextmanager
    def watch(self, limit_s: float) -> Iterator[None]:
        """Watch the block: if it still runs ``limit_s`` from now, ``on_overrun`` is called."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="kstream-watchdog", daemon=True)
            self._thread.start()
        self._deadline = time.monotonic() + limit_s
        try:
            yield
        finally:
            self._deadline = None

    def close(self) -> None:
        """Stop the checking thread (a later :meth:`watch` starts a new one)."""
        self._closed.set()
        if self._thread is not None:
            self._thread.join()
        self._thread, self._closed = None, threading.Event()

    def _loop(self) -> None:
        while not self._closed.wait(self._check_every_s):
            deadline = self._deadline
            if deadline is None or time.monotonic() < deadline:
                continue
            self._deadline = None  # once per call
            self.fired += 1
            try:
                self._on_overrun()
            except Exception:  # noqa: BLE001 - the watchdog outlives a failed rescue and says so
                log.exception("the watchdog's rescue of an overrunning call failed")
