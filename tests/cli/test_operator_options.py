"""``ripple operator``'s production options: the metrics port, the webhook's CA, and the NetworkPolicy each
Function gets (what it admits, and that its namespace is never guessed)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from ripple.cli.operator import dispatcher_pods
from ripple.cli.parser import build_parser
from ripple.controller.resources.function import DispatcherPods
from ripple.defaults import DISPATCHER_LABELS, OPERATOR_METRICS_PORT

BASE = ("operator", "--nats", "nats://127.0.0.1:4222", "--ingress-url", "http://i")


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args([*BASE, *argv])


def test_defaults_serve_metrics_and_give_functions_no_policy():
    args = parse()
    assert args.metrics_port == OPERATOR_METRICS_PORT
    assert (args.webhook_ca, args.function_network_policy, args.dispatcher_label) == (None, False, [])
    assert dispatcher_pods(args) is None
    assert parse("--metrics-port", "0").metrics_port == 0  # no metrics server


def test_webhook_ca():
    args = parse("--webhook-cert", "tls.crt", "--webhook-key", "tls.key", "--webhook-ca", "ca.crt")
    assert args.webhook_ca == Path("ca.crt")


def test_the_policy_admits_the_dispatcher_it_is_told(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("POD_NAMESPACE", raising=False)
    args = parse("--function-network-policy", "--dispatcher-namespace", "ripple-system",
                 "--dispatcher-label", "app.kubernetes.io/instance=ripple",
                 "--dispatcher-label", "app.kubernetes.io/component=dispatcher")
    assert dispatcher_pods(args) == DispatcherPods(
        "ripple-system", {"app.kubernetes.io/instance": "ripple", "app.kubernetes.io/component": "dispatcher"})


def test_the_policy_defaults_to_the_pods_namespace_and_ripple_s_dispatcher_labels(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("POD_NAMESPACE", "events")
    assert dispatcher_pods(parse("--function-network-policy")) == DispatcherPods("events", DISPATCHER_LABELS)
    monkeypatch.delenv("POD_NAMESPACE")
    with pytest.raises(ValueError, match="--dispatcher-namespace"):
        dispatcher_pods(parse("--function-network-policy"))
