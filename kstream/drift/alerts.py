"""Alert rules on drift windows: ``metric op threshold``, and the alerts they raise with the window's evidence.

>>> from kstream.drift.monitor import WindowResult
>>> w = WindowResult(0, 0, 1, 500, {}, [], 0.0, 0.0, 0.97, 0.99, None, {}, True, False, [])
>>> [a.rule for a in check_alerts([AlertRule.parse("attack_rate > 0.9")], [w])]
['attack_rate > 0.9']
"""

from __future__ import annotations

import operator
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from kstream.drift.monitor import WindowResult
from kstream.errors import ConfigError

__all__ = ["METRICS", "Alert", "AlertRule", "check_alerts", "parse_rules"]

_OPS = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}
METRICS = ("attack_rate", "mean_score", "share_drifting", "max_psi", "score_psi")


@dataclass(frozen=True)
class Alert:
    """A rule that fired on a window, with the window's evidence (``WindowResult.to_dict``)."""

    rule: str
    metric: str
    value: float
    threshold: float
    window_index: int
    start_ns: int
    end_ns: int
    records: int
    evidence: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class AlertRule:
    """``metric op threshold`` on a window of at least ``min_records`` records.

    ``metric`` is one of ``attack_rate``, ``mean_score``, ``share_drifting``, ``max_psi``,
    ``score_psi``; ``op`` one of ``>``, ``>=``, ``<``, ``<=``.

    >>> rule = AlertRule.parse("attack_rate > 0.5", min_records=100)
    >>> rule.metric, rule.op, rule.threshold
    ('attack_rate', '>', 0.5)
    """

    metric: str
    op: str
    threshold: float
    min_records: int = 200

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise ConfigError(f"unknown alert metric {self.metric!r}; choose one of: {', '.join(METRICS)}")
        if self.op not in _OPS:
            raise ConfigError(f"unknown alert comparison {self.op!r}; choose one of: {', '.join(_OPS)}")

    @classmethod
    def parse(cls, text: str, min_records: int = 200) -> AlertRule:
        """A rule from ``"metric op number"``, e.g. ``"mean_score < 0.8"``."""
        found = re.fullmatch(r"\s*(\w+)\s*(>=|<=|>|<)\s*([-+0-9.eE]+)\s*", text)
        if not found:
            raise ConfigError(
                f"cannot read alert rule {text!r}; write it as 'metric > number', e.g. 'mean_score < 0.8'"
            )
        try:
            threshold = float(found.group(3))
        except ValueError as err:
            raise ConfigError(f"alert rule {text!r} needs a number after {found.group(2)!r}") from err
        return cls(found.group(1), found.group(2), threshold, min_records)

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.threshold:g}"

    def check(self, window: WindowResult) -> Alert | None:
        """The alert this rule raises on ``window``, or None."""
        value = getattr(window, self.metric)
        if window.records < self.min_records or value is None or not _OPS[self.op](value, self.threshold):
            return None
        return Alert(str(self), self.metric, float(value), self.threshold, window.index, window.start_ns,
                     window.end_ns, window.records, window.to_dict())  # fmt: skip


def check_alerts(rules: Sequence[AlertRule], windows: Sequence[WindowResult]) -> list[Alert]:
    """Every alert the ``rules`` raise on ``windows``, window by window.

    >>> w = WindowResult(0, 0, 1, 500, {}, [], 0.0, 0.0, 0.97, 0.99, None, {}, True, False, [])
    >>> [a.rule for a in check_alerts([AlertRule.parse("attack_rate > 0.9")], [w])]
    ['attack_rate > 0.9']
    """
    return [alert for w in windows for rule in rules if (alert := rule.check(w)) is not None]


def parse_rules(texts: str | Sequence[str] | None, min_records: int = 200) -> list[AlertRule]:
    """Rules from ``"metric op number"`` texts: a list, or one text with rules separated by ``;``
    (as ``KSTREAM_ALERTS`` holds them); empty ones are skipped.

    >>> [str(r) for r in parse_rules("attack_rate > 0.5; mean_score < 0.8")]
    ['attack_rate > 0.5', 'mean_score < 0.8']
    """
    if not texts:
        return []
    items = texts.split(";") if isinstance(texts, str) else [t for text in texts for t in str(text).split(";")]
    return [AlertRule.parse(t, min_records) for t in items if t.strip()]
