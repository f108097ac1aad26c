"""Webhook signatures: whether a request comes from the sender that shares the secret.

Every comparison is constant-time (``hmac.compare_digest``), and no message says more than which header is
missing or malformed and that the signature does not match: never the secret, the expected value or the one
received. A request that fails is answered 401 by the webhook and nothing of it is stored.

* ``github``: ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>``.
* ``stripe``: ``Stripe-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">`` (several ``v1``
  may be given while a secret is rolled; one must match), and ``t`` within ``tolerance`` of now, which bounds
  how long a captured request can be replayed.
* ``hmac-sha256``: a hex HMAC-SHA256 of the raw body in ``header`` (``X-Ripple-Signature``), with or without a
  ``sha256=`` prefix.
* ``token``: ``header`` (``Authorization``) is ``Bearer <token>``.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "DEFAULT_HEADERS",
    "GITHUB_HEADER",
    "STRIPE_HEADER",
    "SignatureRefused",
    "Verifier",
    "hex_hmac",
]

GITHUB_HEADER = "X-Hub-Signature-256"
STRIPE_HEADER = "Stripe-Signature"
DEFAULT_HEADERS: Mapping[str, str] = {
    "github": GITHUB_HEADER,
    "stripe": STRIPE_HEADER,
    "hmac-sha256": "X-Ripple-Signature",
    "token": "Authorization",
}
"""The header each scheme reads unless the EventSource names another (github and stripe always use theirs)."""
_MAX_SIGNATURE_HEADER = 4096
"""Longer is malformed: no scheme needs more, and nothing longer is worth hashing or parsing."""


class SignatureRefused(Exception):
    """The request is not proven to come from the sender; the message is safe to answer and to log."""


def hex_hmac(secret: bytes, message: bytes) -> str:
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def _same(expected: str, given: str) -> bool:
    return hmac.compare_digest(expected.encode("ascii"), given.strip().lower().encode("ascii", "replace"))


@dataclass(frozen=True)
class Verifier:
    """Checks requests against one EventSource's ``spec.webhook.signature``."""

    scheme: str
    secret: bytes
    header: str | None = None
    tolerance: float = 300.0
    """stripe: seconds the signed timestamp may be away from now."""

    def __post_init__(self) -> None:
        if self.scheme not in DEFAULT_HEADERS:
            raise ValueError(f"unknown signature scheme {self.scheme!r}: one of {', '.join(DEFAULT_HEADERS)}")
        if not self.secret:
            raise ValueError("a signature secret must not be empty")  # an empty key would accept forged requests

    @property
    def header_name(self) -> str:
        if self.scheme in ("github", "stripe") or self.header is None:
            return DEFAULT_HEADERS[self.scheme]
        return self.header

    def verify(self, headers: Mapping[str, str], body: bytes, *, now: float | None = None) -> None:
        """Return if the request is signed by the secret; raise :class:`SignatureRefused` saying why not.

        ``headers`` must look names up case-insensitively (aiohttp's request headers do).
        """
        name = self.header_name
        value = headers.get(name)
        if value is None or not value.strip():
            raise SignatureRefused(f"missing {name} header")
        if len(value) > _MAX_SIGNATURE_HEADER or not value.isascii():
            raise SignatureRefused(f"malformed {name} header")
        if self.scheme == "github":
            self._github(value, body)
        elif self.scheme == "stripe":
            self._stripe(value, body, time.time() if now is None else now)
        elif self.scheme == "hmac-sha256":
            given = value.strip()
            given = given[len("sha256="):] if given.lower().startswith("sha256=") else given
            if not _same(hex_hmac(self.secret, body), given):
                raise SignatureRefused(f"the {name} signature does not match")
        else:
            scheme, _, token = value.strip().partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(self.secret, token.strip().encode("ascii")):
                raise SignatureRefused(f"the {name} token does not match")

    def _github(self, value: str, body: bytes) -> None:
        algorithm, _, given = value.strip().partition("=")
        if algorithm.lower() != "sha256" or not given:
            raise SignatureRefused(f"malformed {GITHUB_HEADER} header: expected sha256=<hex>")
        if not _same(hex_hmac(self.secret, body), given):
            raise SignatureRefused(f"the {GITHUB_HEADER} signature does not match")

    def _stripe(self, value: str, body: bytes, now: float) -> None:
        timestamp, signatures = None, []
        for item in value.split(","):
            key, _, part = item.strip().partition("=")
            if key == "t":
                timestamp = part
            elif key == "v1" and part:
                signatures.append(part)
        if timestamp is None or not timestamp.isdigit() or len(timestamp) > 12 or not signatures:
            raise SignatureRefused(f"malformed {STRIPE_HEADER} header: expected t=<unix time>,v1=<hex>")
        expected = hex_hmac(self.secret, timestamp.encode() + b"." + body)
        matches = [_same(expected, given) for given in signatures]  # every one compared: no early exit
        if not any(matches):
            raise SignatureRefused(f"the {STRIPE_HEADER} signature does not match")
        if abs(now - int(timestamp)) > self.tolerance:
            raise SignatureRefused(f"the {STRIPE_HEADER} timestamp is outside the tolerance of {self.tolerance:g}s")
