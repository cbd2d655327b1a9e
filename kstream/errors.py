"""The few named errors kstream raises.

Every error that reaches a user is a :class:`KstreamError`; its message is one
line that says what went wrong and what to do about it. The CLI prints that
line and exits non-zero, without a traceback.

>>> try:
...     raise ConfigError("unknown model 'svm'; choose one of: decision-tree")
... except KstreamError as err:
...     print(err)
unknown model 'svm'; choose one of: decision-tree
"""

from __future__ import annotations

__all__ = ["KstreamError", "ConfigError", "BrokerError", "DataError", "ModelError", "StoreError"]


class KstreamError(Exception):
    """Root of every error kstream raises on purpose."""


class ConfigError(KstreamError):
    """A setting is unknown, malformed or contradicts another one."""


class BrokerError(KstreamError):
    """A local server (Kafka, the MongoDB-wire store server) cannot be provisioned, started or reached,
    or Kafka refuses or does not acknowledge what kstream sends."""


class DataError(KstreamError):
    """A dataset cannot be found or read."""


class ModelError(KstreamError):
    """A model artifact is missing, tampered with or unusable."""


class StoreError(KstreamError):
    """The results store cannot be opened or written."""
