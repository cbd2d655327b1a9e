"""Settings: one precedence rule (CLI > environment > defaults), checked at the edge."""

import re
from pathlib import Path

import pytest

from kstream.data import datasets
from kstream.drift.reference import FeatureReference
from kstream.errors import ConfigError
from kstream.settings import Settings, parse_kafka_options


def test_cli_beats_environment_beats_defaults():
    env = {"MODEL": "decision-tree", "TASK_TYPE": "multi_class", "KSTREAM_TOPIC": "env-topic"}
    s = Settings.resolve({"model": "logistic-regressor", "topic": None}, env=env)
    assert s.model == "logistic-regressor"  # CLI wins
    assert s.task == "multi_class"  # environment (original docker.env name)
    assert s.topic == "env-topic"
    assert s.group == "kstream-detector"  # default


def test_kstream_names_win_over_original_names():
    env = {"KSTREAM_BOOTSTRAP": "a:1", "KAFKA_BROKER_URL": "b:2", "MODELS_CHECKPOINT": "/m"}
    s = Settings.resolve({}, env=env)
    assert s.bootstrap == "a:1"
    assert s.models_dir == Path("/m")


def test_split_mode_comes_from_the_option_or_the_environment_and_names_its_choices():
    assert Settings.resolve({}, env={}).split_mode == ""  # grouped to train, the card's to score
    assert Settings.resolve({}, env={"KSTREAM_SPLIT_MODE": "random"}).model_ref().split_mode == "random"
    assert Settings.resolve({"split_mode": "grouped"}, env={"KSTREAM_SPLIT_MODE": "random"}).split_mode == "grouped"
    with pytest.raises(ConfigError, match="unknown split mode 'days'; choose one of: grouped, random"):
        Settings.resolve({}, env={"KSTREAM_SPLIT_MODE": "days"})


def test_original_dataset_alias_resolves():
    assert Settings.resolve({}, env={"DATASET": "SELECTED_CICIDS"}).dataset == "cicids2017"


@pytest.mark.parametrize(
    "cli, words",
    [
        ({"dataset": "kdd99"}, "cicids2017"),
        ({"model": "svm"}, "logistic-regressor, decision-tree, random-forest"),
        ({"task": "regression"}, "binary_class, multi_class"),
        ({"store": "redis"}, "sqlite, mongodb"),
        ({"batch_size": "many"}, "whole number"),
        ({"partitions": -1}, r"0 \(automatic\) or a positive whole number"),
        ({"records": "-5"}, r"0 \(automatic\) or a positive whole number"),
    ],
)
def test_bad_values_fail_naming_the_choices(cli, words):
    with pytest.raises(ConfigError, match=words):
        Settings.resolve(cli, env={})


def test_kafka_options_pass_through_and_secrets_are_masked():
    env = {"KSTREAM_KAFKA_SASL_PLAIN_PASSWORD": "hunter2", "KSTREAM_KAFKA_LINGER_MS": "7"}
    s = Settings.resolve({"kafka_options": {"security_protocol": "SASL_SSL"}}, env=env)
    assert s.kafka_options == {"sasl_plain_password": "hunter2", "linger_ms": 7, "security_protocol": "SASL_SSL"}
    assert "hunter2" not in repr(s)


def test_kafka_option_syntax_error_is_clear():
    with pytest.raises(ConfigError, match="option=value"):
        parse_kafka_options(["linger_ms"])


def test_seed_and_level_come_from_the_environment_and_a_level_is_checked():
    s = Settings.resolve({}, env={"KSTREAM_SEED": "7", "KSTREAM_LEVEL": "grouped", "TASK_TYPE": "multi_class"})
    assert (s.seed, s.level) == (7, "grouped")
    assert s.model_ref().level == "grouped" and s.model_ref().seed == 7
    with pytest.raises(ConfigError, match="unknown label level 'fine' for cicids2017; choose one of: label, grouped"):
        Settings.resolve({"level": "fine"}, env={})


