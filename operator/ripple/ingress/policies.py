"""Who may send: the EventPolicies of a namespace, compiled into one check per request to a broker they guard.

A broker that no policy names is open, unless the book's ``default`` is ``namespace`` (the chart's default in a
cluster): then such a broker takes tokens of its own namespace's ServiceAccounts only, checked by TokenReview. A
broker some policy names (``spec.to``, or every broker of the namespace
when ``to`` is empty) takes a request only with ``Authorization: Bearer <token>`` whose holder a policy for it
allows: no token, or one that proves nobody, is ``401``; a sender who is someone, but whom no policy for that
broker allows, or whose events a policy's ``filters`` refuse, is ``403``. Either way nothing is stored.

Tokens are told apart by what they are: a JWT whose ``iss`` is an OIDC issuer some policy names is verified
against that issuer's published keys (signature, ``iss``, ``aud``, ``exp``, then the claims asked for); anything
else is looked up among the static tokens of the policies' Secrets (by its SHA-256, so no comparison leaks how
much of a guess was right). A Kubernetes ServiceAccount's token is checked by a TokenReview, where the ingress has
an API server to ask (:class:`TokenReviewer`); without one such senders match nobody.

Verified JWTs are kept (at most :data:`VERIFIED_CACHE` of them, each until it expires or for
:data:`VERIFIED_FOR` seconds), so a producer sending many requests with one token pays for one verification.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp
import jwt

from ripple.api.loading import Manifests
from ripple.api.models import EventPolicy, OidcSender
from ripple.defaults import DEFAULT_POLICIES
from ripple.events.model import CloudEvent
from ripple.filters import Filter, compile_filter
from ripple.metrics import INGRESS_AUTH, child
from ripple.signing import DeliveryVerifier, JwksSource

__all__ = [
    "JWKS_FOR",
    "MIN_TOKEN_BYTES",
    "REFUSED_FOR",
    "VERIFIED_CACHE",
    "VERIFIED_FOR",
    "OidcKeys",
    "PolicyBook",
    "Refusal",
    "RippleHops",
    "Sender",
    "SenderCheck",
    "TokenReviewer",
    "manifest_policies",
    "secret_digests",
    "status_digests",
]

log = logging.getLogger(__name__)

MIN_TOKEN_BYTES = 16
"""The shortest static token a policy may use: shorter ones are guessable."""
MAX_TOKEN_BYTES = 8192
VERIFIED_CACHE = 10_000
VERIFIED_FOR = 300.0
REFUSED_FOR = 30.0
"""Seconds a token that proved nobody, for one broker, is refused without being checked again: junk sent in a
loop costs a lookup, not a signature check or a TokenReview each time."""
JWKS_FOR = 600.0
"""Seconds an issuer's keys are kept before they are read again (a token signed by an unknown key reads them
again at once, at most every :data:`JWKS_RETRY` seconds: keys rotate)."""
JWKS_RETRY = 30.0
FETCH_TIMEOUT = 5.0
ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"]


@dataclass(frozen=True)
class Sender:
    """Who a token proved the sender to be: ``token:<sha256 of the token>``, ``oidc:<issuer>#<sub>`` or
    ``serviceaccount:<ns>/<name>``."""

    kind: str
    name: str
    claims: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def identity(self) -> str:
        """The sender as one string (``kind:name``), the same for every broker it sends to: its rate limit's key."""
        return f"{self.kind}:{self.name}"


class SenderCheck(Protocol):
    """What the ingress asks of a request to a broker (a :class:`PolicyBook`, or a cluster's current one)."""

    async def check(self, namespace: str, broker: str, authorization: str | None,
                    events: Sequence[CloudEvent]) -> Refusal | Sender | None:
        """``None``: no policy guards the broker; a :class:`Sender`: a policy allows this proven sender; a
        :class:`Refusal`: why not (401 or 403)."""
        ...


@dataclass(frozen=True)
class Refusal:
    status: int
    message: str


