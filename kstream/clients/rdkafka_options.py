"""librdkafka client options (the confluent backend): which may be passed through, checked by librdkafka itself.

librdkafka names its options with dots (``linger.ms``, ``security.protocol``) and takes every value
as text, so a value is kept as written (a password of digits stays text) and checked by building a
client configuration with it, with no broker: librdkafka refuses an unknown name or a bad value,
which becomes one :class:`~kstream.errors.ConfigError` line. The options the delivery guarantee
rests on (:data:`PROTECTED`) cannot be passed through, as on the kafka-python backend.

>>> option_name("SASL_USERNAME"), option_name("linger-ms")
('sasl.username', 'linger.ms')
>>> check_options({"linger.ms": "5", "fetch.wait.max.ms": "10"})
>>> check_options({"lingr.ms": "5"})  # doctest: +NORMALIZE_WHITESPACE
Traceback (most recent call last):
...
kstream.errors.ConfigError: bad Kafka client option: 'lingr.ms' is not a librdkafka option (e.g. linger.ms,
    security.protocol, sasl.mechanism, sasl.username)
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from typing import Any

import confluent_kafka

from kstream.errors import ConfigError

__all__ = ["PROTECTED", "check_options", "coerce_option", "coerce_options", "option_name", "role",
           "from_kafka_python"]

#: Options kstream sets itself because the delivery guarantee rests on them, and why (librdkafka names).
PROTECTED = {
    "bootstrap.servers": "pass the cluster as --bootstrap or KSTREAM_BOOTSTRAP",
    "metadata.broker.list": "pass the cluster as --bootstrap or KSTREAM_BOOTSTRAP",
    "group.id": "pass the consumer group as --group or KSTREAM_GROUP",
    "enable.auto.commit": "the detector commits offsets itself, only after its outputs are stored and acknowledged",
    "enable.auto.offset.store": "the detector commits explicit offsets, only after its outputs are stored and "
                                "acknowledged",
    "auto.offset.reset": "a new detector group reads its topic from the start, so no record is skipped",
    "isolation.level": "the detector reads every record the generator wrote",
    "acks": "every publish waits for all in-sync replicas (acks=all) before any offset is committed",
    "request.required.acks": "every publish waits for all in-sync replicas (acks=all) before any offset is committed",
    "enable.idempotence": "a record sent again after a lost acknowledgement must not be written twice",
    "message.timeout.ms": "unacknowledged records are retried until --outage-timeout (KSTREAM_OUTAGE_TIMEOUT_S)",
    "delivery.timeout.ms": "unacknowledged records are retried until --outage-timeout (KSTREAM_OUTAGE_TIMEOUT_S)",
    "on_delivery": "kstream checks every acknowledgement itself",
    "enable.partition.eof": "the detector reads partitions without end-of-partition events",
    "partition.assignment.strategy": "the detector relies on eager rebalancing: a revoked partition is read again "
                                     "from its committed offset",
    "group.protocol": "the detector relies on the classic group protocol's eager rebalancing",
}
#: kafka-python names of the connection options kstream writes itself (a local SASL broker's login), in librdkafka's.
_FROM_KAFKA_PYTHON = {
    "security_protocol": "security.protocol",
    "sasl_mechanism": "sasl.mechanism",
    "sasl_plain_username": "sasl.username",
    "sasl_plain_password": "sasl.password",
    "ssl_cafile": "ssl.ca.location",
    "ssl_certfile": "ssl.certificate.location",
    "ssl_keyfile": "ssl.key.location",
    "ssl_password": "ssl.key.password",
}
_EXAMPLES = "e.g. linger.ms, security.protocol, sasl.mechanism, sasl.username"


def option_name(text: str) -> str:
    """An option name as librdkafka spells it: lower case, dots for ``_`` and ``-`` (from the environment)."""
    return text.strip().lower().replace("_", ".").replace("-", ".")


class _Warnings(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@functools.lru_cache(maxsize=512)
def _probe(*items: tuple[str, str]) -> tuple[str | None, str]:
    """(the error librdkafka gives for a configuration of these ``(name, value)`` items, or None; the role
    it reports for them: ``consumer`` when a producer ignores one of them, else '')."""
    handler = _Warnings()
    logger = logging.getLogger(f"kstream.clients.rdkafka-probe.{id(handler)}")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        client = confluent_kafka.Producer({**dict(items), "logger": logger})  # no bootstrap: no network
        client.poll(0)  # delivers librdkafka's configuration warnings to the logger
    except (confluent_kafka.KafkaException, TypeError, ValueError) as err:
        error = err.args[0] if err.args else err
        return (error.str() if hasattr(error, "str") else str(error)), ""
    finally:
        logger.removeHandler(handler)
    consumer_only = any("is a consumer property" in m for m in handler.messages)
    return None, "consumer" if consumer_only else ""


def check_options(options: Mapping[str, Any]) -> None:
    """Refuse options librdkafka does not know (or whose value it refuses), and those kstream must set itself.

    >>> check_options({"enable.auto.commit": "true"})  # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
    ...
    kstream.errors.ConfigError: Kafka option 'enable.auto.commit' cannot be set: the detector commits offsets itself,
        only after its outputs are stored and acknowledged
    >>> check_options({"linger.ms": "soon"})  # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
    ...
    kstream.errors.ConfigError: bad Kafka client option: linger.ms='soon' is refused by librdkafka (Invalid value for
        configuration property "queue.buffering.max.ms")
    """
    for key in options:
        if key in PROTECTED:
            raise ConfigError(f"Kafka option {key!r} cannot be set: {PROTECTED[key]}")
        if not isinstance(key, str) or key.endswith("_cb") or key == "logger":
            raise ConfigError(f"bad Kafka client option: {key!r} takes a Python object; set it through the Python API")
    items = tuple(sorted((k, _text(v)) for k, v in options.items()))
    together = _probe(*items)[0]
    if together is None:
        return
    for key, value in items:  # which one librdkafka refuses on its own, if one does
        _check_one(key, value)
    raise ConfigError(f"bad Kafka client options: librdkafka refuses them together ({together})")


def _check_one(key: str, value: str) -> None:
    """Refuse an unknown name or a value librdkafka refuses whatever the other options are."""
    if key in PROTECTED:
        raise ConfigError(f"Kafka option {key!r} cannot be set: {PROTECTED[key]}")
    error = _probe((key, value))[0]
    if error is None or not ("No such configuration property" in error or "Invalid value" in error):
        return
    if "No such configuration property" in error:
        raise ConfigError(f"bad Kafka client option: {key!r} is not a librdkafka option ({_EXAMPLES})")
    shown = "***" if any(w in key for w in ("password", "secret", "token", "key")) else repr(value)
    raise ConfigError(f"bad Kafka client option: {key}={shown} is refused by librdkafka ({error})")


def role(name: str, value: Any) -> str:
    """``consumer`` for an option only consumers take (librdkafka warns when a producer gets one), else ``''``.

    >>> role("fetch.wait.max.ms", "10"), role("linger.ms", "5")
    ('consumer', '')
    """
    return _probe((name, _text(value)))[1]


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def coerce_option(name: str, text: str) -> str:
    """An option value written as text, as librdkafka takes it: text (checked by librdkafka).

    >>> coerce_option("sasl.password", "007"), coerce_option("linger.ms", " 5 ")
    ('007', '5')
    """
    value = str(text).strip()
    _check_one(name, value)  # the options together are checked by check_options
    return value


def coerce_options(options: Mapping[str, str]) -> dict[str, str]:
    """:func:`coerce_option` over a mapping of option name -> text."""
    return {name: coerce_option(name, value) for name, value in options.items()}


def from_kafka_python(options: Mapping[str, Any]) -> dict[str, str]:
    """The connection options of a local broker (kafka-python names) in librdkafka's names.

    >>> from_kafka_python({"security_protocol": "SASL_PLAINTEXT", "sasl_plain_username": "kstream"})
    {'security.protocol': 'SASL_PLAINTEXT', 'sasl.username': 'kstream'}
    """
    return {_FROM_KAFKA_PYTHON.get(k, k): _text(v) for k, v in options.items()}
