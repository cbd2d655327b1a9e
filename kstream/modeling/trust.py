"""Which model artifacts kstream agrees to unpickle: integrity always, trust when asked.

A ``model.joblib`` is a pickle, and unpickling runs code. The sha256 on the card proves only
*integrity*: the file is the one the card describes, not truncated or swapped. Whoever can write
the models folder can write a matching card, so it proves nothing about who made it. Two
optional checks add *trust*, kept outside the models folder:

- an allowlist (``KSTREAM_TRUSTED_MODELS`` = a file of sha256 hashes, one per line, ``#``
  comments allowed): only listed artifacts load. It protects against any artifact you have not
  reviewed, at the cost of listing each new one.
- a key (``KSTREAM_MODEL_KEY``): training signs the card (HMAC-SHA256 over the card, which
  carries the artifact's sha256) and loading refuses a card without a valid signature. It
  protects against artifacts made by anyone who does not hold the key; keep the key out of the
  models folder, its repository and its logs (kstream never logs it).

>>> t = Trust(key=b"k3y-example")
>>> card = {"model": "decision-tree", "sha256": "ab" * 32}
>>> sig = t.sign(card)
>>> t.verify({**card, "signature": sig}, "m")
>>> t.verify({**card, "model": "random-forest", "signature": sig}, "m")  # doctest: +NORMALIZE_WHITESPACE
Traceback (most recent call last):
...
kstream.errors.ModelError: the card of m is not signed with KSTREAM_MODEL_KEY (or was changed after signing); refusing
    to unpickle it: retrain it with the key set
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kstream import logs
from kstream.errors import ConfigError, ModelError

__all__ = ["Trust"]

_HASH = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Trust:
    """The trust policy: an optional allowlist of sha256 hashes and an optional signing key."""

    allowlist: frozenset[str] | None = None
    allowlist_path: str = ""
    key: bytes | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Trust:
        """The policy ``KSTREAM_TRUSTED_MODELS`` and ``KSTREAM_MODEL_KEY`` name (none: integrity only)."""
        env = os.environ if environ is None else environ
        allowlist, path = None, env.get("KSTREAM_TRUSTED_MODELS", "")
        if path:
            try:
                lines = Path(path).expanduser().read_text().splitlines()
            except OSError as err:
                raise ConfigError(f"cannot read the model allowlist KSTREAM_TRUSTED_MODELS={path}: {err}") from None
            entries = [line.split("#", 1)[0].strip().lower() for line in lines]
            bad = [e for e in entries if e and not _HASH.fullmatch(e)]
            if bad:
                raise ConfigError(f"{path} must list sha256 hashes (64 hex digits), one per line; not {bad[0][:70]!r}")
            allowlist = frozenset(e for e in entries if e)
        key = env.get("KSTREAM_MODEL_KEY", "")
        if key:
            logs.register_secret(key)
        return cls(allowlist, path, key.encode() if key else None)

    def sign(self, card: Mapping[str, Any]) -> str:
        """The card's signature (empty without a key)."""
        if self.key is None:
            return ""
        body = json.dumps({k: v for k, v in card.items() if k != "signature"}, sort_keys=True, default=str)
        return hmac.new(self.key, body.encode(), hashlib.sha256).hexdigest()

    def verify(self, card: Mapping[str, Any], where: str) -> None:
        """Raise ModelError unless ``card`` (already checked against its artifact) passes the policy."""
        if self.allowlist is not None and str(card.get("sha256", "")).lower() not in self.allowlist:
            raise ModelError(f"{where} (sha256 {str(card.get('sha256', ''))[:12]}...) is not in the model allowlist "
                             f"{self.allowlist_path}; add its sha256 there once you trust where it came from")
        if self.key is not None and not hmac.compare_digest(str(card.get("signature", "")), self.sign(card)):
            raise ModelError(f"the card of {where} is not signed with KSTREAM_MODEL_KEY (or was changed after "
                             "signing); refusing to unpickle it: retrain it with the key set")
