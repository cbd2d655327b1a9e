"""What goes in and out of Kafka, independent of the client library: :class:`Message` and :class:`Record`
(and :class:`Unacknowledged`, the records a flush still waits for).

>>> Record("flows", b"{}").headers
()
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

__all__ = ["Message", "Record", "Unacknowledged", "Assignment", "GroupBacklog", "TopicIds", "held_back",
           "topic_id_text"]


@dataclass(frozen=True)
class Message:
    """One consumed record, independent of the client library.

    ``topic_id`` is the topic's id in the cluster's metadata (empty when the cluster does not say):
    a topic deleted and created again under the same name gets a new one. ``error`` is set on a
    placeholder for a record the client library could not read (its key and value are then
    None): the detector dead-letters it by its topic, partition and offset.
    """

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, bytes | None]  # a header's value may be null
    topic_id: str = ""
    error: str | None = None


@dataclass(frozen=True)
class Record:
    """One record to publish."""

    topic: str
    value: bytes
    key: bytes | None = None
    headers: Sequence[tuple[str, bytes]] = field(default_factory=tuple)


class Unacknowledged(Exception):
    """One round of a producer's flush ended with records Kafka has not acknowledged yet.

    The flush retries it (:func:`kstream.retry.retry`) and turns the last one into a
    :class:`~kstream.errors.BrokerError` at its deadline. ``count`` records wait, the first for
    ``topic``; ``first`` is the first delivery error (None: no answer yet); ``again`` of them failed
    and are sent again after the backoff (the others are still in flight).

    >>> print(Unacknowledged(3, "flows", None, again=1))
    3 record(s) for flows not acknowledged yet (1 to send again)
    """

    def __init__(self, count: int, topic: str, first: object, again: int) -> None:
        super().__init__(f"{count} record(s) for {topic} not acknowledged yet ({again} to send again)")
        self.count, self.topic, self.first, self.again = count, topic, first, again


def topic_id_text(raw: bytes) -> str:
    """A topic id (16 bytes) as Kafka writes it: URL-safe base64 without padding; the same on every backend.

    >>> topic_id_text(bytes(range(16)))
    'AAECAwQFBgcICQoLDA0ODw'
    """
    return base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode("ascii")


class TopicIds:
    """Each topic's id as a consumer puts it in every :class:`Message` (and the store in each row's key).

    ``lookup(topic)`` reads it from the cluster: the id as text, ``""`` when the cluster has no id for the
    topic, None when the read failed (a timeout while the cluster elects a leader). A failed read never
    replaces a known id, so a record redelivered after a failover keeps the identity it was first written
    under; :meth:`get` returns None only for a topic whose id was never read, and the consumer then holds
    that topic's records back (reads them again later) rather than write them under an identity that can
    change. :meth:`expire` (at each assignment) has every id read again, for a topic created again under
    its name.

    >>> answers = iter(["id-1", None, "id-2"])
    >>> ids = TopicIds(lambda topic: next(answers))
    >>> ids.get("flows"), ids.get("flows")  # read once, then kept
    ('id-1', 'id-1')
    >>> ids.expire(); ids.get("flows")  # read again and failed: the known id stays
    'id-1'
    >>> ids.get("flows")  # read again: the topic was created again
    'id-2'
    >>> TopicIds(lambda topic: None).get("flows") is None  # never known: its records wait
    True
    """

    def __init__(self, lookup: Callable[[str], str | None]) -> None:
        self._lookup = lookup
        self._known: dict[str, str] = {}
        self._fresh: set[str] = set()  # read since the last expire()

    def expire(self) -> None:
        self._fresh.clear()

    def get(self, topic: str) -> str | None:
        if topic in self._fresh:
            return self._known[topic]
        found = self._lookup(topic)
        if found is None:
            return self._known.get(topic)
        if topic in self._known and self._known[topic] != found:
            log.warning("topic %s has a new id (%s, was %s): it was deleted and created again", topic, found,
                        self._known[topic])
        self._known[topic] = found
        self._fresh.add(topic)
        return found


def held_back(fetched: Sequence[tuple[str, int, int]],
              ids: TopicIds) -> tuple[dict[str, str], dict[tuple[str, int], int]]:
    """For a fetched batch's records as ``(topic, partition, offset)``: the id of each topic whose id is known,
    and for each partition of a topic whose id was never read the first offset fetched, to seek back to (the
    records are read again at a later poll, when the id may be known).

    >>> ids = TopicIds(lambda topic: "id-1" if topic == "flows" else None)
    >>> held_back([("flows", 0, 5), ("labels", 1, 7), ("labels", 1, 8), ("flows", 0, 6)], ids)
    ({'flows': 'id-1'}, {('labels', 1): 7})
    """
    known: dict[str, str] = {}
    held: dict[tuple[str, int], int] = {}
    unknown: set[str] = set()
    for topic, partition, offset in fetched:
        if topic not in known and topic not in unknown:
            found = ids.get(topic)
            if found is None:
                unknown.add(topic)
            else:
                known[topic] = found
        if topic in unknown:
            held[(topic, partition)] = min(offset, held.get((topic, partition), offset))
    if held:
        log.warning("the id of topic %s cannot be read now: its %d partition(s) in this batch are read again "
                    "later, not written under an id that could change", ", ".join(sorted(unknown)), len(held))
    return known, held


class Assignment:
    """The partitions a consumer's group gave it, as its rebalance listener saw them; readable from any thread.

    ``count`` grows by one with each assignment; ``moving`` is True between a revocation and the
    assignment that follows. :meth:`kept_since` tells which partitions kept their read position
    through every assignment since a count, so a batch read ahead before a rebalance can be
    written only for those (the others are read again, from their committed offsets, by their
    owner).

    >>> a = Assignment()
    >>> a.assigned([("flows", 0), ("flows", 1)], keeps_positions=True); before = a.count
    >>> a.revoked(); a.assigned([("flows", 1)], keeps_positions=True)
    >>> sorted(a.kept_since(before)), a.kept_since(a.count) is None
    ([('flows', 1)], True)
    >>> a.lost(); a.assigned([("flows", 1)], keeps_positions=True); a.kept_since(before)
    frozenset()
    """

    def __init__(self) -> None:
        self.count = 0
        self.moving = False
        self._owned: frozenset[tuple[str, int]] = frozenset()
        self._kept: dict[int, frozenset[tuple[str, int]]] = {}

    @property
    def owned(self) -> frozenset[tuple[str, int]]:
        """The ``(topic, partition)`` pairs assigned now (none after a lost membership, until the next assignment)."""
        return self._owned

    def revoked(self) -> None:
        self.moving = True

    def lost(self) -> None:
        """Membership lost: every partition's position is dropped."""
        self.moving = True
        if self._owned:
            log.info("lost the group membership: partitions %s go back to the group", _names(self._owned))
        self._owned = frozenset()

    def assigned(self, partitions: Sequence[tuple[str, int]], keeps_positions: bool) -> None:
        """The new assignment; ``keeps_positions``: partitions owned before and after keep their read position."""
        new = frozenset(partitions)
        kept = (self._owned & new) if keeps_positions else frozenset()
        self._owned = new
        self._kept[self.count + 1] = kept
        self._kept.pop(self.count - 64, None)
        self.count += 1
        self.moving = False
        log.info("assignment %d: partitions %s", self.count, _names(new) or "none")

    def kept_since(self, count: int) -> frozenset[tuple[str, int]] | None:
        """Partitions whose read position survived every assignment after ``count`` (None: no assignment since)."""
        if count >= self.count:
            return None
        kept: frozenset[tuple[str, int]] | None = None
        for n in range(count + 1, self.count + 1):
            step = self._kept.get(n, frozenset())
            kept = step if kept is None else kept & step
        return kept


