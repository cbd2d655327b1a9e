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
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from kstream.clients import Producer
from kstream.data.datasets import Dataset
from kstream.errors import ConfigError
from kstream.messages.wire import SCHEMA_HEADER, SEND_TIME_HEADER, check_value_format, encode_flow, vector_schema

__all__ = ["GenerateStats", "generate", "pace"]

log = logging.getLogger(__name__)


@dataclass
class GenerateStats:
    """What a generator run sent."""

    records: int
    seconds: float

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
) -> GenerateStats:
    """Send ``data``'s records to ``topic``, in ``data``'s row order; flushes before returning.

    ``on_progress`` is called with the records sent so far every 256 records, on this thread
    (a caller's hook that keeps a live view going while it sends).

    With ``loop`` the records repeat, in the same order, with a pass number appended to their id
    (``<id>#<pass>``, from the second pass on) so keys stay unique per record sent.

    ``value_format`` is ``json`` (the default) or ``vector``; a vector holds ``features`` in
    that order (the receiving model's; features the data lacks are sent missing), by default
    the data's own.
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
    with tqdm(total=total, unit="rec", desc=f"send {topic}", disable=not progress, leave=False) as bar:
        for rid, row in pace(stream, rate):
            producer.send(topic, value=encode(row), key=rid.encode(), headers=headers())
            sent += 1
            if sent % 256 == 0:
                bar.update(256)
                if on_progress is not None:
                    on_progress(sent)
        bar.update(sent % 256)
        producer.flush()
    stats = GenerateStats(sent, time.perf_counter() - start)
    log.info("sent %d records to %s in %.2fs (%.0f rec/s)", stats.records, topic, stats.seconds, stats.rate)
    return stats
