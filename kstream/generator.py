"""The generator: stream a dataset's records into a Kafka topic.

Each record goes out as one message: key = record id, value = JSON features
(no label: evaluation joins on the id), header ``kstream-send-ns`` = the send
time. ``value_format="vector"`` sends the features as float64 bytes instead, with
header ``kstream-schema`` (see :mod:`kstream.messages.wire`). ``rate`` paces the
stream in records per second (0 = as fast as the client goes); ``limit`` stops
after that many records; ``loop`` starts over at the end of the data. Batching and compression are the client's settings
(``linger_ms``, ``compression_type`` ... through ``kafka_options``).

Records go out in the order of the dataset given, and every ``loop`` pass repeats it. The jobs
that call the generator (``kstream generate``, ``kstream run``, the 2.0-stream notebook) put the
rows in a named order first (:meth:`kstream.data.datasets.Dataset.in_order`, through
:func:`kstream.app.in_order`): by the flows' times where the data has them (the bundled CICIDS2017
sample does: its days, and the attacks of each, arrive as they were captured), else a shuffle seeded
by the run's seed (42 unless one is given), or the file's order when asked (the bundled samples hold
one class after another, a file per class).

With ``labels`` (a :class:`LabelPlan`) each record's label follows it to the labels topic after a
delay, in records or in seconds (:class:`LabelDelay`), as :mod:`kstream.messages.labels` describes;
:class:`LabelSender` keeps the schedule.
"""

from __future__ import annotations

import collections
import itertools
import logging
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from kstream.clients import Producer
from kstream.data.datasets import Dataset
from kstream.errors import ConfigError
from kstream.messages.labels import encode_label, label_headers
from kstream.messages.wire import SCHEMA_HEADER, SEND_TIME_HEADER, check_value_format, encode_flow, vector_schema

__all__ = ["GenerateStats", "generate", "pace", "LabelDelay", "LabelPlan", "LabelSender", "parse_label_delay"]

log = logging.getLogger(__name__)


@dataclass
class GenerateStats:
    """What a generator run sent."""

    records: int
    seconds: float
    labels: int = 0  # labels sent to the labels topic

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0


def pace(items: Iterable, rate: float, clock=time.perf_counter, sleep=time.sleep) -> Iterator:
    """Yield ``items`` no faster than ``rate`` per second (0 = unpaced).

    The schedule is absolute (item i is due at start + i/rate), so pauses of
    the consumer of this iterator do not slow the average rate.

    >>> t = [0.0]
    >>> list(pace(range(3), rate=2, clock=lambda: t[0], sleep=lambda s: t.__setitem__(0, t[0] + s))), t[0]
    ([0, 1, 2], 1.0)
    """
    if rate < 0:
        raise ConfigError(f"rate must be >= 0 records/s (0 = as fast as possible), not {rate}")
    if rate == 0:
        yield from items
        return
    start = clock()
    for i, item in enumerate(items):
        ahead = start + i / rate - clock()
        if ahead > 0:
            sleep(ahead)
        yield item


