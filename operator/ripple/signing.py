"""Proof to a Function that an event came through Ripple: signed, short-lived delivery tokens.

Every delivery to a Function carries ``Authorization: Bearer <JWT>``: signed with Ed25519 (``EdDSA``) by the
dispatcher that delivers it, ``iss`` :data:`ISSUER`, ``aud`` the Function (:func:`function_audience`), ``sub`` the
trigger, valid :data:`TOKEN_LIFETIME` seconds. The Function's runtime checks it against the dispatchers' published
public keys (a JWKS), so a pod that reaches a Function directly, without going through a trigger, cannot invoke
it, and a token taken from one Function's traffic cannot invoke another.

Each dispatcher makes its own signing key in memory (it is never written anywhere: a restarted dispatcher simply
makes a new one), replaces it every :data:`KEY_ROTATION` seconds, and publishes only the public half. A new key is
published :data:`PUBLISH_AHEAD` seconds before it signs anything, so whoever serves the JWKS knows it before any
Function sees a token it signed, and an old one stays published until every token it signed has expired.

Tokens are cached per (audience, subject) and reused for half their life: signing costs one Ed25519 signature per
Function and trigger every couple of minutes, not one per delivery. Verified tokens are cached the same way.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

import aiohttp
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ripple.defaults import DELIVERY_AUTH_MODES as AUTH_MODES

__all__ = [
    "AUTH_ENV",
    "AUTH_MODES",
    "EXCHANGE_PATH",
    "ISSUER",
    "JWKS_PATH",
    "KEYS_ENV",
    "KEY_ROTATION",
    "LEEWAY",
    "PUBLISH_AHEAD",
    "TOKEN_LIFETIME",
    "AuthMode",
    "DeliverySigner",
    "DeliveryVerifier",
    "Jwks",
    "JwksSource",
    "KeyRing",
    "KeysUnavailable",
    "Refusal",
    "SigningKey",
    "file_jwks",
    "flow_audience",
    "function_audience",
    "http_jwks",
    "jwks_route",
    "jwks_source",
    "source_subject",
    "trigger_subject",
    "verifier_from_env",
]

ISSUER = "ripple"
TOKEN_LIFETIME = 300.0
"""Seconds a delivery token is valid: long enough to be reused for many deliveries, short enough that one copied
off the wire is soon worthless."""
KEY_ROTATION = 3600.0
"""Seconds a dispatcher signs with one key before it makes the next."""
PUBLISH_AHEAD = 5.0
"""Seconds a new key is published before it signs: every dispatcher serving the JWKS has seen it by then."""
LEEWAY = 30.0
"""Clock skew allowed between dispatcher and Function when checking ``exp``, ``nbf`` and ``iat``."""
KEYS_ENV = "RIPPLE_DELIVERY_KEYS"
"""The runtime's JWKS: an ``http(s)://`` URL (the dispatchers' ``/.well-known/jwks.json``) or a file path."""
AUTH_ENV = "RIPPLE_DELIVERY_AUTH"
"""``required`` (no valid token: 401), ``optional`` (a token, when sent, must be valid), ``off``. Default:
``required`` when :data:`KEYS_ENV` is set, else ``off``."""
AuthMode = Literal["required", "optional", "off"]
EXCHANGE_PATH = "/-/delivery-token"
"""Where a dispatcher swaps an EventSource adapter's ServiceAccount token for a delivery token for its Function
sink (``ripple.cluster.exchange``), beside its JWKS."""
JWKS_PATH = "/.well-known/jwks.json"
"""Where a dispatcher (and ``ripple dev``) serves the public keys of delivery tokens."""
REFETCH_EVERY = 5.0
"""At most one JWKS read per this many seconds for tokens signed by a key not yet known."""
MAX_CACHED = 10_000

Jwks = Mapping[str, Any]
JwksSource = Callable[[], Awaitable[Jwks]]
"""Reads the current JWKS; raises :class:`KeysUnavailable` when it cannot."""


def function_audience(namespace: str, name: str) -> str:
    """A Function's audience; a broker's is ``ripple/<namespace>/<broker>``, so the two can never be confused."""
    return f"ripple/{namespace}/functions/{name}"


def flow_audience(kind: str, namespace: str, name: str) -> str:
    """A Sequence's or Parallel's address (``kind`` as in a reference): the ingress stores what a token for it
    carries on the flow's first hop, whatever guards the flow's broker."""
    return f"ripple/{namespace}/{kind.lower()}s/{name}"


def trigger_subject(namespace: str, name: str) -> str:
    return f"ripple/{namespace}/triggers/{name}"


def source_subject(namespace: str, name: str) -> str:
    return f"ripple/{namespace}/eventsources/{name}"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private: Ed25519PrivateKey
    created: float
    """``time.time()`` when it was made."""

    @classmethod
    def generate(cls, now: float) -> SigningKey:
        return cls(secrets.token_hex(8), Ed25519PrivateKey.generate(), now)

    def jwk(self) -> dict[str, str]:
        raw = self.private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return {"kty": "OKP", "crv": "Ed25519", "x": _b64(raw), "kid": self.kid, "use": "sig", "alg": "EdDSA"}


@dataclass
class KeyRing:
    """One dispatcher's signing keys, and the public keys of the others (so any of them serves the whole JWKS)."""

    rotation: float = KEY_ROTATION
    lifetime: float = TOKEN_LIFETIME
    publish_ahead: float = PUBLISH_AHEAD
    clock: Callable[[], float] = time.time
    on_new_key: Callable[[SigningKey], None] = lambda key: None
    """Called with each key made, to publish its public half (the cluster dispatcher puts it in NATS)."""
    _own: list[SigningKey] = field(default_factory=list)
    _others: dict[str, tuple[dict[str, str], float]] = field(default_factory=dict)
    """kid → (public JWK, when it expires from the JWKS)."""

    def signing_key(self) -> SigningKey:
        """The key to sign with now; makes the first one, and the next when the current one has served its time."""
        now = self.clock()
        if not self._own:
            self._add(now)
            return self._own[0]  # nothing was signed before it: no one can hold a token it cannot check
        newest = self._own[-1]
        if now - newest.created >= self.rotation:
            self._add(now)
        ready = [key for key in self._own if now - key.created >= self.publish_ahead or key is self._own[0]]
        return ready[-1]

    def _add(self, now: float) -> None:
        key = SigningKey.generate(now)
        self._own.append(key)
        # A key replaced more than a token's life (and the skew allowed) ago signed nothing still valid.
        keep_after = now - self.rotation - self.lifetime - LEEWAY
        self._own = [k for k in self._own if k.created > keep_after or k is key]
        self.on_new_key(key)

    def add_public(self, jwk: dict[str, str], expires: float) -> None:
        if jwk.get("kid") and all(k.kid != jwk["kid"] for k in self._own):
            self._others[jwk["kid"]] = (jwk, expires)

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        now = self.clock()
        self._others = {kid: entry for kid, entry in self._others.items() if entry[1] > now}
        return {"keys": [key.jwk() for key in self._own] + [jwk for jwk, _ in self._others.values()]}