class TokenReviewer(Protocol):
    async def review(self, token: str, audience: str) -> tuple[str, str] | None:
        """The (namespace, name) of the ServiceAccount the token belongs to, for ``audience``; None otherwise."""
        ...


class OidcKeys:
    """One issuer's signing keys, read from its discovery document and refreshed as they rotate."""

    def __init__(self, issuer: str, session: aiohttp.ClientSession | None = None) -> None:
        self.issuer = issuer.rstrip("/")
        self._session = session
        self._keys: jwt.PyJWKSet | None = None
        self._read_at = 0.0
        self._reads = 0
        self._lock = asyncio.Lock()

    async def key(self, kid: str | None) -> jwt.PyJWK | None:
        now = time.monotonic()
        if self._keys is None or now - self._read_at > JWKS_FOR:
            await self._read()
        found = self._find(kid)
        if found is None and time.monotonic() - self._read_at > JWKS_RETRY:
            await self._read()  # a key the issuer added since: rotation
            found = self._find(kid)
        return found

    def _find(self, kid: str | None) -> jwt.PyJWK | None:
        if self._keys is None:
            return None
        keys = list(self._keys.keys)
        if kid is None:
            return keys[0] if len(keys) == 1 else None
        return next((k for k in keys if k.key_id == kid), None)

    async def _read(self) -> None:
        before = self._reads
        async with self._lock:
            if self._reads != before:
                return  # another request read them while this one waited: one read for all of them
            self._reads += 1
            session = self._session or aiohttp.ClientSession()
            timeout = aiohttp.ClientTimeout(total=FETCH_TIMEOUT)
            try:
                async with session.get(f"{self.issuer}/.well-known/openid-configuration", timeout=timeout) as r:
                    r.raise_for_status()
                    jwks_uri = (await r.json(content_type=None))["jwks_uri"]
                async with session.get(jwks_uri, timeout=timeout) as r:
                    r.raise_for_status()
                    self._keys = jwt.PyJWKSet.from_dict(await r.json(content_type=None))
                self._read_at = time.monotonic()
            except (aiohttp.ClientError, TimeoutError, KeyError, ValueError, jwt.PyJWTError) as exc:
                log.warning("OIDC issuer %s: cannot read its keys: %s", self.issuer, exc)
                self._read_at = time.monotonic()
            finally:
                if self._session is None:
                    await session.close()


@dataclass(frozen=True)
class _Policy:
    name: str
    tokens: frozenset[str]
    """SHA-256 digests of the static tokens it allows."""
    oidc: tuple[OidcSender, ...]
    accounts: frozenset[tuple[str, str]]
    filter: Filter
    accounts_of: str | None = None
    """Every ServiceAccount of this namespace (the default guard of a broker no policy names)."""

    @property
    def reviews(self) -> bool:
        """Whether a ServiceAccount token could satisfy it (worth a TokenReview)."""
        return bool(self.accounts) or self.accounts_of is not None

    def allows(self, sender: Sender) -> bool:
        if sender.kind == "token":
            return sender.name in self.tokens
        if sender.kind == "serviceaccount":
            namespace, _, name = sender.name.partition("/")
            return (namespace, name) in self.accounts or namespace == self.accounts_of
        return any(o.issuer.rstrip("/") == sender.claims.get("iss", "").rstrip("/")
                   and _audience_ok(sender.claims, o.audience)
                   and all(str(sender.claims.get(k)) == v for k, v in o.claims.items()) for o in self.oidc)


def _audience_ok(claims: Mapping[str, Any], audience: str) -> bool:
    aud = claims.get("aud")
    return aud == audience or (isinstance(aud, list) and audience in aud)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


TokenDigest = Callable[[EventPolicy, int], str]
UNREADABLE = "unreadable"
"""The digest of a token whose Secret could not be read: no SHA-256 in hex equals it."""
SecretReader = Callable[[str, str, str], bytes | None]


