"""The detector's read-ahead: a thread that polls and scores the next batch while the last one is written.

:class:`ReadAhead` owns the consumer: it is the only thread that calls it (kafka-python's consumer is
not thread-safe), so the detector's commits go through it too (:meth:`ReadAhead.commit`), served
between polls. It polls a batch, hands it to ``process`` (decode and predict, no I/O) and queues
the result for the writer (the detector's own thread: store, publish, wait for acknowledgements,
commit). At most ``depth`` full batches' worth of records wait (so a slow stream's many small polls
keep being read and scored while the writer is busy, and the writer takes them as one); then it only
serves commits. Nothing it reads ahead is committed before the writer has stored and published it,
so the delivery guarantee is the sequential loop's: a crash loses nothing, and what was read ahead
is read again after a restart.

>>> class Empty:
...     def poll(self, n, timeout_ms): return []
...     def caught_up(self): return True
...     def commit(self, offsets, deadline_s): return True
>>> reader = ReadAhead(Empty(), lambda messages: messages, batch_size=10, poll_timeout_ms=10).start()
>>> reader.next(0.05) is None, reader.commit({("flows", 0): 5}, 1.0)
(True, True)
>>> reader.stop()
[]
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from typing import Any

from kstream.clients import Consumer, Message
from kstream.clients.records import Assignment
from kstream.retry import wait_until

__all__ = ["ReadAhead", "still_ours", "REJOIN_WAIT_S"]

log = logging.getLogger(__name__)

#: The longest a poll waits when no record comes, so commit requests are served promptly even then.
MAX_POLL_WAIT_MS = 100


class ReadAhead:
    """Polls ``consumer`` and applies ``process`` to each batch on its own thread; see the module docstring."""

    def __init__(self, consumer: Consumer, process: Callable[[list[Message]], Any], batch_size: int,
                 poll_timeout_ms: int, depth: int = 4, backlog: list[tuple[list, int]] | None = None) -> None:
        self.consumer = consumer
        self.process = process
        self.batch_size = batch_size
        self.poll_timeout_ms = max(1, min(poll_timeout_ms, MAX_POLL_WAIT_MS))
        self._ready: queue.Queue = queue.Queue()
        self._room = max(1, depth) * max(1, batch_size)  # records that may wait for the writer
        self._waiting = 0  # records waiting now (under the queue's lock)
        self._commits: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="kstream-read-ahead", daemon=True)
        self._error: BaseException | None = None
        #: batches read but not handed to the writer, as (messages, rebalances): first out, and what :meth:`stop`
        #: returns
        self._backlog: list[tuple[list, int]] = list(backlog or [])
        #: since when (monotonic) polls came back empty with every assigned partition read; None while records come
        self.idle_since: float | None = None
        #: when the last of those checks answered "caught up": idleness counts only as far as a check confirmed it
        self.idle_checked: float | None = None

    def idle_s(self) -> float:
        """Seconds of idleness the read-ahead thread has confirmed so far (0 while records come).

        Measured from the first empty, caught-up poll to the latest check that still found nothing, not to
        now: a thread held up inside the client (a call that does not return) is not idle, however long it
        waits, so an idle timeout never ends a detector whose reads are stuck rather than done.
        """
        since, checked = self.idle_since, self.idle_checked
        return 0.0 if since is None or checked is None else max(0.0, checked - since)

    @property
    def waiting(self) -> int:
        """Records read and scored that wait for the writer."""
        return self._waiting

    def start(self) -> ReadAhead:
        self._thread.start()
        return self

    def stop(self) -> list[tuple[list, int]]:
        """Stop polling and wait for the thread (a commit in progress finishes first).

        Returns the batches read but not handed out, as ``(messages, rebalances)``: the consumer's
        position is past them, so the caller hands them to the next read-ahead (``backlog``).
        """
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self._fail_commits(RuntimeError("the read-ahead thread stopped"))
        queued = [(messages, read_at) for messages, _, read_at in self.drain()]
        left, self._backlog = queued + self._backlog, []  # the queued ones were read first
        return left

    def next(self, timeout_s: float) -> tuple[list, Any, int] | None:
        """The next ``(messages, processed, rebalances)``, or None if none came within ``timeout_s``; re-raises the
        thread's error. ``rebalances`` is the consumer's count of group changes when the batch was read."""
        try:
            item = self._ready.get(timeout=timeout_s)
        except queue.Empty:
            self._raise()
            return None
        self._taken([item])
        return item

    def drain(self) -> list[tuple[list, Any, int]]:
        """Every batch waiting now, taken out of line (so the thread has room to poll again)."""
        out: list[tuple[list, Any, int]] = []
        while True:
            try:
                out.append(self._ready.get_nowait())
            except queue.Empty:
                self._taken(out)
                return out

    def more(self, same_as: int, room: int,
             alike: Callable[[Any], bool] | None = None) -> list[tuple[list, Any, int]]:
        """Batches already waiting, read at assignment ``same_as``, holding ``room`` messages at most in all
        (and, with ``alike``, whose processed result it accepts)."""
        out: list[tuple[list, Any, int]] = []
        with self._ready.mutex:  # look before taking: a batch that does not fit stays first in line
            while self._ready.queue:
                messages, processed, read_at = self._ready.queue[0]
                if read_at != same_as or len(messages) > room or (alike is not None and not alike(processed)):
                    break
                out.append(self._ready.queue.popleft())
                room -= len(messages)
                self._waiting -= len(messages)
        return out

    def _taken(self, items: list[tuple[list, Any, int]]) -> None:
        with self._ready.mutex:
            self._waiting -= sum(len(messages) for messages, _, _ in items)

    def _offer(self, item: tuple[list, Any, int]) -> bool:
        """Queue ``item`` if its records fit the room left (or nothing waits); whether it was queued."""
        with self._ready.mutex:
            if self._waiting and self._waiting + len(item[0]) > self._room:
                return False
            self._waiting += len(item[0])
            self._ready.queue.append(item)
            self._ready.unfinished_tasks += 1
            self._ready.not_empty.notify()
        return True

    def commit(self, offsets: Mapping[tuple[str, int], int], deadline_s: float, rebalances: int = 0) -> bool:
        """Have the consumer commit ``offsets`` (on the read-ahead thread); its answer, or its error.

        Refused (False) when the group changed since the batch was read (``rebalances`` from :meth:`next`):
        its partitions may belong to another detector now, which reads the batch again.
        """
        if getattr(self.consumer, "thread_safe", False):  # a consumer that says so commits from the writer's thread
            return self._commit(offsets, deadline_s, rebalances)
        future: Future = Future()
        self._commits.put((dict(offsets), deadline_s, rebalances, future))
        while True:
            self._raise()
            try:
                return future.result(timeout=0.05)
            except TimeoutError:
                continue

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error
        if not self._thread.is_alive() and not self._stop.is_set() and self._thread.ident is not None:
            raise RuntimeError("the read-ahead thread ended unexpectedly")

    def _serve_commits(self, wait_s: float = 0.0) -> None:
        try:
            offsets, deadline_s, rebalances, future = (self._commits.get(timeout=wait_s) if wait_s
                                                       else self._commits.get_nowait())
        except queue.Empty:
            return
        try:
            future.set_result(self._commit(offsets, deadline_s, rebalances))
        except BaseException as err:  # noqa: BLE001 - the writer re-raises it
            future.set_exception(err)

    def _commit(self, offsets: Mapping[tuple[str, int], int], deadline_s: float, rebalances: int) -> bool:
        if getattr(self.consumer, "rebalances", 0) != rebalances:
            log.warning("offset commit refused after a rebalance (the group changed since the batch was read); "
                        "the batch goes to the partition's owner, whose store writes are idempotent")
            return False
        return self.consumer.commit(offsets, deadline_s)

    def _fail_commits(self, err: BaseException) -> None:
        while True:
            try:
                *_, future = self._commits.get_nowait()
            except queue.Empty:
                return
            if not future.done():
                future.set_exception(err)

    def _loop(self) -> None:
        try:
            while not self._stop.is_set():
                self._serve_commits()
                if self._backlog:
                    messages, read_at = self._backlog[0]
                else:
                    messages = self.consumer.poll(self.batch_size, self.poll_timeout_ms)
                    if not messages:
                        self._note_idle()
                        continue
                    read_at = getattr(self.consumer, "rebalances", 0)
                    self._backlog.append((messages, read_at))
                    self._serve_commits()  # the writer may be waiting: before the batch is scored
                self.idle_since = None
                item = (messages, self.process(messages), read_at)
                while not self._stop.is_set():  # never block on a full queue: the writer may wait for a commit
                    if self._offer(item):
                        self._backlog.pop(0)
                        break
                    self._serve_commits(wait_s=0.01)
            while not self._commits.empty():  # the writer's last commit, asked for as it stopped us
                self._serve_commits()
        except BaseException as err:  # noqa: BLE001 - re-raised in the writer's thread
            log.debug("read-ahead thread failed: %s", err)
            self._error = err
            self._fail_commits(err)

    def _note_idle(self) -> None:
        # idle only while caught up on assigned partitions of a cluster that answers: an unreachable
        # broker or a rebalance in progress is waiting, not the end of the stream
        if self.consumer.caught_up():
            now = time.monotonic()
            self.idle_since = self.idle_since or now
            self.idle_checked = now
        else:
            self.idle_since = None


#: After a refused commit, how long a batch read ahead waits for the group's new assignment before it is written anyway
REJOIN_WAIT_S = 30.0


def still_ours(consumer: Consumer, messages: list[Message], read_at: int, stop: threading.Event,
               expect_change: bool = False, wait_s: float = REJOIN_WAIT_S) -> list[Message]:
    """The messages of a batch read ahead (at assignment ``read_at``) that are still this detector's to write.

    After a rebalance only partitions whose read position survived it keep their messages: the
    others are read again from their committed offsets by their owner (this detector too, if it
    got them back), so writing them now would only duplicate them. Waits up to ``wait_s`` for a
    rebalance in progress to end and, after a refused commit (``expect_change``), for one to happen;
    when it cannot tell (or ``stop`` is set), it keeps every message (a duplicate, never a loss).

    >>> still_ours(object(), ["m"], 0, threading.Event())  # a consumer that does not track its assignment
    ['m']
    """
    assignment = getattr(consumer, "assignment", None)
    if not isinstance(assignment, Assignment):
        return messages
    wait_until(lambda: stop.is_set() or not (assignment.moving or (assignment.count == read_at and expect_change)),
               wait_s, interval=0.005)
    kept = None if assignment.moving else assignment.kept_since(read_at)
    if kept is None:
        return messages
    mine = [m for m in messages if (m.topic, m.partition) in kept]
    if len(mine) < len(messages):
        log.info("dropping %d records read ahead before a rebalance; their partition's owner reads them again",
                 len(messages) - len(mine))
    return mine