def generate(
    data: Dataset,
    producer: Producer,
    topic: str,
    rate: float = 0.0,
    limit: int | None = None,
    loop: bool = False,
    progress: bool = True,
    on_progress: Callable[[int], None] | None = None,
    value_format: str = "json",
    features: Sequence[str] | None = None,
    labels: LabelPlan | None = None,
) -> GenerateStats:
    """Send ``data``'s records to ``topic``, in ``data``'s row order; flushes before returning.

    ``on_progress`` is called with the records sent so far every 256 records, on this thread
    (a caller's hook that keeps a live view going while it sends).

    With ``loop`` the records repeat, in the same order, with a pass number appended to their id
    (``<id>#<pass>``, from the second pass on) so keys stay unique per record sent.

    ``value_format`` is ``json`` (the default) or ``vector``; a vector holds ``features`` in
    that order (the receiving model's; features the data lacks are sent missing), by default
    the data's own.

    ``labels`` sends each record's label to a labels topic after a delay (:class:`LabelSender`):
    ``labels.values`` holds the class of each row of ``data``, in order.
    """
    if limit is not None and limit < 0:
        raise ConfigError(f"limit must be >= 0, not {limit}")
    if len(data) == 0:
        raise ConfigError("the dataset split to send is empty")
    check_value_format(value_format)
    names = data.feature_names
    ids = data.ids.to_numpy()
    if value_format == "vector":
        names = list(features) if features is not None else names
        matrix = np.ascontiguousarray(data.features.reindex(columns=names).to_numpy(dtype=np.float64), dtype="<f8")
        schema = vector_schema(names).encode()

        def encode(row: np.ndarray) -> bytes:
            return row.tobytes()

        def headers() -> dict[str, bytes]:
            return {SEND_TIME_HEADER: str(time.time_ns()).encode(), SCHEMA_HEADER: schema}
    else:
        matrix = data.features.to_numpy(dtype=np.float64)

        def encode(row: np.ndarray) -> bytes:
            return encode_flow(names, row)

        def headers() -> dict[str, bytes]:
            return {SEND_TIME_HEADER: str(time.time_ns()).encode()}

    def rows() -> Iterator[tuple[str, np.ndarray]]:
        passes = itertools.count() if loop else range(1)
        for n in passes:
            for rid, row in zip(ids, matrix):
                yield (rid if n == 0 else f"{rid}#{n}"), row

    total = limit if limit is not None else (None if loop else len(data))
    stream = itertools.islice(rows(), limit)
    sent = 0
    start = time.perf_counter()
    labeller = LabelSender(producer, labels, len(data)) if labels is not None else None
    with tqdm(total=total, unit="rec", desc=f"send {topic}", disable=not progress, leave=False) as bar:
        for rid, row in pace(stream, rate):
            producer.send(topic, value=encode(row), key=rid.encode(), headers=headers())
            if labeller is not None:
                labeller.sent(sent, rid)
            sent += 1
            if sent % 256 == 0:
                bar.update(256)
                if on_progress is not None:
                    on_progress(sent)
        bar.update(sent % 256)
        if labeller is not None:
            labeller.finish()
        producer.flush()
    stats = GenerateStats(sent, time.perf_counter() - start, labeller.labels if labeller is not None else 0)
    log.info("sent %d records to %s in %.2fs (%.0f rec/s)", stats.records, topic, stats.seconds, stats.rate)
    if labeller is not None:
        log.info("sent %d labels to %s", stats.labels, labeller.plan.topic)
    return stats


# --- labels, late: each record's class to the labels topic after a delay -------------------------------------

_DELAY = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m)?\s*")


@dataclass(frozen=True)
class LabelDelay:
    """How late a record's label follows it: ``records`` records later, or ``seconds`` after it was sent."""

    records: int | None = None
    seconds: float | None = None

    def __str__(self) -> str:
        return f"{self.records} records" if self.records is not None else f"{self.seconds:g} s"


def parse_label_delay(text: object) -> LabelDelay | None:
    """``--label-delay``: a whole number of records (``1000``), or seconds with a unit (``30s``, ``500ms``,
    ``2m``); empty means no labels.

    >>> parse_label_delay("1000"), parse_label_delay("30s"), parse_label_delay("500ms"), parse_label_delay("2m")
    (LabelDelay(records=1000, seconds=None), LabelDelay(records=None, seconds=30.0), \
LabelDelay(records=None, seconds=0.5), LabelDelay(records=None, seconds=120.0))
    >>> parse_label_delay(""), parse_label_delay(0)
    (None, LabelDelay(records=0, seconds=None))
    >>> parse_label_delay("1.5")
    Traceback (most recent call last):
    ...
    kstream.errors.ConfigError: label delay '1.5' is neither a whole number of records (1000) nor seconds with a \
unit (30s, 500ms, 2m)
    """
    if text is None or (isinstance(text, str) and not text.strip()):
        return None
    if isinstance(text, bool) or not isinstance(text, (int, str)):
        raise ConfigError(f"label delay {text!r} must be a number of records or seconds with a unit (30s)")
    match = _DELAY.fullmatch(str(text))
    number, unit = (match.group(1), match.group(2)) if match else ("", None)
    if match is None or (unit is None and not number.isdigit()):
        raise ConfigError(f"label delay {str(text)!r} is neither a whole number of records (1000) nor seconds with a "
                          "unit (30s, 500ms, 2m)")
    if unit is None:
        return LabelDelay(records=int(number))
    return LabelDelay(seconds=float(number) * {"ms": 0.001, "s": 1.0, "m": 60.0}[unit])


