"""A real SASL/SCRAM-SHA-512 local broker: the generated login works, a wrong one does not, no secret leaks."""

from __future__ import annotations

import logging
import stat
import time

import kafka
import kafka.errors
import pytest

from kstream.clients import Record, backend, ensure_topics
from kstream.clients.kafka_python import Producer
from kstream.errors import BrokerError
from kstream.servers.broker import QUICK_START_JVM, LocalBroker
from kstream.servers.scram import Credentials

pytestmark = pytest.mark.kafka


@pytest.fixture(scope="module")
def secured():
    with LocalBroker(sasl=True, jvm_options=QUICK_START_JVM) as local:
        yield local


def test_credentials_are_random_and_kept_owner_readable_only(secured):
    creds = secured.credentials
    assert creds.username == "kstream" and len(creds.password) >= 24
    assert creds.password not in repr(creds) and creds.password not in repr(secured)
    assert Credentials.load(secured.credentials_path) == creds
    for path in (secured.credentials_path, secured.config_path()):  # the config holds the inter-broker login
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert secured.client_options() == {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "kstream",
        "sasl_plain_password": creds.password,
    }


def test_a_client_with_the_credentials_round_trips_a_record(secured):
    options = secured.client_options()
    ensure_topics(secured.bootstrap, {"secret-flows": 1}, options)
    with Producer(secured.bootstrap, options) as producer:
        producer.publish([Record("secret-flows", b'{"id": 1}', b"1")], deadline_s=30)
    consumer = kafka.KafkaConsumer("secret-flows", bootstrap_servers=secured.bootstrap, group_id=None,
                                   auto_offset_reset="earliest", **options)
    records, deadline = [], time.monotonic() + 30
    try:
        while not records and time.monotonic() < deadline:
            records = [r for batch in consumer.poll(timeout_ms=500).values() for r in batch]
    finally:
        consumer.close()
    assert [(r.key, r.value) for r in records] == [(b"1", b'{"id": 1}')]


def test_a_wrong_password_is_refused_as_an_authentication_failure(secured):
    wrong = {**secured.client_options(), "sasl_plain_password": "not-the-password"}
    refusals = failed_logins(secured)
    with pytest.raises(kafka.errors.KafkaError):
        kafka.KafkaAdminClient(bootstrap_servers=secured.bootstrap, bootstrap_timeout_ms=3000, **wrong)
    # kafka-python ends with a bootstrap timeout (it often loses the broker's error response to the
    # connection close that follows it); the broker says why it refused each attempt
    assert failed_logins(secured) > refusals


def failed_logins(broker: LocalBroker) -> int:
    text = broker.log_path.read_text(errors="replace")
    return text.count("invalid credentials with SASL mechanism SCRAM-SHA-512")


def test_a_client_without_sasl_gets_nothing(secured):
    with pytest.raises(kafka.errors.KafkaError):
        kafka.KafkaAdminClient(bootstrap_servers=secured.bootstrap, bootstrap_timeout_ms=3000)


def test_no_password_reaches_a_log(secured):
    secrets = [secured.credentials.password, *secured._internal.values()]
    logs = [p for p in secured.data_dir.rglob("*") if p.is_file() and p.parent.name == "logs"]
    assert logs and any(p.name == "server.log" for p in logs)
    for path in logs:
        text = path.read_text(errors="replace")
        assert not any(s in text for s in secrets), f"a password is written in {path}"


def test_the_confluent_backend_with_the_credentials_round_trips_a_record_and_logs_no_password(secured, caplog):
    kafka_ = backend("confluent")
    options = kafka_.from_kafka_python(secured.client_options())
    assert options["sasl.username"] == "kstream" and options["security.protocol"] == "SASL_PLAINTEXT"
    with caplog.at_level(logging.DEBUG):
        kafka_.ensure_topics(secured.bootstrap, {"secret-flows-rd": 1}, options)
        with kafka_.Producer(secured.bootstrap, options).connect() as producer:
            producer.publish([Record("secret-flows-rd", b'{"id": 2}', b"2")], deadline_s=30)
        with kafka_.Consumer(secured.bootstrap, ["secret-flows-rd"], "sasl-rd", options).connect() as consumer:
            records, deadline = [], time.monotonic() + 30
            while not records and time.monotonic() < deadline:
                records = consumer.poll(10, 500)
    assert [(m.key, m.value) for m in records] == [(b"2", b'{"id": 2}')]
    assert secured.credentials.password not in caplog.text


def test_the_confluent_backend_with_a_wrong_password_fails_in_one_line(secured):
    kafka_ = backend("confluent")
    wrong = {**kafka_.from_kafka_python(secured.client_options()), "sasl.password": "not-the-password"}
    with pytest.raises(BrokerError, match="check the SASL user name and password") as raised:
        kafka_.check_reachable(secured.bootstrap, wrong, timeout_ms=5000)
    assert "\n" not in str(raised.value) and "not-the-password" not in str(raised.value)