class DeliverySigner:
    """Issues delivery tokens from a :class:`KeyRing`, one per (audience, subject) for half its life."""

    def __init__(self, ring: KeyRing | None = None, *, lifetime: float = TOKEN_LIFETIME) -> None:
        self.ring = ring or KeyRing(lifetime=lifetime)
        self.lifetime = lifetime
        self._tokens: OrderedDict[tuple[str, str], tuple[str, float]] = OrderedDict()

    def token(self, audience: str, subject: str) -> str:
        now = self.ring.clock()
        cached = self._tokens.get((audience, subject))
        if cached is not None and cached[1] > now:
            return cached[0]
        import jwt  # here, not at the top: PyJWT costs a Function's cold start ~50 ms, and most never sign

        key = self.ring.signing_key()
        issued = int(now)
        claims = {"iss": ISSUER, "aud": audience, "sub": subject, "iat": issued, "nbf": issued,
                  "exp": issued + int(self.lifetime), "jti": secrets.token_hex(8)}
        token = jwt.encode(claims, key.private, algorithm="EdDSA", headers={"kid": key.kid})
        self._tokens[(audience, subject)] = (token, now + self.lifetime / 2)
        if len(self._tokens) > MAX_CACHED:
            self._tokens.popitem(last=False)
        return token