def secret_digests(read: SecretReader) -> TokenDigest:
    """Token digests read from Secrets (``read(namespace, name, key)``), as local mode has them."""

    def digest(policy: EventPolicy, index: int) -> str:
        sender = policy.spec.from_[index].token
        assert sender is not None
        ref = sender.secret_ref
        where = f"EventPolicy '{policy.namespace}/{policy.name}': spec.from[{index}].token.secretRef"
        value = read(policy.namespace, ref.name, ref.key)
        if value is None:
            raise ValueError(f"{where}: Secret '{ref.name}' has no key '{ref.key}'")
        token = bytes(value).decode("utf-8", "replace").strip()
        if len(token.encode()) < MIN_TOKEN_BYTES:
            raise ValueError(f"{where}: the token is shorter than {MIN_TOKEN_BYTES} bytes")
        return _digest(token)

    return digest


def status_digests(statuses: Mapping[tuple[str, str], Mapping[str, Any]]) -> TokenDigest:
    """Token digests from the policies' ``status.tokens``, as the operator writes them in a cluster."""

    def digest(policy: EventPolicy, index: int) -> str:
        for entry in statuses.get(policy.key, {}).get("tokens") or []:
            if entry.get("index") == index and isinstance(entry.get("sha256"), str):
                return str(entry["sha256"])
        # Not read (yet): the sender matches no token, and the policy still guards its brokers (fail closed).
        return UNREADABLE

    return digest


