"""Logging that never shows a secret, at any verbosity.

Secrets (Kafka passwords, the password in a store URL, a local broker's generated login) are
registered with :func:`register_secret` when kstream reads them. From the first registration
on, every log record this process creates, whoever logs it (kstream, kafka-python's DEBUG
dump of its configuration, a notebook's own logger), has each registered secret replaced by
``***`` before any handler sees it. :func:`configure` sets up the CLI's console logging.

>>> import logging
>>> register_secret("hunter2-example")
>>> record = logging.getLogger("demo").makeRecord("demo", logging.INFO, __file__, 1,
...                                               "config %s", ({"sasl_plain_password": "hunter2-example"},), None)
>>> record.getMessage()
"config {'sasl_plain_password': '***'}"
"""

from __future__ import annotations

import logging
import threading

__all__ = ["register_secret", "redact_text", "configure"]

_SECRETS: set[str] = set()
_LOCK = threading.Lock()
_INSTALLED = False
MIN_SECRET_LENGTH = 3  # shorter values would redact ordinary words


def redact_text(text: str) -> str:
    """``text`` with every registered secret replaced by ``***``."""
    for secret in sorted(_SECRETS, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, "***")
    return text


def register_secret(value: object) -> None:
    """Never log ``value`` (its text) from now on; values shorter than 3 characters are ignored."""
    global _INSTALLED
    text = "" if value is None else str(value)
    if len(text) < MIN_SECRET_LENGTH:
        return
    with _LOCK:
        _SECRETS.add(text)
        if not _INSTALLED:
            _install()
            _INSTALLED = True


def _install() -> None:
    previous = logging.getLogRecordFactory()

    def factory(*args, **kwargs) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        if _SECRETS:
            try:
                message = record.getMessage()
            except Exception:  # noqa: BLE001 - a malformed record is the logging module's to report
                return record
            clean = redact_text(message)
            if clean != message:
                record.msg, record.args = clean, None
        return record

    logging.setLogRecordFactory(factory)


def configure(verbose: bool = False, quiet: bool = False) -> None:
    """Console logging for the CLI: INFO (DEBUG with ``verbose``, WARNING with ``quiet``).

    kafka-python's own records show only with ``verbose`` (it logs every failed connection attempt;
    kstream's errors say it once, clearly).
    """
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("kafka").setLevel(logging.DEBUG if verbose else logging.CRITICAL)
