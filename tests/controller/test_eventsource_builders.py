"""The pure builders of an EventSource's adapter: names, least-privilege RBAC, the Deployment's inputs."""

from __future__ import annotations

import json

from ripple.api.models import EventSource
from ripple.cli.parser import build_parser
from ripple.controller.resources import eventsource as build


def source(name: str = "watch", **spec: object) -> EventSource:
    body = {"sink": {"uri": "http://sink.example/"}, **spec}
    return EventSource.model_validate({"apiVersion": "ripple.dev/v1alpha1", "kind": "EventSource",
                                       "metadata": {"name": name, "namespace": "shop"}, "spec": body})


KUBE = {"kubernetes": {"resources": [{"apiVersion": "v1", "kind": "ConfigMap"}], "namespaces": ["shop", "ops"]}}


def test_adapter_names_stay_dns_labels():
    assert build.adapter_name("hooks") == "hooks-source"
    long_a, long_b = "a" * 60, "a" * 59 + "b"
    assert len(build.adapter_name(long_a)) <= 63 and build.adapter_name(long_a) != build.adapter_name(long_b)


def test_rbac_grants_exactly_the_kinds_in_their_namespaces():
    grants = [build.Grant("", "configmaps", "shop"), build.Grant("", "configmaps", "ops"),
              build.Grant("apps", "deployments", "shop"), build.Grant("", "namespaces", None)]
    objects = build.rbac(source(**KUBE), grants)
    by_kind = {(o["kind"], o["metadata"].get("namespace")): o for o in objects}
    assert set(by_kind) == {("Role", "shop"), ("RoleBinding", "shop"), ("Role", "ops"), ("RoleBinding", "ops"),
                            ("ClusterRole", None), ("ClusterRoleBinding", None)}
    assert by_kind[("Role", "shop")]["rules"] == [
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "list", "watch"]},
    ]
    assert by_kind[("ClusterRole", None)]["rules"] == [
        {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "list", "watch"]}]
    binding = by_kind[("RoleBinding", "ops")]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "watch-source", "namespace": "shop"}]
    assert binding["roleRef"]["name"] == by_kind[("Role", "ops")]["metadata"]["name"]
    assert build.rbac(source(ping={"schedule": "@every 1m"}), []) == []


def test_the_deployment_carries_the_source_its_sink_and_only_the_secret_keys_it_names():
    hooks = source("hooks", webhook={"signature": {"scheme": "github", "secretRef": {"name": "gh", "key": "k"}}})
    deployment = build.deployment(hooks, image="ripple:test", sink_url="http://ingress/shop/default",
                                  dead_letter_url=None, nats_url="nats://nats:4222")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["args"][:4] == ["source", "run", "--sink", "http://ingress/shop/default"]
    assert "--nats" in container["args"] and "--dead-letter-sink" not in container["args"]
    assert container["args"][container["args"].index("--log-format") + 1] == "text"
    json_logs = build.deployment(hooks, image="ripple:test", sink_url="http://ingress/shop/default",
                                 dead_letter_url=None, nats_url=None, log_format="json")
    args = json_logs["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--log-format") + 1] == "json"  # the operator's own format
    assert parse_args(args).log_format == "json"  # what `ripple source run` understands
    env = {e["name"]: e["value"] for e in container["env"]}
    assert EventSource.model_validate(json.loads(env["RIPPLE_EVENTSOURCE"])) == hooks
    (volume,) = pod["volumes"]
    assert volume["secret"]["items"] == [{"key": "k", "path": "k"}]
    assert container["volumeMounts"] == [{"name": volume["name"], "mountPath": "/var/run/ripple/secrets/gh",
                                          "readOnly": True}]
    assert pod["automountServiceAccountToken"] is False
    watcher = build.deployment(source(**KUBE), image="i", sink_url="u", dead_letter_url="http://dl/", nats_url=None)
    assert watcher["spec"]["template"]["spec"]["automountServiceAccountToken"] is True


def test_the_webhook_address_includes_its_path():
    hooks = source("hooks", webhook={"path": "/github"})
    assert build.webhook_url(hooks) == "http://hooks-source.shop.svc.cluster.local/github"
    assert build.service(hooks)["spec"]["selector"] == {build.ADAPTER_LABEL: "hooks"}


def test_database_and_storage_adapters_may_patch_only_their_own_status():
    orders = source("orders", postgres={"connectionSecretRef": {"name": "db", "key": "dsn"}, "tables": ["public.o"]})
    (role, binding) = build.rbac(orders, [])
    assert role["kind"] == "Role" and role["rules"] == [{"apiGroups": ["ripple.dev"],
                                                         "resources": ["eventsources/status"],
                                                         "resourceNames": ["orders"], "verbs": ["get", "patch"]}]
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    deployment = build.deployment(orders, image="i", sink_url="u", dead_letter_url=None, nats_url="nats://n:4222")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is True and "--report-progress" in pod["containers"][0]["args"]