class PolicyBook:
    """Every EventPolicy, by the brokers it guards; :meth:`check` answers one request."""

    def __init__(self, policies: Iterable[EventPolicy], token: TokenDigest, *,
                 reviewer: TokenReviewer | None = None, default: str = "open") -> None:
        """``token(policy, index)`` is the SHA-256 of the static token of ``spec.from[index]`` (raising
        ``ValueError`` naming what is wrong when there is none): read from a Secret in local mode
        (:func:`secret_digests`), from the policy's status in a cluster (:func:`status_digests`). ``default``
        (one of :data:`DEFAULT_POLICIES`) guards the brokers no policy names."""
        if default not in DEFAULT_POLICIES:
            raise ValueError(f"default policy '{default}' is not one of {', '.join(DEFAULT_POLICIES)}")
        self.reviewer = reviewer
        self.default = default
        self._guards: dict[tuple[str, str], list[_Policy]] = {}
        self._namespaces: dict[str, list[_Policy]] = {}
        """Policies with an empty ``spec.to``: every broker of their namespace, present and future."""
        self._issuers: dict[str, OidcKeys] = {}
        self._tokens: dict[str, Sender] = {}
        self._verified: OrderedDict[str, tuple[Sender, float]] = OrderedDict()
        self._refused: OrderedDict[tuple[str, str, str], tuple[str, float]] = OrderedDict()
        for policy in policies:
            compiled = self._compile(policy, token)
            if not policy.spec.to:
                self._namespaces.setdefault(policy.namespace, []).append(compiled)
            for target in policy.spec.to:
                self._guards.setdefault((policy.namespace, target.broker), []).append(compiled)

    def _compile(self, policy: EventPolicy, token: TokenDigest) -> _Policy:
        tokens: set[str] = set()
        oidc: list[OidcSender] = []
        accounts: set[tuple[str, str]] = set()
        for index, sender in enumerate(policy.spec.from_):
            if sender.token is not None:
                digest = token(policy, index)
                tokens.add(digest)
                self._tokens[digest] = Sender("token", digest)
            elif sender.oidc is not None:
                oidc.append(sender.oidc)
                issuer = sender.oidc.issuer.rstrip("/")
                self._issuers.setdefault(issuer, OidcKeys(issuer))
            elif sender.service_account is not None:
                accounts.add((sender.service_account.namespace, sender.service_account.name))
        return _Policy(f"{policy.namespace}/{policy.name}", frozenset(tokens), tuple(oidc), frozenset(accounts),
                       policy.spec.compiled_filter)

    def policies_of(self, namespace: str, broker: str) -> list[_Policy]:
        named = [*self._guards.get((namespace, broker), ()), *self._namespaces.get(namespace, ())]
        if named or self.default == "open":
            return named
        return [_namespace_default(namespace)]

    def guards(self, namespace: str, broker: str) -> bool:
        return bool(self.policies_of(namespace, broker))

    async def check(self, namespace: str, broker: str, authorization: str | None,
                    events: Sequence[CloudEvent]) -> Refusal | Sender | None:
        """``None`` when no policy guards the broker; the proven :class:`Sender` when a policy allows the request;
        else why not (401 or 403). Counted unless the broker is open."""
        policies = self.policies_of(namespace, broker)
        if not policies:
            return None
        found = await self._check(policies, namespace, broker, authorization, events)
        outcome = ("allowed" if isinstance(found, Sender) else
                   "unauthenticated" if found.status == 401 else "forbidden")
        child(INGRESS_AUTH, namespace, broker, outcome).inc()
        return found

    async def _check(self, policies: list[_Policy], namespace: str, broker: str, authorization: str | None,
                     events: Sequence[CloudEvent]) -> Refusal | Sender:
        scheme, _, token = (authorization or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            if all(p.accounts_of is not None for p in policies):
                return Refusal(401, f"broker '{namespace}/{broker}' takes events only from ServiceAccounts of "
                                    f"namespace '{namespace}' (or senders an EventPolicy allows): send "
                                    f"'Authorization: Bearer <a ServiceAccount token for the audience "
                                    f"ripple/{namespace}/{broker}>'")
            return Refusal(401, f"broker '{namespace}/{broker}' takes events only from senders an EventPolicy "
                                "allows: send 'Authorization: Bearer <token>'")
        if len(token) > MAX_TOKEN_BYTES:
            return Refusal(401, f"the bearer token is longer than {MAX_TOKEN_BYTES} bytes")
        sender, reason = await self._identify_once(token, namespace, broker, policies)
        if sender is None:
            return Refusal(401, f"the bearer token proves no sender: {reason}")
        allowing = [p for p in policies if p.allows(sender)]
        if not allowing:
            return Refusal(403, f"{_who(sender)} may not send to broker '{namespace}/{broker}'")
        for event in events:
            if not any(p.filter.matches(event.as_mapping()) for p in allowing):
                return Refusal(403, f"{_who(sender)} may not send event '{event.id}' of type '{event.type}' to "
                                    f"broker '{namespace}/{broker}': no policy's filters let it through")
        return sender

    async def _identify_once(self, token: str, namespace: str, broker: str,
                             policies: list[_Policy]) -> tuple[Sender | None, str]:
        key = (_digest(token), namespace, broker)
        refused = self._refused.get(key)
        if refused is not None and refused[1] > time.monotonic():
            return None, refused[0]
        sender, reason = await self._identify(token, namespace, broker, policies)
        if sender is None:
            self._refused[key] = (reason, time.monotonic() + REFUSED_FOR)
            self._refused.move_to_end(key)
            while len(self._refused) > VERIFIED_CACHE:
                self._refused.popitem(last=False)
        return sender, reason

    async def _identify(self, token: str, namespace: str, broker: str,
                        policies: list[_Policy]) -> tuple[Sender | None, str]:
        digest = _digest(token)
        audience = f"ripple/{namespace}/{broker}"
        # A ServiceAccount token is proven for one broker's audience: it is kept under that audience, so the
        # review for broker A never lets it into broker B. OIDC tokens are kept by digest: each policy checks
        # their audience itself.
        for key in (f"{digest}|{audience}", digest):
            cached = self._verified.get(key)
            if cached is not None and cached[1] > time.time():
                self._verified.move_to_end(key)
                return cached[0], ""
        if digest in self._tokens:
            return self._tokens[digest], ""
        try:
            unverified = jwt.decode(token, options={"verify_signature": False})
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            unverified, header = None, {}
        if unverified is not None and str(unverified.get("iss", "")).rstrip("/") in self._issuers:
            return await self._oidc(token, digest, unverified, header, policies)
        if self.reviewer is not None and any(p.reviews for p in policies):
            account = await self.reviewer.review(token, audience)
            if account is not None:
                sender = Sender("serviceaccount", "/".join(account))
                self._remember(f"{digest}|{audience}", sender, time.time() + VERIFIED_FOR)
                return sender, ""
        return None, "it is no static token, OIDC token or ServiceAccount token any policy of this broker accepts"

    async def _oidc(self, token: str, digest: str, unverified: Mapping[str, Any], header: Mapping[str, Any],
                    policies: list[_Policy]) -> tuple[Sender | None, str]:
        issuer = str(unverified["iss"]).rstrip("/")
        key = await self._issuers[issuer].key(header.get("kid"))
        if key is None:
            return None, f"no key of issuer {issuer} signed it (kid {header.get('kid')!r})"
        audiences = sorted({o.audience for p in policies for o in p.oidc if o.issuer.rstrip("/") == issuer})
        try:
            claims = jwt.decode(token, key=key, algorithms=ALGORITHMS, audience=audiences or None,
                                issuer=str(unverified["iss"]), options={"require": ["exp", "iss", "aud"]},
                                leeway=30)
        except jwt.PyJWTError as exc:
            return None, f"{type(exc).__name__}: {exc}"
        sender = Sender("oidc", f"{issuer}#{claims.get('sub', '?')}", claims)
        self._remember(digest, sender, min(float(claims["exp"]), time.time() + VERIFIED_FOR))
        return sender, ""

    def _remember(self, digest: str, sender: Sender, until: float) -> None:
        self._verified[digest] = (sender, until)
        while len(self._verified) > VERIFIED_CACHE:
            self._verified.popitem(last=False)


_EVERY_EVENT = compile_filter(None, None)


@functools.lru_cache(maxsize=1024)
def _namespace_default(namespace: str) -> _Policy:
    """The guard of a broker no policy names, with ``--default-policy namespace``: made once per namespace, not
    per request (only namespaces with brokers get here: the ingress answers 404 for the others first)."""
    return _Policy(f"the default for brokers no EventPolicy names: ServiceAccounts of '{namespace}'",
                   frozenset(), (), frozenset(), _EVERY_EVENT, accounts_of=namespace)


class RippleHops:
    """Ripple's own deliveries to a Sequence's or Parallel's address: a dispatcher signs a delivery token for the
    address (:func:`ripple.signing.flow_audience`), checked against the dispatchers' JWKS; such a request is
    Ripple moving an event along a flow, not a producer, so the flow's broker's policies do not apply to it."""

    def __init__(self, keys: JwksSource) -> None:
        self.verifier = DeliveryVerifier(keys, "")  # every check names its flow's audience

    async def proves(self, audience: str, authorization: str | None) -> bool:
        return bool(authorization) and await self.verifier.check(authorization, audience) is None


def _who(sender: Sender) -> str:
    if sender.kind == "token":
        return "the holder of this static token"
    if sender.kind == "serviceaccount":
        return f"ServiceAccount '{sender.name}'"
    return f"OIDC subject '{sender.name}'"


def manifest_policies(manifests: Manifests) -> PolicyBook | None:
    """The EventPolicies of a set of manifests, their tokens read from the manifests' Secrets (local mode, or an
    ingress given manifests); None when there are none. Raises ``ValueError`` naming a token it cannot read."""
    if not manifests.policies:
        return None

    def secret(namespace: str, name: str, key: str) -> bytes | None:
        found = manifests.secrets.get((namespace, name))
        return None if found is None else found.data.get(key)

    return PolicyBook(manifests.policies.values(), secret_digests(secret))