def _names(partitions: frozenset[tuple[str, int]]) -> str:
    return ", ".join(f"{topic}-{partition}" for topic, partition in sorted(partitions))


#: ``{(topic, partition): offset}``: a group's committed offsets, or the partitions' end offsets
Offsets = Mapping[tuple[str, int], int]


class GroupBacklog:
    """Whether records wait for a consumer's group, as seen by a member that holds no partition.

    Such a member (not joined yet, between assignments, or given nothing) cannot tell from its own
    positions whether the stream has gone quiet; the group's committed offsets against the
    partitions' ends can. :meth:`check` reads them (through ``read``, at most every ``check_s``
    seconds) and answers True when nothing waits for the group, None when records wait, when no
    partition of the topics is known yet, or when the cluster does not answer. :attr:`stalled`
    turns True once records have waited (or no partition was known) for ``stall_s`` seconds with
    the committed offsets standing still: nobody reads them.

    >>> ends = {("flows", 0): 9}
    >>> b = GroupBacklog(check_s=0, stall_s=30)
    >>> b.check(lambda: ({("flows", 0): 9}, ends), now=0.0), b.stalled
    (True, False)
    >>> b.check(lambda: ({("flows", 0): 4}, ends), now=1.0), b.stalled
    (None, False)
    >>> b.check(lambda: ({("flows", 0): 4}, ends), now=31.0), b.stalled, b.waiting
    (None, True, 5)
    >>> b.check(lambda: None, now=32.0), b.stalled  # the cluster does not answer: no new verdict
    (None, True)
    >>> b.reset(); b.check(lambda: ({}, {}), now=40.0), b.check(lambda: ({}, {}), now=70.0), b.stalled
    (None, None, True)
    """

    def __init__(self, check_s: float, stall_s: float) -> None:
        self.check_s, self.stall_s = check_s, stall_s
        #: the last answer of :meth:`check`, and how many records waited at that check
        self.idle: bool | None = None
        self.waiting = 0
        self._next = 0.0
        self._committed: tuple | None = None  # the committed offsets records wait behind, and since when
        self._since = 0.0
        self._now = 0.0

    def check(self, read: Callable[[], tuple[Offsets, Offsets] | None], now: float) -> bool | None:
        """True when no record waits for the group (committed at the end everywhere), else None."""
        if now < self._next:
            return self.idle
        self._next = now + self.check_s
        got = read()
        if got is None:  # no answer: waiting for the cluster is neither idleness nor a stall
            self.idle = None
            return None
        committed, ends = got
        self._now = now
        self.waiting = sum(max(0, ends.get(tp, 0) - offset) for tp, offset in committed.items())
        if committed and not self.waiting:
            self.idle, self._committed = True, None
            return True
        key = tuple(sorted(committed.items()))  # () while no partition is known: standing still too
        if key != self._committed:
            self._committed, self._since = key, now
        self.idle = None
        return None

    @property
    def stalled(self) -> bool:
        """Records wait and the group's committed offsets have not moved for ``stall_s`` seconds."""
        return self._committed is not None and self._now - self._since >= self.stall_s

    def reset(self) -> None:
        """Forget what was seen (the consumer was given partitions, or joins again)."""
        self.idle, self.waiting, self._committed, self._next = None, 0, None, 0.0
