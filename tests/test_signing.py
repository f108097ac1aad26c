"""Delivery tokens: what a Function accepts and refuses, key rotation, and what is read how often.

The JWKS is served over real HTTP by the route the dispatcher serves it with; clocks are fake where time matters.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import jwt
import pytest
from aiohttp import web

from ripple.signing import (
    ISSUER,
    JWKS_PATH,
    KEY_ROTATION,
    LEEWAY,
    PUBLISH_AHEAD,
    TOKEN_LIFETIME,
    DeliverySigner,
    DeliveryVerifier,
    Jwks,
    KeyRing,
    KeysUnavailable,
    function_audience,
    http_jwks,
    jwks_route,
    trigger_subject,
    verifier_from_env,
)
from tests.support import serve

AUDIENCE = function_audience("shop", "validate")
SUBJECT = trigger_subject("shop", "orders")


@dataclass
class Clock:
    now: float = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Published:
    """The JWKS of some rings, served on a real port, counting reads."""

    rings: list[KeyRing]
    reads: int = 0
    down: bool = False
    url: str = ""

    async def jwks(self) -> Jwks:
        self.reads += 1
        if self.down:
            raise KeysUnavailable("down for the test")
        return {"keys": [key for ring in self.rings for key in ring.jwks()["keys"]]}


@dataclass
class Setup:
    clock: Clock
    ring: KeyRing
    signer: DeliverySigner
    published: Published
    verifier: Callable[..., DeliveryVerifier] = field(default=lambda **kw: None)  # type: ignore[assignment]


@pytest.fixture
async def setup() -> AsyncIterator[Setup]:
    clock = Clock()
    ring = KeyRing(clock=clock)
    published = Published([ring])

    async def handler_jwks() -> Jwks:
        if published.down:
            raise web.HTTPServiceUnavailable()
        return await published.jwks()

    app = web.Application()
    app.router.add_routes([jwks_route(handler_jwks)])
    async with serve(app) as url:
        published.url = url + JWKS_PATH
        made = Setup(clock, ring, DeliverySigner(ring), published)

        def verifier(audience: str = AUDIENCE, mode: str = "required") -> DeliveryVerifier:
            return DeliveryVerifier(http_jwks(published.url), audience, mode=mode, clock=clock)  # type: ignore[arg-type]

        made.verifier = verifier
        yield made


def bearer(token: str) -> str:
    return f"Bearer {token}"


async def test_a_delivery_token_is_accepted_by_its_function_only(setup: Setup) -> None:
    token = setup.signer.token(AUDIENCE, SUBJECT)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert (claims["iss"], claims["aud"], claims["sub"]) == (ISSUER, AUDIENCE, SUBJECT)
    assert claims["exp"] - claims["iat"] == TOKEN_LIFETIME
    assert await setup.verifier().check(bearer(token)) is None
    other = await setup.verifier(function_audience("shop", "refund")).check(bearer(token))
    assert other is not None and other.status == 401 and "audience" in other.message.lower()
    # A broker's audience never matches a Function's: the two kinds of token cannot be swapped.
    broker = await setup.verifier("ripple/shop/validate").check(bearer(token))
    assert broker is not None and broker.status == 401


async def test_no_token_is_refused_when_required_and_let_through_when_optional(setup: Setup) -> None:
    refused = await setup.verifier().check(None)
    assert refused is not None and refused.status == 401 and "through a trigger" in refused.message
    assert await setup.verifier(mode="optional").check(None) is None
    assert await setup.verifier(mode="off").check("Bearer junk") is None
    # Optional still refuses a token that proves nothing: a sender that sends one means it.
    junk = await setup.verifier(mode="optional").check("Bearer junk")
    assert junk is not None and junk.status == 401
    basic = await setup.verifier().check("Basic dXNlcjpwYXNz")
    assert basic is not None and basic.status == 401 and "Bearer" in basic.message


async def test_expired_tokens_and_foreign_signatures_are_refused(setup: Setup) -> None:
    token = setup.signer.token(AUDIENCE, SUBJECT)
    verifier = setup.verifier()
    assert await verifier.check(bearer(token)) is None
    setup.clock.now += TOKEN_LIFETIME + LEEWAY + 1  # past exp with the skew allowed, cache included
    expired = await verifier.check(bearer(token))
    assert expired is not None and expired.status == 401 and "expired" in expired.message.lower()

    # A key that is not Ripple's, under a kid Ripple does use: the signature gives it away.
    kid = setup.ring.signing_key().kid
    impostor = DeliverySigner(KeyRing(clock=setup.clock)).ring.signing_key()
    forged = jwt.encode({"iss": ISSUER, "aud": AUDIENCE, "sub": SUBJECT, "iat": int(setup.clock.now),
                         "exp": int(setup.clock.now) + 60}, impostor.private, algorithm="EdDSA",
                        headers={"kid": kid})
    refused = await setup.verifier().check(bearer(forged))
    assert refused is not None and refused.status == 401 and "signature" in refused.message.lower()
    # Not EdDSA (an HMAC token "signed" with the public key, the classic confusion): refused before any key.
    hmac = jwt.encode({"iss": ISSUER, "aud": AUDIENCE}, "s" * 32, algorithm="HS256", headers={"kid": kid})
    refused = await setup.verifier().check(bearer(hmac))
    assert refused is not None and refused.status == 401 and "EdDSA" in refused.message


@pytest.mark.parametrize("claims", [
    {"exp": "soon", "iat": 0}, {"exp": True, "iat": 0}, {"iat": 0}, {"exp": 2e9, "iat": 0, "nbf": [1]},
    {"exp": 2e9, "iat": 2e9}, {"exp": 2e9, "iat": 0, "iss": "someone-else"},
], ids=["exp-text", "exp-bool", "no-exp", "nbf-list", "issued-in-future", "other-issuer"])
async def test_well_signed_tokens_with_bad_claims_are_refused(setup: Setup, claims: dict[str, object]) -> None:
    key = setup.ring.signing_key()
    token = jwt.encode({"iss": ISSUER, "aud": AUDIENCE, **claims}, key.private, algorithm="EdDSA",
                       headers={"kid": key.kid})
    refused = await setup.verifier().check(bearer(token))
    assert refused is not None and refused.status == 401 and refused.message.startswith("invalid delivery token")


async def test_tokens_are_reused_for_half_their_life_and_verified_once(setup: Setup) -> None:
    first = setup.signer.token(AUDIENCE, SUBJECT)
    assert setup.signer.token(AUDIENCE, SUBJECT) == first
    assert setup.signer.token(AUDIENCE, trigger_subject("shop", "other")) != first
    verifier = setup.verifier()
    for _ in range(5):
        assert await verifier.check(bearer(first)) is None
    assert setup.published.reads == 1
    setup.clock.now += TOKEN_LIFETIME / 2 + 1
    second = setup.signer.token(AUDIENCE, SUBJECT)
    assert second != first
    assert await verifier.check(bearer(second)) is None
    assert setup.published.reads == 1  # same key: nothing new to read


async def test_rotation_publishes_ahead_and_the_runtime_reads_the_new_key_once(setup: Setup) -> None:
    verifier = setup.verifier()
    old = setup.signer.token(AUDIENCE, SUBJECT)
    assert await verifier.check(bearer(old)) is None
    old_kid = jwt.get_unverified_header(old)["kid"]

    setup.clock.now += KEY_ROTATION
    setup.signer._tokens.clear()
    # The new key is made now but published ahead of use: the old one still signs for PUBLISH_AHEAD seconds.
    assert jwt.get_unverified_header(setup.signer.token(AUDIENCE, SUBJECT))["kid"] == old_kid
    assert len(setup.ring.jwks()["keys"]) == 2
    setup.clock.now += PUBLISH_AHEAD
    setup.signer._tokens.clear()
    new = setup.signer.token(AUDIENCE, SUBJECT)
    assert jwt.get_unverified_header(new)["kid"] != old_kid
    assert await verifier.check(bearer(new)) is None
    assert setup.published.reads == 2
    # The old key stays published while tokens it signed can still be valid, then goes.
    assert old_kid in {key["kid"] for key in setup.ring.jwks()["keys"]}
    setup.clock.now += KEY_ROTATION + TOKEN_LIFETIME + LEEWAY
    setup.signer._tokens.clear()
    setup.signer.token(AUDIENCE, SUBJECT)
    assert old_kid not in {key["kid"] for key in setup.ring.jwks()["keys"]}


async def test_unknown_keys_are_read_for_at_most_every_few_seconds(setup: Setup) -> None:
    verifier = setup.verifier()
    stranger = KeyRing(clock=setup.clock)
    token = DeliverySigner(stranger).token(AUDIENCE, SUBJECT)
    refused = await verifier.check(bearer(token))
    assert refused is not None and refused.status == 401 and "unknown key" in refused.message
    for _ in range(3):  # made-up kids in a loop do not become JWKS reads
        again = await verifier.check(bearer(token))
        assert again is not None and again.status == 503 and "not known yet" in again.message
    assert setup.published.reads == 1
    # The key was published meanwhile (another dispatcher's): the next read finds it.
    setup.published.rings.append(stranger)
    setup.clock.now += 5
    assert await verifier.check(bearer(token)) is None
    assert setup.published.reads == 2


async def test_keys_that_cannot_be_read_are_a_503_not_a_refusal(setup: Setup) -> None:
    setup.published.down = True
    refused = await setup.verifier().check(bearer(setup.signer.token(AUDIENCE, SUBJECT)))
    assert refused is not None and refused.status == 503 and "cannot check" in refused.message


def test_settings_come_from_the_environment_and_bad_ones_name_the_variable() -> None:
    assert verifier_from_env(AUDIENCE, {}) is None
    made = verifier_from_env(AUDIENCE, {"RIPPLE_DELIVERY_KEYS": "http://dispatcher/.well-known/jwks.json"})
    assert made is not None and made.mode == "required"
    optional = verifier_from_env(AUDIENCE, {"RIPPLE_DELIVERY_KEYS": "/keys.json", "RIPPLE_DELIVERY_AUTH": "optional"})
    assert optional is not None and optional.mode == "optional"
    assert verifier_from_env(AUDIENCE, {"RIPPLE_DELIVERY_KEYS": "/k", "RIPPLE_DELIVERY_AUTH": "off"}) is None
    with pytest.raises(ValueError, match="RIPPLE_DELIVERY_AUTH: 'sometimes'"):
        verifier_from_env(AUDIENCE, {"RIPPLE_DELIVERY_KEYS": "/k", "RIPPLE_DELIVERY_AUTH": "sometimes"})
    with pytest.raises(ValueError, match="needs RIPPLE_DELIVERY_KEYS"):
        verifier_from_env(AUDIENCE, {"RIPPLE_DELIVERY_AUTH": "required"})