def parse_args(args: list[str]):  # type: ignore[no-untyped-def]
    return build_parser().parse_args(args)


def test_a_source_sends_to_its_broker_as_its_own_service_account():
    to_broker = source("hooks", webhook={}, sink={"ref": {"kind": "Broker", "name": "orders", "namespace": "ops"}})
    pod = build.deployment(to_broker, image="i", sink_url="http://ingress/ops/orders", dead_letter_url=None,
                           nats_url=None)["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    (projected,) = volumes["sink-token"]["projected"]["sources"]
    assert projected["serviceAccountToken"]["audience"] == "ripple/ops/orders"  # what the ingress reviews it for
    (container,) = pod["containers"]
    assert {"name": "RIPPLE_SINK_TOKEN_FILE", "value": "/var/run/ripple/sink-token/token"} in container["env"]
    assert pod["automountServiceAccountToken"] is False  # the projected token is for the sink, not the API server
    to_uri = build.deployment(source("hooks", webhook={}), image="i", sink_url="http://sink.example/",
                              dead_letter_url=None, nats_url=None)["spec"]["template"]["spec"]
    assert "sink-token" not in {v["name"] for v in to_uri["volumes"]}


def test_a_source_sending_to_a_function_gets_its_delivery_token_from_the_dispatchers():
    to_function = source("hooks", webhook={}, sink={"ref": {"kind": "Function", "name": "audit"}})
    exchange = "http://ripple-dispatcher.ripple-system.svc:8081/-/delivery-token"
    pod = build.deployment(to_function, image="i", sink_url="http://audit.shop.svc/", dead_letter_url=None,
                           nats_url=None, token_exchange=exchange)["spec"]["template"]["spec"]
    (projected,) = {v["name"]: v for v in pod["volumes"]}["sink-token"]["projected"]["sources"]
    assert projected["serviceAccountToken"]["audience"] == "ripple/shop/functions/audit"
    env = {e["name"]: e["value"] for e in pod["containers"][0]["env"]}
    assert env["RIPPLE_SINK_TOKEN_EXCHANGE"] == exchange + "?function=shop%2Faudit"
    unguarded = build.deployment(to_function, image="i", sink_url="http://audit.shop.svc/", dead_letter_url=None,
                                 nats_url=None)["spec"]["template"]["spec"]  # Functions check no tokens
    assert "sink-token" not in {v["name"] for v in unguarded["volumes"]}


def test_a_webhook_with_a_certificate_serves_https_from_its_secret():
    hooks = source("hooks", webhook={"path": "/github", "tls": {"secretName": "hooks-tls"}})
    assert [(path, ref.name, ref.key) for path, ref in hooks.spec.secret_refs()] == [
        ("spec.webhook.tls.secretName", "hooks-tls", "tls.crt"), ("spec.webhook.tls.secretName", "hooks-tls",
                                                                  "tls.key")]  # the operator waits for the Secret
    pod = build.deployment(hooks, image="i", sink_url="http://ingress/shop/default", dead_letter_url=None,
                           nats_url=None)["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    args = container["args"]
    assert args[args.index("--tls-cert") + 1] == "/var/run/ripple/secrets/hooks-tls/tls.crt"
    assert args[args.index("--tls-key") + 1] == "/var/run/ripple/secrets/hooks-tls/tls.key"
    assert parse_args(args).tls_cert is not None  # what `ripple source run` understands
    assert container["readinessProbe"]["httpGet"]["scheme"] == "HTTPS"
    assert build.service(hooks)["spec"]["ports"][0]["port"] == 443
    assert build.webhook_url(hooks) == "https://hooks-source.shop.svc.cluster.local/github"


def test_a_dead_letter_function_gets_an_exchanged_token_too():
    hooks = source("hooks", webhook={}, sink={"ref": {"kind": "Broker", "name": "default"}},
                   delivery={"deadLetterSink": {"ref": {"kind": "Function", "name": "parking"}}})
    exchange = "http://ripple-dispatcher.ripple-system.svc:8081/-/delivery-token"
    pod = build.deployment(hooks, image="i", sink_url="http://ingress/shop/default",
                           dead_letter_url="http://parking.shop.svc/", nats_url=None,
                           token_exchange=exchange)["spec"]["template"]["spec"]
    (projected,) = {v["name"]: v for v in pod["volumes"]}["dead-letter-token"]["projected"]["sources"]
    assert projected["serviceAccountToken"]["audience"] == "ripple/shop/functions/parking"
    env = {e["name"]: e["value"] for e in pod["containers"][0]["env"]}
    assert env["RIPPLE_DEAD_LETTER_TOKEN_EXCHANGE"] == exchange + "?function=shop%2Fparking"
    assert env["RIPPLE_DEAD_LETTER_TOKEN_FILE"] == "/var/run/ripple/dead-letter-token/token"
