"""A pool of detectors in one consumer group, so Kafka spreads a topic's partitions over them.

Each detector runs its loop on a thread of its own; the pool starts them, waits until every one
has been given a partition, and on exit stops them (each finishes its batch and commits), joins
them and re-raises the first failure. ``kstream run`` and the ``2.0-stream`` notebook use it.

>>> pool = DetectorPool(lambda: None, 0)
Traceback (most recent call last):
...
kstream.errors.ConfigError: a detector pool needs at least one detector, not 0
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from kstream.detector import Detector, DetectorStats
from kstream.errors import BrokerError, ConfigError

__all__ = ["DetectorPool"]


class DetectorPool:
    """``n`` detectors made by ``make``, each on its own thread; a context manager."""

    def __init__(self, make: Callable[[], Detector], n: int) -> None:
        if n < 1:
            raise ConfigError(f"a detector pool needs at least one detector, not {n}")
        self._make = make
        self.n = n
        self.detectors: list[Detector] = []
        self._threads: list[threading.Thread] = []
        self._ready: list[threading.Event] = []
        self._failures: list[BaseException] = []

    def __enter__(self) -> DetectorPool:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Make the detectors and start their threads (each connects, then waits for a partition)."""
        for i in range(self.n):
            detector, ready = self._make(), threading.Event()
            thread = threading.Thread(target=self._work, args=(detector, ready), name=f"kstream-detector-{i}",
                                      daemon=True)
            self.detectors.append(detector)
            self._ready.append(ready)
            self._threads.append(thread)
            thread.start()

    def _work(self, detector: Detector, ready: threading.Event) -> None:
        try:
            with detector.consumer.connect(), detector.producer.connect():
                while not detector.consumer.assigned() and not detector.stopped:
                    detector.step()
                ready.set()
                detector.run()
        except BaseException as err:  # noqa: BLE001 - re-raised in the caller's thread
            self._failures.append(err)
            ready.set()

    def wait_ready(self, timeout_s: float) -> None:
        """Block until every detector has a partition; BrokerError after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        for event in self._ready:
            if not event.wait(max(0.0, deadline - time.monotonic())):
                raise BrokerError(f"a detector got no partition within {timeout_s:.0f}s; is the topic there?")
        self.raise_failure()

    def wait_until(self, done: Callable[[], bool], timeout_s: float, every_s: float = 0.05) -> bool:
        """Poll ``done()`` until it holds, a detector fails, or ``timeout_s`` passes; returns ``done()``."""
        deadline = time.monotonic() + timeout_s
        while not done() and time.monotonic() < deadline:
            self.raise_failure()
            time.sleep(every_s)
        self.raise_failure()
        return done()

    def raise_failure(self) -> None:
        """Re-raise the first error a detector thread ended with, if any."""
        if self._failures:
            raise self._failures[0]

    def stop(self) -> None:
        """Ask every detector to finish its batch and commit; wait for the threads."""
        for detector in self.detectors:
            detector.stop()
        for thread in self._threads:
            thread.join()

    @property
    def stats(self) -> list[DetectorStats]:
        return [d.stats for d in self.detectors]
