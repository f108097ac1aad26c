"""Secrets in local mode: loaded from the manifests, checked against every secretRef, never shown."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from ripple.api.loading import ManifestError, load_manifests

SOURCE = """
apiVersion: ripple.dev/v1alpha1
kind: EventSource
metadata: {name: stripe, namespace: shop}
spec:
  sink: {ref: {kind: Broker, name: default}}
  webhook:
    signature: {scheme: stripe, secretRef: {name: stripe-webhook, key: %s}}
"""
SECRET = """
apiVersion: v1
kind: Secret
metadata: {name: stripe-webhook, namespace: shop}
stringData: {whsec: whsec_plain_text_value}
data: {other: %s, whsec: %s}
"""


def write(tmp_path: Path, *docs: str) -> Path:
    path = tmp_path / "m.yaml"
    path.write_text("\n---\n".join(docs))
    return path


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_secrets_load_with_string_data_winning_and_never_in_the_repr(tmp_path: Path):
    found = load_manifests([write(tmp_path, SOURCE % "whsec", SECRET % (b64("second"), b64("overridden")))])
    secret = found.secrets[("shop", "stripe-webhook")]
    assert secret.data == {"other": b"second", "whsec": b"whsec_plain_text_value"}
    assert "whsec_plain" not in repr(found) and "second" not in repr(secret)


@pytest.mark.parametrize(("docs", "message"), [
    ((SOURCE % "whsec",), "spec.webhook.signature.secretRef: no Secret 'stripe-webhook' in namespace shop"),
    ((SOURCE % "missing", SECRET % (b64("x"), b64("y"))), "Secret 'stripe-webhook' has no key 'missing'"),
    ((SECRET % ("not base64!", b64("y")),), "data.other: not valid base64"),
    (("apiVersion: v1\nkind: Secret\nmetadata: {namespace: shop}",), "metadata.name: required"),
    (("apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {k: 1}",), "stringData.k: must be a string"),
])
def test_unusable_secrets_and_references_are_refused_naming_the_field(tmp_path: Path, docs, message):
    with pytest.raises(ManifestError, match=message) as caught:
        load_manifests([write(tmp_path, *docs)])
    assert "whsec_plain" not in str(caught.value) and "not base64!" not in str(caught.value)


def test_a_secret_in_another_namespace_does_not_count(tmp_path: Path):
    other = (SECRET % (b64("x"), b64("y"))).replace("namespace: shop", "namespace: billing")
    with pytest.raises(ManifestError, match="no Secret 'stripe-webhook' in namespace shop"):
        load_manifests([write(tmp_path, SOURCE % "whsec", other)])
