"""A thin layer over the Kafka client library: kafka-python (the default) or confluent-kafka (librdkafka).

The generator, the detector and the tests talk to Kafka only through the names here:
:class:`Message`, :class:`Record`, and the protocols every backend satisfies (:mod:`kstream.clients.protocols`):
:class:`Producer`, :class:`Consumer`, and :class:`Backend` for a backend module with its
``Producer`` and ``Consumer`` classes, :func:`ensure_topics`, :func:`check_reachable`,
:func:`topic_max_message_bytes` and option helpers (``check_options``, ``coerce_option``, ``option_name``).
:func:`backend` gives the backend a name picks (:data:`BACKENDS`); the admin calls re-exported at this level
are kafka-python's, and its clients are ``backend("kafka-python").Producer`` and ``.Consumer``.

Both backends are held to the same delivery contract. Delivery is checked, never assumed:
``Producer.flush`` waits for the acknowledgement of every record sent since the last flush, sends
the failed ones again with backoff, and raises if they still fail when its deadline passes;
``Consumer.commit`` commits explicit offsets and tells a lost group membership (the batch will be
redelivered) from an unreachable cluster (retried). Topic ids read the same on both (Kafka's
URL-safe base64). The fault tests hold both to it with a detector killed at each step of a batch
and a broker killed and restarted; only kafka-python is tested under a frozen broker, a frozen
detector, a lost partition leader and store faults, so the confluent backend claims nothing there
(docs/reliability.md).

>>> from kstream.clients import Record, check_options
>>> check_options({"linger_ms": 5}); Record("flows", b"{}").topic
'flows'
>>> backend("confluent").option_name("LINGER_MS"), backend("kafka-python").option_name("LINGER_MS")
('linger.ms', 'linger_ms')
>>> isinstance(backend("confluent").Producer("127.0.0.1:9"), Producer)
True
"""

from __future__ import annotations

import importlib
from typing import cast

from kstream.clients.kafka_python import check_reachable, ensure_topics, topic_max_message_bytes
from kstream.clients.options import PROTECTED, check_options, coerce_option, coerce_options
from kstream.clients.protocols import Backend, Consumer, Producer
from kstream.clients.records import Message, Record, topic_id_text
from kstream.errors import ConfigError

__all__ = ["Message", "Record", "Producer", "Consumer", "Backend", "ensure_topics", "check_reachable", "check_options",
           "coerce_option", "coerce_options", "topic_max_message_bytes", "PROTECTED", "BACKENDS", "backend",
           "topic_id_text"]

#: Client backend name -> its module (imported on first use: confluent-kafka only when asked for).
BACKENDS = {"kafka-python": "kstream.clients.kafka_python", "confluent": "kstream.clients.confluent"}


def backend(name: str) -> Backend:
    """The client backend ``name`` picks: a :class:`Backend` module with ``Producer``, ``Consumer`` and the admin calls.

    >>> backend("kafka-python").Producer("127.0.0.1:9")
    Producer(bootstrap='127.0.0.1:9')
    >>> backend("librdkafka")
    Traceback (most recent call last):
    ...
    kstream.errors.ConfigError: unknown Kafka client 'librdkafka'; choose one of: kafka-python, confluent
    """
    if name not in BACKENDS:
        raise ConfigError(f"unknown Kafka client {name!r}; choose one of: {', '.join(BACKENDS)}")
    # both modules satisfy Backend (checked by mypy in tests/test_clients_protocols.py); a name chosen at run time
    # cannot be followed statically
    return cast(Backend, importlib.import_module(BACKENDS[name]))
