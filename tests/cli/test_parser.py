"""``ripple``'s arguments: each command's typical invocation parses into the command and the values it runs with."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from ripple.cli.parser import DEFAULT_DATA_DIR, build_parser, key_value, namespaced
from ripple.defaults import ACTIVATION_TIMEOUT, MAX_BODY

NATS = "nats://127.0.0.1:4222"


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(list(argv))


def refused(*argv: str, capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exited:
        parse(*argv)
    assert exited.value.code == 2
    return capsys.readouterr().err


def test_dev():
    args = parse("dev", "functions/order-flow", "extra.yaml", "--port", "9090", "--pool-size", "0")
    assert args.command == "dev" and args.verbose is False
    assert args.paths == [Path("functions/order-flow"), Path("extra.yaml")]
    assert (args.host, args.port, args.pool_size) == ("127.0.0.1", 9090, 0)
    assert (args.data_dir, args.max_body, args.activation_timeout) == (DEFAULT_DATA_DIR, MAX_BODY, ACTIVATION_TIMEOUT)


def test_dev_needs_a_manifest(capsys):
    assert "paths" in refused("dev", capsys=capsys)


def test_send():
    args = parse("send", "--to", "http://127.0.0.1:8080/shop/default", "--type", "order.placed", "--source", "/shop",
                 "--id", "order-1", "--data", '{"orderId": 1}', "--mode", "structured",
                 "--ext", "tenant=acme", "--ext", "query=a=b")
    assert args.command == "send"
    assert (args.to, args.type, args.source, args.id) == ("http://127.0.0.1:8080/shop/default", "order.placed",
                                                           "/shop", "order-1")
    assert (args.data, args.mode, args.subject) == ('{"orderId": 1}', "structured", None)
    assert args.ext == [("tenant", "acme"), ("query", "a=b")]


def test_send_defaults_and_refusals(capsys):
    args = parse("send", "--to", "http://x/", "--type", "t", "--source", "/s")
    assert (args.mode, args.ext, args.id, args.data) == ("binary", [], None, None)
    assert "--to" in refused("send", "--type", "t", "--source", "/s", capsys=capsys)
    assert "expected key=value" in refused("send", "--to", "u", "--type", "t", "--source", "/s", "--ext", "novalue",
                                           capsys=capsys)
    assert "invalid choice" in refused("send", "--to", "u", "--type", "t", "--source", "/s", "--mode", "batch",
                                       capsys=capsys)


def test_function_serve():
    args = parse("function", "serve", "--handler", "validate:handle", "--path", "functions/order-flow/validate",
                 "--port", "9000")
    assert (args.command, args.function_command) == ("function", "serve")
    assert (args.handler, args.pool, args.path) == ("validate:handle", False, Path("functions/order-flow/validate"))
    assert (args.host, args.port, args.timeout) == ("0.0.0.0", 9000, 30.0)

    pool = parse("function", "serve", "--pool")
    assert (pool.handler, pool.pool, pool.path) == (None, True, None)


def test_function_serve_takes_a_handler_or_the_pool(capsys):
    assert "one of the arguments" in refused("function", "serve", capsys=capsys)
    assert "not allowed with" in refused("function", "serve", "--pool", "--handler", "m:f", capsys=capsys)
    refused("function", capsys=capsys)


def test_ingress():
    args = parse("ingress", "--kubernetes", "--nats", NATS)
    assert args.command == "ingress"
    assert (args.kubernetes, args.nats, args.paths) == (True, NATS, [])
    assert (args.host, args.port, args.max_body) == ("0.0.0.0", 8080, MAX_BODY)

    local = parse("ingress", "brokers.yaml", "--nats", NATS, "--port", "8081", "--max-body", "1024")
    assert (local.kubernetes, local.paths, local.port, local.max_body) == (False, [Path("brokers.yaml")], 8081, 1024)


def test_ingress_needs_nats(capsys):
    assert "--nats" in refused("ingress", "--kubernetes", capsys=capsys)


def test_dispatcher_kubernetes():
    args = parse("dispatcher", "--kubernetes", "--nats", NATS, "--readiness", "pods", "--health-port", "8081",
                 "--no-autoscaler", "--activation-timeout", "5")
    assert args.command == "dispatcher"
    assert (args.kubernetes, args.nats, args.paths) == (True, NATS, [])
    assert (args.readiness, args.health_port, args.no_autoscaler, args.activation_timeout) == ("pods", 8081, True, 5.0)


def test_dispatcher_from_manifests():
    args = parse("dispatcher", "triggers.yaml", "--nats", NATS, "--function-url", "shop/ship=http://127.0.0.1:9001/")
    assert (args.kubernetes, args.paths) == (False, [Path("triggers.yaml")])
    assert args.function_url == [("shop/ship", "http://127.0.0.1:9001/")]
    assert (args.readiness, args.health_port, args.no_autoscaler) == ("endpointslices", None, False)
    assert args.activation_timeout == ACTIVATION_TIMEOUT


def test_dispatcher_refusals(capsys):
    assert "--nats" in refused("dispatcher", "--kubernetes", capsys=capsys)
    assert "invalid choice" in refused("dispatcher", "--nats", NATS, "--readiness", "dns", capsys=capsys)


def test_autoscaler():
    args = parse("autoscaler", "--kubernetes", "--nats", NATS, "--health-port", "8082")
    assert args.command == "autoscaler"
    assert (args.kubernetes, args.nats, args.health_port) == (True, NATS, 8082)


def test_autoscaler_is_for_a_cluster_only(capsys):
    assert "--kubernetes" in refused("autoscaler", "--nats", NATS, capsys=capsys)


def test_operator():
    args = parse("operator", "--nats", NATS, "--ingress-url", "http://ripple-ingress.ripple.svc:8080",
                 "--namespace", "shop", "--namespace", "billing", "--webhook-service", "ripple/ripple-webhook",
                 "--liveness", "http://0.0.0.0:8081/healthz")
    assert args.command == "operator"
    assert (args.nats, args.ingress_url) == (NATS, "http://ripple-ingress.ripple.svc:8080")
    assert args.namespace == ["shop", "billing"]
    assert (args.webhook_service, args.webhook_port, args.webhook_host) == ("ripple/ripple-webhook", 9443, None)
    assert (args.webhook_cert, args.webhook_key, args.runtime_image) == (None, None, None)
    assert args.liveness == "http://0.0.0.0:8081/healthz"

    certs = parse("operator", "--nats", NATS, "--ingress-url", "http://i", "--webhook-cert", "tls.crt",
                  "--webhook-key", "tls.key", "--runtime-image", "registry.example/runtime:1")
    assert (certs.webhook_cert, certs.webhook_key) == (Path("tls.crt"), Path("tls.key"))
    assert (certs.namespace, certs.runtime_image) == ([], "registry.example/runtime:1")


def test_operator_needs_nats_and_the_ingress_url(capsys):
    assert "--ingress-url" in refused("operator", "--nats", NATS, capsys=capsys)


def test_crds():
    assert parse("crds").output == Path("crds")
    args = parse("crds", "--output", "charts/ripple/crds")
    assert (args.command, args.output) == ("crds", Path("charts/ripple/crds"))


def test_status():
    args = parse("status", "--json")
    assert (args.command, args.json, args.url, args.data_dir) == ("status", True, None, DEFAULT_DATA_DIR)
    args = parse("status", "--url", "http://127.0.0.1:8080", "--data-dir", "/tmp/ripple")
    assert (args.json, args.url, args.data_dir) == (False, "http://127.0.0.1:8080", Path("/tmp/ripple"))


def test_dlq_list():
    args = parse("dlq", "--nats", NATS, "--broker", "shop/orders", "list", "--limit", "5")
    assert (args.command, args.dlq_command) == ("dlq", "list")
    assert (args.nats, args.broker, args.limit) == (NATS, "shop/orders", 5)

    default = parse("dlq", "list")
    assert (default.nats, default.broker, default.data_dir, default.limit) == (None, "default/default",
                                                                               DEFAULT_DATA_DIR, 100)


def test_dlq_show():
    args = parse("dlq", "show", "42")
    assert (args.dlq_command, args.sequence) == ("show", 42)


def test_dlq_redrive():
    args = parse("dlq", "--data-dir", "/tmp/ripple", "redrive", "1", "2", "--trigger", "ship")
    assert (args.dlq_command, args.sequences, args.trigger) == ("redrive", [1, 2], "ship")
    assert args.data_dir == Path("/tmp/ripple")
    every = parse("dlq", "redrive")
    assert (every.sequences, every.trigger) == ([], None)


def test_dlq_refusals(capsys):
    assert "invalid int value" in refused("dlq", "show", "last", capsys=capsys)
    refused("dlq", capsys=capsys)


def test_verbose_and_no_command(capsys):
    assert parse("-v", "status").verbose is True
    refused(capsys=capsys)
    assert "invalid choice" in refused("deploy", capsys=capsys)


def test_key_value():
    assert key_value("a=b") == ("a", "b")
    assert key_value("a=") == ("a", "")
    assert key_value("url=http://x/?q=1") == ("url", "http://x/?q=1")
    for text in ("a", "=b", ""):
        with pytest.raises(argparse.ArgumentTypeError):
            key_value(text)


def test_namespaced():
    assert namespaced("shop/orders") == ("shop", "orders")
    assert namespaced("orders") == ("default", "orders")


def test_ingress_limits():
    from ripple.defaults import MAX_BATCH, MAX_FANOUT
    from ripple.ingress.limits import RateLimit

    for command in (["ingress", "--kubernetes", "--nats", NATS], ["dev", "manifests"]):
        args = parse(*command)
        assert (args.max_batch, args.rate_limit_broker, args.rate_limit_sender) == (MAX_BATCH, None, None)
        limited = parse(*command, "--max-batch", "50", "--rate-limit-broker", "2000:10000",
                        "--rate-limit-sender", "0.5")
        assert limited.max_batch == 50
        assert (limited.rate_limit_broker, limited.rate_limit_sender) == (RateLimit(2000, 10000), RateLimit(0.5, 1))
    for command in (["dev", "manifests"], ["dispatcher", "manifests", "--nats", NATS],
                    ["operator", "--nats", NATS, "--ingress-url", "http://i"]):
        assert parse(*command).max_fanout == MAX_FANOUT
        assert parse(*command, "--max-fanout", "7").max_fanout == 7


def test_ingress_limits_refusals(capsys):
    assert "RATE[:BURST]" in refused("ingress", "--kubernetes", "--nats", NATS, "--rate-limit-broker", "fast",
                                     capsys=capsys)
    assert "burst must be >= 1" in refused("dev", "m", "--rate-limit-sender", "10:0", capsys=capsys)
    assert ">= 1" in refused("dev", "m", "--max-batch", "0", capsys=capsys)
    assert ">= 1" in refused("dispatcher", "m", "--nats", NATS, "--max-fanout", "none", capsys=capsys)
