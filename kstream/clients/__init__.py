"""A thin layer over the Kafka client library (kafka-python today).

The generator, the detector and the tests talk to Kafka only through the names here:
:class:`Message`, :class:`Record`, :class:`Producer`, :class:`Consumer`, :func:`ensure_topics`,
:func:`check_reachable` and the option helpers (:mod:`kstream.clients.options`).

Delivery is checked, never assumed: :meth:`Producer.flush` waits for the acknowledgement of every
record sent since the last flush, sends the failed ones again with backoff, and raises if they
still fail when its deadline passes; :meth:`Consumer.commit` commits explicit offsets and tells a
lost group membership (the batch will be redelivered) from an unreachable cluster (retried).

>>> from kstream.clients import Record, check_options
>>> check_options({"linger_ms": 5}); Record("flows", b"{}").topic
'flows'
"""

from kstream.clients.kafka_python import Consumer, Producer, check_reachable, ensure_topics, topic_max_message_bytes
from kstream.clients.options import PROTECTED, check_options, coerce_option, coerce_options
from kstream.clients.records import Message, Record

__all__ = ["Message", "Record", "Producer", "Consumer", "ensure_topics", "check_reachable", "check_options",
           "coerce_option", "coerce_options", "topic_max_message_bytes", "PROTECTED"]
