"""Crash points for fault-injection tests: a detector that kills or freezes itself at one step of one batch.

``KSTREAM_CRASH_AT=<point>:<batch>`` (points ``after-labels``: labels stored but not the prequential windows they
closed; ``after-store``, ``after-publish``, ``after-commit``) makes the detector kill itself with SIGKILL at that
step of that batch (1 = the first);
``<point>:<batch>:stop`` freezes it there with SIGSTOP instead, until a SIGCONT (a hung process
whose partitions the group gives to another detector). Read once at the edge (where detectors are
built) and passed to :class:`~kstream.detector.loop.Detector` as ``crash_at``.
"""

from __future__ import annotations

import os
import signal
from typing import NamedTuple

from kstream.errors import ConfigError

__all__ = ["CRASH_POINTS", "CrashPoint", "crash_point_from_env"]

CRASH_POINTS = ("after-labels", "after-store", "after-publish", "after-commit")
_CRASH_SIGNALS = {"kill": signal.SIGKILL, "stop": signal.SIGSTOP}


class CrashPoint(NamedTuple):
    """Where a detector signals itself, for fault-injection tests: at ``point`` of batch ``batch`` (1 = the first)."""

    point: str
    batch: int
    signum: int = signal.SIGKILL


def crash_point_from_env(environ: dict[str, str] | None = None) -> CrashPoint | None:
    """``KSTREAM_CRASH_AT=<point>:<batch>[:kill|stop]`` (None when unset); for fault-injection tests.

    >>> crash_point_from_env({"KSTREAM_CRASH_AT": "after-store:3"})[:2]
    ('after-store', 3)
    >>> crash_point_from_env({"KSTREAM_CRASH_AT": "after-commit:1:stop"}).signum.name
    'SIGSTOP'
    """
    text = (os.environ if environ is None else environ).get("KSTREAM_CRASH_AT", "")
    if not text:
        return None
    point, batch, how, *rest = text.split(":") + ["", "kill"][text.count(":"):]
    if point not in CRASH_POINTS or not batch.isdigit() or int(batch) < 1 or how not in _CRASH_SIGNALS or rest:
        raise ConfigError(f"KSTREAM_CRASH_AT={text!r} must be <point>:<batch>[:kill|stop] with point one of "
                          f"{', '.join(CRASH_POINTS)}")
    return CrashPoint(point, int(batch), _CRASH_SIGNALS[how])
