"""EventPolicies at a real ingress against a real nats-server: static tokens from Secrets, and OIDC tokens from an
issuer served here (discovery document and JWKS over HTTP, RSA keys that rotate). No token or a token that proves
nobody is 401, a known sender not allowed (or sending what the policy's filters refuse) is 403; nothing is stored
either way, and every answer is counted."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa

from ripple.api.models import EventPolicy
from ripple.ingress.app import IngressSettings, create_ingress_app
from ripple.ingress.policies import PolicyBook, Refusal, secret_digests
from ripple.metrics import INGRESS_AUTH
from ripple.store import EventStore
from tests.ingress.test_ingress import BINARY, post, stored
from tests.support import serve

PARTNER_TOKEN = "partner-7f3a9c2e1b8d4f60"
AUDIENCE = "ripple-shop"


@dataclass
class Issuer:
    """An OIDC issuer: a discovery document and a JWKS over HTTP, and keys that rotate."""

    url: str = ""
    keys: dict[str, Any] = field(default_factory=dict)
    reads: int = 0

    def rotate(self, kid: str) -> None:
        self.keys[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def token(self, kid: str, *, audience: str = AUDIENCE, expires_in: float = 300, **claims: Any) -> str:
        now = int(time.time())
        body = {"iss": self.url, "aud": audience, "sub": "checkout", "iat": now, "exp": int(now + expires_in),
                **claims}
        return jwt.encode(body, self.keys[kid], algorithm="RS256", headers={"kid": kid})

    def app(self) -> web.Application:
        async def discovery(request: web.Request) -> web.Response:
            return web.json_response({"issuer": self.url, "jwks_uri": f"{self.url}/keys"})

        async def keys(request: web.Request) -> web.Response:
            self.reads += 1
            published = []
            for kid, key in self.keys.items():
                jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
                published.append({**jwk, "kid": kid, "use": "sig", "alg": "RS256"})
            return web.json_response({"keys": published})

        app = web.Application()
        app.router.add_get("/.well-known/openid-configuration", discovery)
        app.router.add_get("/keys", keys)
        return app


def policies(issuer: str) -> list[EventPolicy]:
    docs = [
        {"metadata": {"name": "partners"},
         "spec": {"to": [{"broker": "default"}],
                  "from": [{"token": {"secretRef": {"name": "partner", "key": "token"}}}],
                  "filters": [{"prefix": {"type": "order."}}]}},
        {"metadata": {"name": "checkout"},
         "spec": {"from": [{"oidc": {"issuer": issuer, "audience": AUDIENCE, "claims": {"team": "payments"}}}]}},
    ]
    return [EventPolicy.model_validate({"apiVersion": "ripple.dev/v1alpha1", "kind": "EventPolicy", **d})
            for d in docs]


@pytest.fixture
async def issuer() -> AsyncIterator[Issuer]:
    found = Issuer()
    found.rotate("k1")
    async with serve(found.app()) as url:
        found.url = url
        yield found


@pytest.fixture
async def guarded(issuer: Issuer, store: EventStore) -> AsyncIterator[str]:
    secrets = {("default", "partner"): {"token": PARTNER_TOKEN.encode()}}
    book = PolicyBook(policies(issuer.url), secret_digests(lambda ns, name, key: secrets.get((ns, name), {}).get(key)))
    settings = IngressSettings(brokers=lambda ns, b: ns == "default", policies=book)
    async with serve(create_ingress_app(store, settings)) as url:
        yield url + "/default"


def counted(outcome: str) -> float:
    return INGRESS_AUTH.labels("default", "default", outcome)._value.get()


async def test_no_token_is_401_with_a_challenge_and_nothing_stored(guarded, http, store):
    before = counted("unauthenticated")
    async with http.post(f"{guarded}/default", headers=BINARY) as answer:
        assert answer.status == 401 and answer.headers["WWW-Authenticate"].startswith("Bearer")
        assert "takes events only from senders an EventPolicy allows" in (await answer.json())["error"]
    for header in ("Basic dXNlcjpwYXNz", "Bearer ", "Bearer wrong-token-of-some-length"):
        status, _ = await post(http, f"{guarded}/default", **BINARY, Authorization=header)
        assert status == 401, header
    assert await stored(store) == [] and counted("unauthenticated") == before + 4


async def test_a_static_token_sends_what_its_policy_allows(guarded, http, store):
    auth = {"Authorization": f"Bearer {PARTNER_TOKEN}"}
    assert (await post(http, f"{guarded}/default", **BINARY, **auth))[0] == 202
    status, body = await post(http, f"{guarded}/default", **{**BINARY, "ce-type": "refund.issued"}, **auth)
    assert status == 403 and "may not send event '1' of type 'refund.issued'" in body["error"]
    assert [e.type for e in await stored(store)] == ["order.placed"]


async def test_an_oidc_token_is_verified_against_the_issuers_keys(guarded, http, issuer, store):
    good = issuer.token("k1", team="payments")
    assert (await post(http, f"{guarded}/default", **BINARY, Authorization=f"Bearer {good}"))[0] == 202
    cases = {
        "wrong audience": issuer.token("k1", audience="someone-else", team="payments"),
        "expired": issuer.token("k1", expires_in=-120, team="payments"),
        "not signed by the issuer": jwt.encode({"iss": issuer.url, "aud": AUDIENCE, "exp": int(time.time()) + 60},
                                               rsa.generate_private_key(public_exponent=65537, key_size=2048),
                                               algorithm="RS256", headers={"kid": "k1"}),
    }
    for case, token in cases.items():
        status, body = await post(http, f"{guarded}/default", **BINARY, Authorization=f"Bearer {token}")
        assert status == 401, case
        assert "proves no sender" in body["error"], case
    other_team = issuer.token("k1", team="marketing")
    status, body = await post(http, f"{guarded}/default", **BINARY, Authorization=f"Bearer {other_team}")
    assert status == 403 and "OIDC subject" in body["error"], "a valid identity the policy does not allow"
    assert len(await stored(store)) == 1


async def test_rotated_keys_are_read_again_and_verified_tokens_are_kept(guarded, http, issuer, store):
    first = issuer.token("k1", team="payments")
    for _ in range(3):
        assert (await post(http, f"{guarded}/default", **BINARY, Authorization=f"Bearer {first}"))[0] == 202
    assert issuer.reads == 1, "one read of the keys, one verification, for three requests"
    issuer.rotate("k2")
    import ripple.ingress.policies as module

    module.JWKS_RETRY, saved = 0.0, module.JWKS_RETRY
    try:
        rotated = issuer.token("k2", team="payments")
        assert (await post(http, f"{guarded}/default", **BINARY, Authorization=f"Bearer {rotated}"))[0] == 202
    finally:
        module.JWKS_RETRY = saved
    assert issuer.reads == 2


async def test_a_broker_no_policy_names_is_open_and_an_empty_to_guards_every_broker(guarded, http, store):
    # "checkout" has an empty spec.to: it guards every broker of its namespace, "open" included.
    assert (await post(http, f"{guarded}/open", **BINARY))[0] == 401
    book = PolicyBook([], secret_digests(lambda *a: None))
    assert not book.guards("default", "default")


def test_a_policy_whose_token_cannot_be_read_or_is_short_is_refused_naming_the_field(issuer):
    with pytest.raises(ValueError, match=r"spec.from\[0\].token.secretRef: Secret 'partner' has no key 'token'"):
        PolicyBook(policies(issuer.url), secret_digests(lambda *a: None))
    with pytest.raises(ValueError, match="shorter than 16 bytes"):
        PolicyBook(policies(issuer.url), secret_digests(lambda *a: b"short"))


@pytest.mark.parametrize(("spec", "message"), [
    ({"from": []}, "at least 1 item"),
    ({"from": [{}]}, "exactly one of serviceAccount, oidc, token must be set"),
    ({"from": [{"oidc": {"issuer": "http://idp.example", "audience": "a"}}]}, "String should match pattern"),
    ({"from": [{"token": {"secretRef": {"name": "t", "key": "k"}}}], "filters": [{"nonsense": {}}]}, "filters"),
])
def test_a_policy_that_cannot_work_is_refused(spec, message):
    with pytest.raises(ValueError, match=message):
        EventPolicy.model_validate({"apiVersion": "ripple.dev/v1alpha1", "kind": "EventPolicy",
                                    "metadata": {"name": "p"}, "spec": spec})


class CountingReviewer:
    """A TokenReview that knows no token and counts how often it is asked."""

    def __init__(self) -> None:
        self.asked = 0

    async def review(self, token: str, audience: str) -> tuple[str, str] | None:
        self.asked += 1
        return None


async def test_a_token_that_proved_nobody_is_not_checked_again_for_a_while():
    policy = EventPolicy.model_validate({
        "apiVersion": "ripple.dev/v1alpha1", "kind": "EventPolicy", "metadata": {"name": "accounts"},
        "spec": {"from": [{"serviceAccount": {"namespace": "default", "name": "checkout"}}]}})
    reviewer = CountingReviewer()
    book = PolicyBook([policy], secret_digests(lambda *a: None), reviewer=reviewer)
    for _ in range(5):
        refusal = await book.check("default", "default", "Bearer junk-token-sent-in-a-loop", [])
        assert refusal is not None and refusal.status == 401
    assert reviewer.asked == 1
    assert (await book.check("default", "other", "Bearer junk-token-sent-in-a-loop", [])).status == 401
    assert reviewer.asked == 2, "another broker is another audience: asked again"


class AudienceReviewer:
    """A TokenReview that knows one token per audience, as the API server does for projected tokens."""

    def __init__(self, tokens: dict[tuple[str, str], tuple[str, str]]) -> None:
        self.tokens = tokens
        self.asked: list[str] = []

    async def review(self, token: str, audience: str) -> tuple[str, str] | None:
        self.asked.append(audience)
        return self.tokens.get((token, audience))


async def test_the_namespace_default_takes_only_its_own_service_accounts_each_for_its_broker():
    reviewer = AudienceReviewer({("shop-token", "ripple/shop/default"): ("shop", "checkout"),
                                 ("ops-token", "ripple/shop/default"): ("ops", "checkout")})
    book = PolicyBook([], secret_digests(lambda *a: None), reviewer=reviewer, default="namespace")
    anonymous = await book.check("shop", "default", None, [])
    assert isinstance(anonymous, Refusal) and anonymous.status == 401
    assert "ServiceAccounts of namespace 'shop'" in anonymous.message and "ripple/shop/default" in anonymous.message
    allowed = await book.check("shop", "default", "Bearer shop-token", [])
    assert not isinstance(allowed, Refusal) and allowed is not None
    assert allowed.identity == "serviceaccount:shop/checkout"
    foreign = await book.check("shop", "default", "Bearer ops-token", [])
    assert isinstance(foreign, Refusal) and foreign.status == 403 and "ops/checkout" in foreign.message
    # Proven for broker default, the token is not taken at broker orders: it is reviewed for that audience.
    elsewhere = await book.check("shop", "orders", "Bearer shop-token", [])
    assert isinstance(elsewhere, Refusal) and elsewhere.status == 401
    assert reviewer.asked.count("ripple/shop/orders") == 1
    assert await PolicyBook([], secret_digests(lambda *a: None)).check("shop", "default", None, []) is None
    with pytest.raises(ValueError, match="default policy 'closed'"):
        PolicyBook([], secret_digests(lambda *a: None), default="closed")


async def test_a_dispatcher_s_flow_hop_is_proved_by_a_token_for_that_flow_only():
    from ripple.ingress.policies import RippleHops
    from ripple.signing import DeliverySigner, flow_audience, trigger_subject

    signer = DeliverySigner()

    async def jwks() -> dict[str, object]:
        return signer.ring.jwks()

    hops = RippleHops(jwks)
    audience = flow_audience("Sequence", "shop", "fulfil")
    token = signer.token(audience, trigger_subject("shop", "orders"))
    assert await hops.proves(audience, f"Bearer {token}")
    assert not await hops.proves(flow_audience("Parallel", "shop", "fulfil"), f"Bearer {token}")
    assert not await hops.proves(audience, None) and not await hops.proves(audience, "Bearer junk")
