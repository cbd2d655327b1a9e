"""Kafka client options: which may be passed through, and what type a value written as text takes.

Options the delivery guarantee rests on (:data:`PROTECTED`) cannot be passed through; option
values written as text take the type the client expects (:func:`coerce_option`), so a numeric
password stays a string.

>>> coerce_options({"linger_ms": "5", "sasl_plain_password": "123456", "check_crcs": "false"})
{'linger_ms': 5, 'sasl_plain_password': '123456', 'check_crcs': False}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kafka

from kstream.errors import ConfigError

__all__ = ["PROTECTED", "check_options", "coerce_option", "coerce_options", "option_name"]

#: Options kstream sets itself because the delivery guarantee rests on them, and why.
PROTECTED = {
    "bootstrap_servers": "pass the cluster as --bootstrap or KSTREAM_BOOTSTRAP",
    "group_id": "pass the consumer group as --group or KSTREAM_GROUP",
    "enable_auto_commit": "the detector commits offsets itself, only after its outputs are stored and acknowledged",
    "auto_offset_reset": "a new detector group reads its topic from the start, so no record is skipped",
    "isolation_level": "the detector reads every record the generator wrote",
    "acks": "every publish waits for all in-sync replicas (acks=all) before any offset is committed",
    "delivery_timeout_ms": "unacknowledged records are retried until --outage-timeout (KSTREAM_OUTAGE_TIMEOUT_S); "
                           "a kafka-python producer whose record expires sends nothing ever again",
    "partition_assignment_strategy": "the detector relies on eager rebalancing: a revoked partition is read again "
                                     "from its committed offset",
    "key_serializer": "kstream encodes records itself",
    "value_serializer": "kstream encodes records itself",
    "key_deserializer": "kstream decodes records itself",
    "value_deserializer": "kstream decodes records itself",
}
_NUMERIC_NONE_DEFAULTS = {"receive_buffer_bytes": int, "send_buffer_bytes": int}
_TEXT_TYPES = (str, type(None))


def _defaults() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for client in (kafka.KafkaProducer, kafka.KafkaConsumer, kafka.KafkaAdminClient):
        for name, value in client.DEFAULT_CONFIG.items():
            out.setdefault(name, value)
    return out


_DEFAULTS = _defaults()


def check_options(options: Mapping[str, Any]) -> None:
    """Refuse client options no Kafka client knows, and those kstream must set itself.

    >>> check_options({"linger_ms": 5, "fetch_max_wait_ms": 100})
    >>> check_options({"lingr_ms": 5})  # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
    ...
    kstream.errors.ConfigError: bad Kafka client option: 'lingr_ms' is not a kafka-python client option (e.g. linger_ms,
        security_protocol, sasl_mechanism)
    >>> check_options({"enable_auto_commit": True})  # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
    ...
    kstream.errors.ConfigError: Kafka option 'enable_auto_commit' cannot be set: the detector commits offsets itself,
        only after its outputs are stored and acknowledged
    """
    for key in options:
        if key in PROTECTED:
            raise ConfigError(f"Kafka option {key!r} cannot be set: {PROTECTED[key]}")
        if key not in _DEFAULTS:
            raise ConfigError(
                f"bad Kafka client option: {key!r} is not a kafka-python client option "
                "(e.g. linger_ms, security_protocol, sasl_mechanism)"
            )


def option_name(text: str) -> str:
    """An option name as kafka-python spells it: lower case, ``_`` for ``.`` and ``-``.

    >>> option_name("SECURITY_PROTOCOL"), option_name("linger.ms")
    ('security_protocol', 'linger_ms')
    """
    return text.strip().lower().replace("-", "_").replace(".", "_")


def coerce_option(name: str, text: str) -> Any:
    """An option value written as text, in the type the client expects (from its default value).

    Whole numbers, decimals and true/false for numeric and boolean options; text as written for
    the rest (a password of digits stays a string).

    >>> coerce_option("request_timeout_ms", "40000"), coerce_option("security_protocol", "SASL_SSL")
    (40000, 'SASL_SSL')
    >>> coerce_option("linger_ms", "soon")
    Traceback (most recent call last):
    ...
    kstream.errors.ConfigError: Kafka option 'linger_ms' takes a whole number, not 'soon'
    """
    check_options({name: None})
    default = _DEFAULTS[name]
    text = str(text).strip()
    want = _NUMERIC_NONE_DEFAULTS.get(name) or type(default)
    if want is bool:
        if text.lower() not in ("true", "false"):
            raise ConfigError(f"Kafka option {name!r} takes true or false, not {text!r}")
        return text.lower() == "true"
    if want is int:
        try:
            return int(text)
        except ValueError:
            raise ConfigError(f"Kafka option {name!r} takes a whole number, not {text!r}") from None
    if want is float:
        try:
            return float(text)
        except ValueError:
            raise ConfigError(f"Kafka option {name!r} takes a number, not {text!r}") from None
    if isinstance(default, _TEXT_TYPES):
        return text
    raise ConfigError(f"Kafka option {name!r} takes a Python object; set it through the Python API, not as text")


def coerce_options(options: Mapping[str, str]) -> dict[str, Any]:
    """:func:`coerce_option` over a mapping of option name -> text."""
    return {name: coerce_option(name, value) for name, value in options.items()}