def test_without_a_level_the_model_follows_the_data():
    grouped_only = datasets.load("cicids2017", "csv-sample")
    s = Settings(task="multi_class")
    assert s.model_ref().level == "label"  # no data: the dataset's default
    assert s.model_ref(grouped_only).level == "grouped"
    assert s.model_ref(grouped_only).directory.name == "random-forest"
    assert s.model_ref(grouped_only).directory.parent.name == "multi_class-grouped"
    assert Settings(task="multi_class", level="label").model_ref(grouped_only).level == "label"  # asked for


@pytest.mark.parametrize("option", ["enable_auto_commit", "group_id", "auto_offset_reset", "acks", "isolation_level",
                                    "value_deserializer", "bootstrap_servers"])
def test_options_the_delivery_guarantee_rests_on_cannot_be_overridden(option):
    with pytest.raises(ConfigError, match=f"Kafka option '{option}' cannot be set: "):
        Settings.resolve({}, env={f"KSTREAM_KAFKA_{option.upper()}": "x"})
    with pytest.raises(ConfigError, match=f"Kafka option '{option}' cannot be set: "):
        Settings(kafka_options={option: "x"})


def test_option_values_keep_the_type_the_client_expects():
    env = {"KSTREAM_KAFKA_SASL_PLAIN_PASSWORD": "123456", "KSTREAM_KAFKA_SASL_PLAIN_USERNAME": "null",
           "KSTREAM_KAFKA_REQUEST_TIMEOUT_MS": "40000", "KSTREAM_KAFKA_CHECK_CRCS": "false"}
    s = Settings.resolve({"kafka_options": parse_kafka_options(["ssl_password=0.50"])}, env=env)
    assert s.kafka_options == {"sasl_plain_password": "123456", "sasl_plain_username": "null",
                               "request_timeout_ms": 40000, "check_crcs": False, "ssl_password": "0.50"}
    with pytest.raises(ConfigError, match="'linger_ms' takes a whole number, not 'soon'"):
        parse_kafka_options(["linger_ms=soon"])


@pytest.mark.parametrize("cli, words", [
    ({"dlq_topic": "flows"}, "dead-letter topic must differ from the flows topic 'flows'"),
    ({"predictions_topic": "flows"}, "predictions topic must differ"),
    ({"store_table": "select"}, "is an SQL keyword"),
    ({"store_table": "prédictions"}, "must be an ASCII identifier"),
    ({"store_table": "p; DROP TABLE x"}, "must be an ASCII identifier"),
])
def test_loops_and_unsafe_table_names_are_refused(cli, words):
    with pytest.raises(ConfigError, match=words):
        Settings.resolve(cli, env={})


def test_drift_settings_come_from_options_or_the_environment_and_are_checked():
    env = {"KSTREAM_DRIFT": "1", "KSTREAM_DRIFT_WINDOW": "250", "KSTREAM_DRIFT_WINDOW_S": "2.5",
           "KSTREAM_DRIFT_PSI": "0.3", "KSTREAM_DRIFT_SHARE": "0.2", "KSTREAM_ALERTS": "attack_rate > 0.5"}
    s = Settings.resolve({}, env=env)
    assert (s.drift, s.drift_window, s.drift_window_s, s.drift_psi, s.drift_share) == (True, 250, 2.5, 0.3, 0.2)
    assert [str(r) for r in s.alert_rules()] == ["attack_rate > 0.5"]
    cli = Settings.resolve({"drift": False, "drift_window": 100, "alerts": ["mean_score < 0.8", "max_psi > 1"]},
                           env=env)
    assert cli.drift is False and cli.drift_window == 100  # the command line wins
    assert cli.alerts == "mean_score < 0.8; max_psi > 1"
    assert Settings.resolve({}, env={}).drift is False and Settings().drift_topic == "flows.drift"
    monitor = s.drift_monitor(FeatureReference.fit([[0.0], [1.0]], ["x"]))
    assert monitor.window_records == 250 and monitor.window_ns == 2_500_000_000 and monitor.min_records == 200


