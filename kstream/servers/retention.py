"""What a long-lived broker keeps: its topics listed by the run that made them, and their deletion.

A run (``kstream run``, the stream of a sweep) names its topics and consumer group with its start time as a
suffix of 20 digits (``flows.20261208011502123456``: date, time, microseconds), so runs on one cluster never read
each other's records. Kafka keeps them (7 days by default, and a topic itself for ever), so a broker left running
for weeks collects hundreds of partitions. :func:`topic_table` lists the topics with their run, its start time,
their partitions and, on the local broker, the bytes their partition folders hold on disk and when they were last
written; :func:`select` picks topics by run id, topic name or age; the backend's ``delete_topics`` deletes them.

>>> run_of("flows.20261208011502123456"), run_of("bench-1p-0a1b2c3d")
('20261208011502123456', '')
>>> run_started("20261208011502123456")
datetime.datetime(2026, 12, 8, 1, 15, 2, 123456)
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from kstream.errors import ConfigError

__all__ = ["TopicUse", "Usage", "run_of", "run_started", "disk_usage", "topic_table", "select", "parse_age"]

_RUN = re.compile(r"\.(\d{20})$")
#: a partition's folder: ``<topic>-<partition>``; a deleted one waiting for removal ends in ``-delete``
_PARTITION_DIR = re.compile(r"^(?P<topic>.+)-(?P<partition>\d+)$")


@dataclass(frozen=True)
class Usage:
    """What a topic's partition folders hold on disk: bytes, and when a file of theirs last changed."""

    bytes: int
    written: dt.datetime | None


@dataclass(frozen=True)
class TopicUse:
    """One topic: its name, the run that made it ("" if none), that run's start, its partitions and (on the local
    broker; None elsewhere) its bytes on disk and last write."""

    topic: str
    run: str
    started: dt.datetime | None
    partitions: int
    bytes: int | None = None
    written: dt.datetime | None = None

    def age(self, now: dt.datetime) -> dt.timedelta | None:
        """How long ago its run started, or its last write if that is later; None for a topic no run named."""
        if self.started is None:
            return None
        return now - max(self.started, self.written or self.started)


def run_of(topic: str) -> str:
    """The id of the run that named ``topic`` (its 20-digit suffix), or "" for a topic no run named."""
    found = _RUN.search(topic)
    return found.group(1) if found else ""


def run_started(run: str) -> dt.datetime:
    """When run ``run`` started, by the clock of the machine that ran it (local time)."""
    return dt.datetime.strptime(run, "%Y%m%d%H%M%S%f")


def disk_usage(log_dirs: Iterable[Path]) -> dict[str, Usage]:
    """Per topic, the bytes its partition folders in ``log_dirs`` (each node's, on a cluster) take on disk and
    their last write (local time).

    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> (root / "flows.1-0").mkdir(); _ = (root / "flows.1-0" / "00.log").write_bytes(b"x" * 10)
    >>> (root / "meta.properties").touch()
    >>> {topic: use.bytes > 0 for topic, use in disk_usage([root]).items()}
    {'flows.1': True}
    """
    sizes: dict[str, int] = {}
    written: dict[str, float] = {}
    for root in log_dirs:
        if not root.is_dir():
            continue
        for folder in root.iterdir():
            found = _PARTITION_DIR.match(folder.name)
            if not found or not folder.is_dir():
                continue
            stats = [f.stat() for f in folder.iterdir() if f.is_file()]
            topic = found["topic"]
            # blocks, not sizes: Kafka preallocates its index files (10 MB each, sparse until written)
            sizes[topic] = sizes.get(topic, 0) + sum(s.st_blocks * 512 for s in stats)
            written[topic] = max([written.get(topic, 0.0), *(s.st_mtime for s in stats)])
    return {t: Usage(n, dt.datetime.fromtimestamp(written[t]) if written[t] else None) for t, n in sizes.items()}


def topic_table(partitions: Mapping[str, int], usage: Mapping[str, Usage] | None = None) -> list[TopicUse]:
    """The topics of ``partitions`` (name -> partition count) with their run, its start and their disk usage
    (``usage``, from :func:`disk_usage`; None: unknown), oldest run first, then topics no run named.

    >>> [(t.topic, t.run, t.bytes) for t in topic_table({"x": 1, "flows.20261208011502123456": 2},
    ...                                                 {"x": Usage(5, None)})]
    [('flows.20261208011502123456', '20261208011502123456', 0), ('x', '', 5)]
    """
    rows = []
    for name, count in partitions.items():
        run = run_of(name)
        use = Usage(0, None) if usage is None else usage.get(name, Usage(0, None))
        rows.append(TopicUse(name, run, run_started(run) if run else None, count,
                             None if usage is None else use.bytes, use.written))
    return sorted(rows, key=lambda r: (r.run == "", r.run, r.topic))


def parse_age(text: str) -> dt.timedelta:
    """An age written as a number and a unit: ``30m``, ``12h``, ``7d``.

    >>> parse_age("36h")
    datetime.timedelta(days=1, seconds=43200)
    >>> parse_age("soon")
    Traceback (most recent call last):
    ...
    kstream.errors.ConfigError: age 'soon' is not a number and a unit: write e.g. 30m, 12h or 7d
    """
    found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([mhd])\s*", text)
    if not found:
        raise ConfigError(f"age {text!r} is not a number and a unit: write e.g. 30m, 12h or 7d")
    unit = {"m": "minutes", "h": "hours", "d": "days"}[found[2]]
    return dt.timedelta(**{unit: float(found[1])})


def select(table: Sequence[TopicUse], names: Sequence[str] = (), older_than: dt.timedelta | None = None,
           now: dt.datetime | None = None) -> list[str]:
    """The topics of ``table`` that ``names`` (run ids or topic names) or ``older_than`` pick: a run's topics
    when the run started that long before ``now`` and (where the disk is read) none was written since; a topic
    no run named goes only by name. A name that picks nothing is an error, so a typo deletes nothing.

    >>> table = topic_table({"flows.20261201000000000000": 1, "predictions.20261201000000000000": 1,
    ...                      "flows.20261207000000000000": 1, "mine": 1})
    >>> select(table, ["20261201000000000000"])
    ['flows.20261201000000000000', 'predictions.20261201000000000000']
    >>> select(table, older_than=parse_age("3d"), now=dt.datetime(2026, 12, 8))
    ['flows.20261201000000000000', 'predictions.20261201000000000000']
    >>> written = [TopicUse(t.topic, t.run, t.started, 1, 0, dt.datetime(2026, 12, 7)) if t.topic.startswith("pred")
    ...            else t for t in table]  # a run still writing predictions a day ago: all its topics stay
    >>> select(written, older_than=parse_age("3d"), now=dt.datetime(2026, 12, 8))
    []
    >>> select(table, ["mine", "flows"])
    Traceback (most recent call last):
    ...
    kstream.errors.ConfigError: flows names no run and no topic here; `kstream broker topics` lists them
    """
    if not names and older_than is None:
        raise ConfigError("name the runs or topics to delete, or give --older-than AGE")
    unknown = [n for n in names if not any(n in (t.run, t.topic) for t in table)]
    if unknown:
        raise ConfigError(f"{', '.join(unknown)} names no run and no topic here; `kstream broker topics` lists them")
    now = now or dt.datetime.now()
    young: set[str] = set()  # runs with a topic younger than older_than: all their topics stay
    if older_than is not None:
        young = {t.run for t in table if t.run and (t.age(now) or older_than) < older_than}
    return [t.topic for t in table
            if t.topic in names or (t.run and t.run in names)
            or (older_than is not None and t.run and t.run not in young)]
