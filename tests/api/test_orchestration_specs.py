"""Sequence and Parallel manifests in local mode: what is accepted, and every refusal naming its field."""

from __future__ import annotations

from pathlib import Path

import pytest

from ripple.api.errors import ManifestError
from ripple.api.loading import load_manifests

FUNCTIONS = """
apiVersion: ripple.dev/v1alpha1
kind: Function
metadata: {name: pay}
spec: {handler: pay:handle, source: {inline: "def handle(e): pass"}}
---
apiVersion: ripple.dev/v1alpha1
kind: Function
metadata: {name: refund}
spec: {handler: refund:handle, source: {inline: "def handle(e): pass"}}
---
"""

SEQUENCE = FUNCTIONS + """
apiVersion: ripple.dev/v1alpha1
kind: Sequence
metadata: {name: fulfil}
spec:
  steps:
    - name: payment
      ref: {kind: Function, name: pay}
      delivery: {retry: 5}
      onError: {ref: {kind: Function, name: refund}}
    - {name: inventory, uri: "http://inventory.example/"}
  reply: {uri: "http://done.example/"}
"""


def load(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "m.yaml"
    path.write_text(text)
    return load_manifests([path])


def test_a_sequence_and_its_defaults(tmp_path: Path):
    (sequence,) = load(tmp_path, SEQUENCE).sequences.values()
    payment, inventory = sequence.spec.steps
    assert sequence.spec.broker == "default" and payment.delivery.retry == 5 and inventory.delivery.retry == 3
    assert payment.on_error is not None and payment.on_error.ref is not None and payment.on_error.ref.name == "refund"


def test_a_parallel_with_filters(tmp_path: Path):
    text = FUNCTIONS + """
apiVersion: ripple.dev/v1alpha1
kind: Parallel
metadata: {name: route}
spec:
  branches:
    - {filter: {attributes: {type: order.placed}}, subscriber: {ref: {kind: Function, name: pay}}}
    - {filters: [{cesql: "total > 100"}], subscriber: {uri: "http://audit.example/"}, reply: {uri: "http://r.example/"}}
"""
    (parallel,) = load(tmp_path, text).parallels.values()
    first, second = parallel.spec.branches
    assert first.compiled_filter is not None and second.reply is not None


@pytest.mark.parametrize(("change", "field"), [
    (lambda t: t.split("  steps:")[0] + "  steps: []\n", "spec.steps: List should have at least 1 item"),
    (lambda t: t.replace("name: inventory, uri", "name: payment, uri"), "step names must be unique"),
    (lambda t: t.replace("name: refund}}", "name: missing}}"), "spec.steps[0].onError.ref: no Function 'missing'"),
    (lambda t: t.replace("      ref: {kind: Function, name: pay}\n", ""), "exactly one of ref, uri must be set"),
    (lambda t: t.replace("metadata: {name: fulfil}", "metadata: {name: fulfil}\nspec0: {}"), "spec0"),
    (lambda t: t.replace("  steps:", "  broker: elsewhere\n  steps:"), "spec.broker: no Broker 'elsewhere'"),
    (lambda t: t.replace("kind: Sequence", "kind: Sequense"), "kind: unknown kind 'Sequense'"),
    (lambda t: t.replace("ref: {kind: Function, name: pay}", "ref: {kind: Broker, name: pay}"),
     "spec.steps.0.ref.kind"),
    (lambda t: t.replace("ref: {kind: Function, name: pay}", "ref: {kind: Sequence, name: absent}"),
     "spec.steps[0].ref: no Sequence 'absent'"),
], ids=["empty-steps", "duplicate-names", "unknown-on-error", "no-target", "unknown-field", "unknown-broker",
        "unknown-kind", "step-ref-of-unknown-kind", "step-ref-to-missing-sequence"])
def test_invalid_sequences_are_refused_naming_the_field(tmp_path: Path, change, field):
    with pytest.raises(ManifestError) as refused:
        load(tmp_path, change(SEQUENCE))
    assert field in str(refused.value), str(refused.value)


def test_a_branch_filter_that_does_not_compile_is_refused(tmp_path: Path):
    text = FUNCTIONS + """
apiVersion: ripple.dev/v1alpha1
kind: Parallel
metadata: {name: route}
spec:
  branches:
    - {filters: [{cesql: "total >"}], subscriber: {ref: {kind: Function, name: pay}}}
"""
    with pytest.raises(ManifestError) as refused:
        load(tmp_path, text)
    assert "spec.branches[0].filters" in str(refused.value)
