"""Webhook signature schemes against the senders' own documented examples, and every way a request can fail:
each failure names the header, never a secret or a signature."""

from __future__ import annotations

import pytest
from multidict import CIMultiDict

from ripple.sources.signatures import SignatureRefused, Verifier, hex_hmac

# GitHub's documented example (docs.github.com, "Validating webhook deliveries").
GITHUB_SECRET = b"It's a Secret to Everybody"
GITHUB_BODY = b"Hello, World!"
GITHUB_SIGNATURE = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
STRIPE_SECRET = b"whsec_test_secret"
NOW = 1_700_000_000


def headers(**values: str) -> CIMultiDict[str]:
    return CIMultiDict({k.replace("_", "-"): v for k, v in values.items()})


def refused(verifier: Verifier, hdrs: CIMultiDict[str], body: bytes, match: str, **kwargs: float) -> str:
    with pytest.raises(SignatureRefused, match=match) as caught:
        verifier.verify(hdrs, body, **kwargs)
    message = str(caught.value)
    for secret in (GITHUB_SECRET, STRIPE_SECRET, b"s3cr3t-token"):
        assert secret.decode() not in message
    assert not any(len(word) >= 32 and all(c in "0123456789abcdef" for c in word) for word in message.split())
    return message


def test_github_documented_example():
    verifier = Verifier("github", GITHUB_SECRET)
    verifier.verify(headers(X_Hub_Signature_256=GITHUB_SIGNATURE), GITHUB_BODY)
    verifier.verify(headers(x_hub_signature_256=GITHUB_SIGNATURE.upper().replace("SHA256", "sha256")), GITHUB_BODY)


@pytest.mark.parametrize(("hdrs", "body", "match"), [
    (headers(), GITHUB_BODY, "missing X-Hub-Signature-256 header"),
    (headers(X_Hub_Signature_256="  "), GITHUB_BODY, "missing X-Hub-Signature-256"),
    (headers(X_Hub_Signature_256="sha1=abc"), GITHUB_BODY, "malformed"),
    (headers(X_Hub_Signature_256=GITHUB_SIGNATURE), b"Hello, World?", "does not match"),
    (headers(X_Hub_Signature_256=GITHUB_SIGNATURE[:-1] + "0"), GITHUB_BODY, "does not match"),
    (headers(X_Hub_Signature_256="sha256=" + "é" * 10), GITHUB_BODY, "malformed"),
    (headers(X_Hub_Signature_256="sha256=" + "a" * 5000), GITHUB_BODY, "malformed"),
])
def test_github_refusals(hdrs, body, match):
    refused(Verifier("github", GITHUB_SECRET), hdrs, body, match)


def stripe_header(body: bytes, t: int = NOW, secret: bytes = STRIPE_SECRET, extra: str = "") -> str:
    return f"t={t},v1={hex_hmac(secret, f'{t}.'.encode() + body)}{extra}"


def test_stripe_signature_with_a_rolled_secret_and_v0():
    body = b'{"id":"evt_1","type":"checkout.session.completed"}'
    verifier = Verifier("stripe", STRIPE_SECRET)
    verifier.verify(headers(Stripe_Signature=stripe_header(body)), body, now=NOW + 10)
    rolled = f"t={NOW},v1={hex_hmac(b'old', b'x')},v1={hex_hmac(STRIPE_SECRET, f'{NOW}.'.encode() + body)},v0=zz"
    verifier.verify(headers(Stripe_Signature=rolled), body, now=NOW)


@pytest.mark.parametrize(("value", "now", "match"), [
    ("v1=abc", NOW, "malformed Stripe-Signature"),
    (f"t={NOW}", NOW, "malformed Stripe-Signature"),
    ("t=abc,v1=00", NOW, "malformed"),
    (None, NOW + 301, "outside the tolerance of 300s"),
    (None, NOW - 301, "outside the tolerance"),
    (f"t={NOW},v1={'0' * 64}", NOW, "does not match"),
])
def test_stripe_refusals(value, now, match):
    body = b'{"id":"evt_1"}'
    refused(Verifier("stripe", STRIPE_SECRET), headers(Stripe_Signature=value or stripe_header(body)), body, match,
            now=now)


def test_stripe_tolerance_is_configurable():
    body = b"{}"
    Verifier("stripe", STRIPE_SECRET, tolerance=3600).verify(headers(Stripe_Signature=stripe_header(body)), body,
                                                            now=NOW + 3000)


def test_generic_hmac_in_its_default_or_named_header():
    body = b'{"order":1}'
    signature = hex_hmac(b"k3y", body)
    Verifier("hmac-sha256", b"k3y").verify(headers(X_Ripple_Signature=signature), body)
    Verifier("hmac-sha256", b"k3y").verify(headers(X_Ripple_Signature="sha256=" + signature), body)
    Verifier("hmac-sha256", b"k3y", header="X-Shop-Hmac").verify(headers(X_Shop_Hmac=signature), body)
    refused(Verifier("hmac-sha256", b"k3y", header="X-Shop-Hmac"), headers(X_Ripple_Signature=signature), body,
            "missing X-Shop-Hmac header")
    refused(Verifier("hmac-sha256", b"other"), headers(X_Ripple_Signature=signature), body, "does not match")


def test_bearer_token():
    verifier = Verifier("token", b"s3cr3t-token")
    verifier.verify(headers(Authorization="Bearer s3cr3t-token"), b"")
    verifier.verify(headers(authorization="bearer  s3cr3t-token "), b"")
    for value in ("Bearer s3cr3t-tokeN", "Basic s3cr3t-token", "s3cr3t-token", "Bearer "):
        refused(verifier, headers(Authorization=value), b"", "Authorization")
    Verifier("token", b"t", header="X-Token").verify(headers(X_Token="Bearer t"), b"")


def test_github_and_stripe_always_read_their_own_header():
    assert Verifier("github", b"k", header="X-Other").header_name == "X-Hub-Signature-256"
    assert Verifier("stripe", b"k", header="X-Other").header_name == "Stripe-Signature"


def test_an_empty_secret_or_unknown_scheme_is_refused_at_configuration():
    with pytest.raises(ValueError, match="must not be empty"):
        Verifier("github", b"")
    with pytest.raises(ValueError, match="unknown signature scheme"):
        Verifier("md5", b"k")