class KeysUnavailable(Exception):
    """The JWKS could not be read: a delivery then cannot be checked, which is the runtime's problem, not the
    sender's (answered 503, so the dispatcher retries)."""


@dataclass(frozen=True)
class Refusal:
    status: int
    """401: no token, or one that proves nothing; 503: the keys to check it could not be read."""
    message: str


class DeliveryVerifier:
    """Checks delivery tokens for an audience against a JWKS, read on first use and again for an unknown key.

    Made off the event loop where a request waits for it (it imports PyJWT, ~50 ms: a warm-pool specialization).
    """

    def __init__(self, source: JwksSource, audience: str, *, mode: AuthMode = "required",
                 clock: Callable[[], float] = time.time) -> None:
        import jwt  # here, not at the top: most processes that import this module never check a token

        self._jwt = jwt
        self.source = source
        self.audience = audience
        self.mode = mode
        self.clock = clock
        self._keys: dict[str, Ed25519PublicKey] = {}
        self._read_at = float("-inf")
        self._lock = asyncio.Lock()
        self._verified: OrderedDict[tuple[str, str], float] = OrderedDict()

    async def check(self, authorization: str | None, audience: str | None = None) -> Refusal | None:
        """``None`` when the request may be handled, else why not; ``audience`` instead of the verifier's own (the
        ingress checks one token per flow address with one verifier and one copy of the keys)."""
        jwt = self._jwt
        audience = audience or self.audience
        if self.mode == "off":
            return None
        if not authorization:
            return Refusal(401, "a delivery token is required: events reach this function only through a trigger") \
                if self.mode == "required" else None
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return Refusal(401, "Authorization must be 'Bearer <delivery token>'")
        token = token.strip()
        now = self.clock()
        expires = self._verified.get((token, audience))
        if expires is not None and expires > now:
            return None
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            return Refusal(401, f"invalid delivery token: {exc}")
        kid = header.get("kid")
        if header.get("alg") != "EdDSA" or not isinstance(kid, str):
            return Refusal(401, "invalid delivery token: not signed by Ripple (alg EdDSA with a kid)")
        try:
            key, read_now = await self._key(kid)
        except KeysUnavailable as exc:
            return Refusal(503, f"cannot check delivery tokens now: {exc}")
        if key is None and not read_now:  # the keys were read moments ago: this one may be newer, ask again soon
            return Refusal(503, f"delivery token signed by key '{kid[:32]}', not known yet: retry")
        if key is None:
            return Refusal(401, f"invalid delivery token: signed by unknown key '{kid[:32]}'")
        try:
            # Times are checked below against this verifier's clock (PyJWT reads the system's).
            claims = jwt.decode(token, key, algorithms=["EdDSA"], audience=audience, issuer=ISSUER,
                                options={"require": ["exp", "iat", "aud", "iss"], "verify_exp": False,
                                         "verify_iat": False, "verify_nbf": False})
        except jwt.PyJWTError as exc:
            return Refusal(401, f"invalid delivery token: {exc}")
        expires, issued, starts = claims["exp"], claims["iat"], claims.get("nbf", claims["iat"])
        if not all(isinstance(t, int | float) and not isinstance(t, bool) for t in (expires, issued, starts)):
            return Refusal(401, "invalid delivery token: exp, iat and nbf must be numbers")
        if now > expires + LEEWAY:
            return Refusal(401, "invalid delivery token: it has expired")
        if max(issued, starts) > now + LEEWAY:
            return Refusal(401, "invalid delivery token: it is not valid yet (check the clocks)")
        self._verified[(token, audience)] = float(expires) + LEEWAY
        if len(self._verified) > MAX_CACHED:
            self._verified.popitem(last=False)
        return None

    async def _key(self, kid: str) -> tuple[Ed25519PublicKey | None, bool]:
        """The key named ``kid``, and whether the JWKS was read for it (an unknown key is read for at most every
        :data:`REFETCH_EVERY` seconds, so that tokens naming made-up keys cannot make the runtime read it in a loop)."""
        if kid in self._keys:
            return self._keys[kid], False
        async with self._lock:
            if kid in self._keys:
                return self._keys[kid], False
            if self.clock() - self._read_at < REFETCH_EVERY:
                return None, False
            self._read_at = self.clock()
            self._keys = _public_keys(await self.source())
        return self._keys.get(kid), True