@dataclass(frozen=True)
class LabelPlan:
    """What a generator sends to the labels topic: ``values[i]`` is the class of row ``i`` of its data (at the
    receiving model's level: ``benign``/``attack`` for a binary model), sent to ``topic`` after ``delay``."""

    topic: str
    values: Sequence[str]
    delay: LabelDelay


class LabelSender:
    """Sends each record's label ``plan.delay`` after the record: the label of record ``i`` goes right after
    record ``i + N`` (a delay of ``N`` records), or once ``S`` seconds have passed since record ``i`` was sent
    (checked as records are sent). At the end of the data (or of ``--records``), :meth:`finish` sends the labels
    left: at once for a delay in records (no record follows to wait for), at their time for a delay in seconds.

    The key is the record's id (with its ``#<pass>`` suffix when looping), the value its class, the header
    ``kstream-label-ns`` the send time (:mod:`kstream.messages.labels`).

    >>> class Tap:
    ...     def __init__(self): self.sent = []
    ...     def send(self, topic, value, key=None, headers=None): self.sent.append((key, value))
    >>> tap = Tap()
    >>> sender = LabelSender(tap, LabelPlan("flows.labels", ["benign", "attack", "benign"], LabelDelay(records=1)), 3)
    >>> for i, rid in enumerate(["a", "b", "c"]):
    ...     sender.sent(i, rid)
    >>> tap.sent  # the label of record i after record i + 1
    [(b'a', b'benign'), (b'b', b'attack')]
    >>> sender.finish(); tap.sent[-1], sender.labels
    ((b'c', b'benign'), 3)
    """

    def __init__(self, producer: Producer, plan: LabelPlan, rows: int,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        if len(plan.values) != rows:
            raise ConfigError(f"the labels to send hold {len(plan.values)} classes for {rows} records")
        self.producer, self.plan, self.rows = producer, plan, rows
        self.clock, self.sleep = clock, sleep
        self.labels = 0  # labels sent so far
        self._waiting: collections.deque[tuple[float, str, str]] = collections.deque()  # (due, record id, class)

    def sent(self, index: int, rid: str) -> None:
        """Record number ``index`` (0 = the first sent), id ``rid``, has just been sent; send the labels now due."""
        delay = self.plan.delay
        due = float(index + delay.records) if delay.records is not None else self.clock() + float(delay.seconds or 0)
        self._waiting.append((due, rid, self.plan.values[index % self.rows]))
        now = float(index) if delay.records is not None else self.clock()
        while self._waiting and self._waiting[0][0] <= now:
            self._send(*self._waiting.popleft()[1:])

    def finish(self) -> None:
        """Send the labels still waiting: at once (a delay in records), or each at its time (a delay in seconds)."""
        while self._waiting:
            due, rid, label = self._waiting.popleft()
            if self.plan.delay.seconds is not None:
                ahead = due - self.clock()
                if ahead > 0:
                    self.sleep(ahead)
            self._send(rid, label)

    def _send(self, rid: str, label: str) -> None:
        self.producer.send(self.plan.topic, value=encode_label(label), key=rid.encode(),
                           headers=label_headers(time.time_ns()))
        self.labels += 1