@pytest.mark.parametrize(
    "env, words",
    [
        ({"KSTREAM_DRIFT": "maybe"}, "true or false"),
        ({"KSTREAM_DRIFT_WINDOW": "0"}, "positive whole number"),
        ({"KSTREAM_DRIFT_WINDOW_S": "-1"}, "drift_window_s"),
        ({"KSTREAM_DRIFT_PSI": "lots"}, "must be a number"),
        ({"KSTREAM_DRIFT_SHARE": "1.5"}, r"share in \(0, 1\]"),
        ({"KSTREAM_ALERTS": "accuracy > 0.5"}, "choose one of: attack_rate"),
        ({"KSTREAM_DRIFT_TOPIC": "flows"}, "must differ from the flows topic"),
    ],
)
def test_bad_drift_settings_fail_naming_the_fix(env, words):
    with pytest.raises(ConfigError, match=words):
        Settings.resolve({}, env=env)


def test_the_confluent_client_takes_librdkafka_names_from_the_environment_and_the_command_line():
    env = {"KSTREAM_CLIENT": "confluent", "KSTREAM_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
           "KSTREAM_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512", "KSTREAM_KAFKA_SASL_USERNAME": "kstream",
           "KSTREAM_KAFKA_SASL_PASSWORD": "0123456"}
    s = Settings.resolve({"kafka_options": {"linger.ms": "3"}}, env=env)
    assert s.client == "confluent" and s.kafka.__name__ == "kstream.clients.confluent"
    assert s.kafka_options == {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "SCRAM-SHA-512",
                               "sasl.username": "kstream", "sasl.password": "0123456", "linger.ms": "3"}
    assert s.redacted()["kafka_options"]["sasl.password"] == "***"


@pytest.mark.parametrize("options, words", [
    ({"lingr.ms": "5"}, "'lingr.ms' is not a librdkafka option"),
    ({"enable.auto.commit": "true"}, "cannot be set"),
    ({"group.id": "x"}, "--group"),
    ({"linger.ms": "soon"}, "refused by librdkafka"),
])
def test_the_confluent_client_refuses_unknown_and_protected_options_in_one_line(options, words):
    with pytest.raises(ConfigError, match=words):
        Settings.resolve({"client": "confluent", "kafka_options": options}, env={})


def test_an_unknown_client_is_refused_naming_the_choices():
    with pytest.raises(ConfigError, match="choose one of: kafka-python, confluent"):
        Settings.resolve({}, env={"KSTREAM_CLIENT": "librdkafka"})


@pytest.mark.parametrize("env, kind", [
    ({}, "sqlite"),
    ({"DB_URL": "mongodb://user:pw@db.example.org:27017/?authSource=admin"}, "mongodb"),
    ({"KSTREAM_STORE_URL": "mongodb+srv://cluster.example.org"}, "mongodb"),
    ({"DB_URL": "sqlite:///runs/p.sqlite"}, "sqlite"),
    ({"DB_URL": "runs/p.sqlite", "DATABASE": "sqlite"}, "sqlite"),
    ({"DB_URL": "mongodb://db.example.org", "DATABASE": "mongodb", "DB_NAME": "ost"}, "mongodb"),
])
def test_the_store_kind_follows_the_url(env, kind):
    assert Settings.resolve({}, env=env).store == kind


@pytest.mark.parametrize("cli, env, words", [
    ({"store_url": "mongodb://db.example.org"}, {"DATABASE": "sqlite"},
     "set to 'sqlite' (KSTREAM_STORE / DATABASE) but its URL is a mongodb one; unset the store"),
    ({"store_url": "p.sqlite"}, {"KSTREAM_STORE": "mongodb"}, "but its URL is a sqlite one"),
    ({}, {"DATABASE": "mongodb"}, "the MongoDB results store needs a mongodb:// URL"),
    ({"store_url": "redis://h"}, {}, "scheme 'redis://' is not one kstream writes to"),
])
def test_a_store_kind_that_contradicts_the_url_is_refused(cli, env, words):
    with pytest.raises(ConfigError, match=re.escape(words)):
        Settings.resolve(cli, env=env)


def test_a_record_count_and_partitions_come_from_the_option_or_the_environment():
    assert (Settings().records, Settings().partitions) == (0, 0)  # all records; one partition per detector
    s = Settings.resolve({"partitions": None}, env={"KSTREAM_RECORDS": "300", "KSTREAM_PARTITIONS": "3"})
    assert (s.records, s.partitions) == (300, 3)
    assert Settings.resolve({"records": 5}, env={"KSTREAM_RECORDS": "300"}).records == 5
    assert Settings.resolve({}, env={}).redacted()["records"] == 0