def _public_keys(jwks: Jwks) -> dict[str, Ed25519PublicKey]:
    keys: dict[str, Ed25519PublicKey] = {}
    entries = jwks.get("keys")
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict) or entry.get("kty") != "OKP" or entry.get("crv") != "Ed25519":
            continue
        kid, x = entry.get("kid"), entry.get("x")
        if not isinstance(kid, str) or not isinstance(x, str):
            continue
        try:
            keys[kid] = Ed25519PublicKey.from_public_bytes(base64.urlsafe_b64decode(x + "=" * (-len(x) % 4)))
        except ValueError:
            continue
    return keys


def jwks_route(read: JwksSource) -> web.RouteDef:
    """``GET`` :data:`JWKS_PATH`: the public keys from ``read``."""

    async def serve(request: web.Request) -> web.Response:
        return web.json_response(dict(await read()), headers={"Cache-Control": "max-age=5"})

    return web.get(JWKS_PATH, serve)


def file_jwks(path: Path) -> JwksSource:
    async def read() -> Jwks:
        try:
            text = await asyncio.to_thread(path.read_text)
            jwks = json.loads(text)
        except (OSError, ValueError) as exc:
            raise KeysUnavailable(f"{path}: {exc}") from None
        if not isinstance(jwks, dict):
            raise KeysUnavailable(f"{path}: not a JWKS object")
        return jwks

    return read


def http_jwks(url: str, *, timeout: float = 5.0) -> JwksSource:
    async def read() -> Jwks:
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session:
                async with session.get(url) as response:
                    if response.status != 200:
                        raise KeysUnavailable(f"{url} answered {response.status}")
                    jwks = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise KeysUnavailable(f"{url}: {type(exc).__name__}: {exc}") from None
        if not isinstance(jwks, dict):
            raise KeysUnavailable(f"{url}: not a JWKS object")
        return jwks

    return read


def jwks_source(where: str) -> JwksSource:
    return http_jwks(where) if where.startswith(("http://", "https://")) else file_jwks(Path(where))


def verifier_from_env(audience: str, environ: Mapping[str, str] = os.environ) -> DeliveryVerifier | None:
    """The runtime's verifier as its environment configures it (:data:`KEYS_ENV`, :data:`AUTH_ENV`); ``None`` when
    delivery tokens are not checked. Raises ``ValueError`` naming the variable for a setting it cannot use."""
    where = environ.get(KEYS_ENV, "").strip()
    mode = environ.get(AUTH_ENV, "required" if where else "off").strip().lower()
    if mode not in AUTH_MODES:
        raise ValueError(f"{AUTH_ENV}: '{mode}' is not one of {', '.join(AUTH_MODES)}")
    if mode == "off":
        return None
    if not where:
        raise ValueError(f"{AUTH_ENV}={mode} needs {KEYS_ENV} (the JWKS URL or file of the dispatchers' keys)")
    return DeliveryVerifier(jwks_source(where), audience, mode=cast(AuthMode, mode))
