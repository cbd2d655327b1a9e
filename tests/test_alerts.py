"""Alert rules on drift windows: parsing, firing with evidence, errors that name the fix."""

from __future__ import annotations

import json

import pytest

from kstream.drift.alerts import Alert, AlertRule, check_alerts, parse_rules
from kstream.drift.monitor import WindowResult
from kstream.errors import ConfigError

# --- alerts ---------------------------------------------------------------------------------


def _window(records: int = 500, attack_rate: float | None = 0.95, mean_score: float | None = 0.7) -> WindowResult:
    return WindowResult(3, 10, 20, records, {"x": 0.3}, ["x"], 1.0, 0.3, attack_rate, mean_score, 0.01, {}, True,
                        True, ["drift"])  # fmt: skip


def test_alert_rule_fires_with_evidence():
    alert = AlertRule.parse("attack_rate > 0.9").check(_window())
    assert isinstance(alert, Alert)
    assert (alert.rule, alert.value, alert.window_index, alert.records) == ("attack_rate > 0.9", 0.95, 3, 500)
    assert alert.evidence["psi_top"] == {"x": 0.3}
    assert json.loads(json.dumps(alert.to_dict()))["metric"] == "attack_rate"
    assert AlertRule.parse("mean_score<0.8").check(_window()) is not None
    assert AlertRule.parse("mean_score >= 0.8").check(_window()) is None


def test_alert_rule_needs_enough_records_and_a_value():
    rule = AlertRule.parse("attack_rate > 0.5", min_records=1000)
    assert rule.check(_window(records=999)) is None and rule.check(_window(records=1000)) is not None
    assert AlertRule.parse("attack_rate > 0.5").check(_window(attack_rate=None)) is None


def test_alert_rule_errors_name_the_fix():
    with pytest.raises(ConfigError, match="choose one of: attack_rate"):
        AlertRule.parse("accuracy > 0.5")
    with pytest.raises(ConfigError, match="write it as"):
        AlertRule.parse("attack_rate is high")
    with pytest.raises(ConfigError, match="choose one of: >"):
        AlertRule("attack_rate", "=", 0.5)


def test_check_alerts_over_windows_and_rules():
    rules = [AlertRule.parse("attack_rate > 0.9"), AlertRule.parse("mean_score < 0.5")]
    alerts = check_alerts(rules, [_window(), _window(attack_rate=0.1, mean_score=0.4), _window(attack_rate=0.5)])
    assert [a.rule for a in alerts] == ["attack_rate > 0.9", "mean_score < 0.5"]



def test_parse_rules_reads_lists_and_semicolons():
    assert [str(r) for r in parse_rules(["attack_rate > 0.5", "mean_score<0.8; max_psi >= 1"])] == [
        "attack_rate > 0.5", "mean_score < 0.8", "max_psi >= 1"]
    assert parse_rules("") == [] and parse_rules(None) == [] and parse_rules(" ; ") == []
    with pytest.raises(ConfigError, match="write it as"):
        parse_rules("attack_rate > 0.5; nonsense")
