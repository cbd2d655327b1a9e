"""SCRAM logins of a secured local broker: the credentials a client uses, and the salted form Kafka stores.

>>> arg = scram_arg("kstream", "s3cret")
>>> arg.startswith("SCRAM-SHA-512=[name=kstream,iterations=8192,salt=") and "s3cret" not in arg
True
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from kstream import logs
from kstream.errors import BrokerError

__all__ = ["SCRAM_MECHANISM", "Credentials", "scram_arg"]

SCRAM_MECHANISM = "SCRAM-SHA-512"
_SCRAM_ITERATIONS = 8192


@dataclass(frozen=True)
class Credentials:
    """The SCRAM user of a SASL local broker; ``repr`` never shows the password.

    >>> creds = Credentials("kstream", "s3cret")
    >>> creds
    Credentials(username='kstream', mechanism='SCRAM-SHA-512', security_protocol='SASL_PLAINTEXT')
    >>> sorted(creds.client_options())
    ['sasl_mechanism', 'sasl_plain_password', 'sasl_plain_username', 'security_protocol']
    """

    username: str
    password: str = field(repr=False)
    mechanism: str = SCRAM_MECHANISM
    security_protocol: str = "SASL_PLAINTEXT"

    def __post_init__(self) -> None:
        logs.register_secret(self.password)  # whoever logs these options, the password shows as ***

    def client_options(self) -> dict[str, str]:
        """kafka-python client options (producer, consumer, admin) that log in as this user."""
        return {
            "security_protocol": self.security_protocol,
            "sasl_mechanism": self.mechanism,
            "sasl_plain_username": self.username,
            "sasl_plain_password": self.password,
        }

    @classmethod
    def load(cls, path: str | Path) -> Credentials:
        """Read a ``credentials.json`` written by a SASL LocalBroker."""
        try:
            return cls(**json.loads(Path(path).read_text()))
        except (OSError, ValueError, TypeError) as err:
            raise BrokerError(f"cannot read the local broker's login from {path}; "
                              "remove its data folder to start afresh") from err


def scram_arg(user: str, password: str) -> str:
    """StorageTool's --add-scram value, salted here so the password itself never appears in a command line."""
    salt = secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, _SCRAM_ITERATIONS)
    b64 = base64.b64encode
    return (f'{SCRAM_MECHANISM}=[name={user},iterations={_SCRAM_ITERATIONS},'
            f'salt="{b64(salt).decode()}",saltedpassword="{b64(salted).decode()}"]')
