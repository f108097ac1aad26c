"""The operator's pure builders: a manifest in, desired objects and status out — no cluster needed."""

from __future__ import annotations

from ripple.api.models import API_VERSION, EventSource, Function
from ripple.controller.resources import function as build
from ripple.controller.resources.conditions import Condition, ready_from, render_conditions
from ripple.controller.resources.eventsource import adapter_labels
from ripple.controller.resources.trigger import trigger_status
from ripple.kube.names import FUNCTION_LABEL, RUNTIME_PORT, function_labels
from tests.support import trigger


def function(**spec) -> Function:
    body = {"handler": "pkg.resize:handle", "source": {"inline": "def handle(e): pass"}, **spec}
    return Function.model_validate(
        {"apiVersion": API_VERSION, "kind": "Function", "metadata": {"name": "resize", "namespace": "media"},
         "spec": body}
    )


def test_inline_code_becomes_a_configmap_mounted_where_the_module_imports_from():
    fn = function()
    configmap = build.code_configmap(fn)
    assert configmap is not None and configmap["data"] == {"handler.py": "def handle(e): pass"}
    deployment = build.deployment(fn, runtime_image="ripple:test", replicas=0)
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["code"]["configMap"]["items"] == [{"key": "handler.py", "path": "pkg/resize.py"}]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["args"][:4] == ["function", "serve", "--handler", "pkg.resize:handle"]
    assert container["args"][-2:] == ["--path", "/code"]


def test_image_functions_need_no_configmap_and_use_their_image():
    fn = function(source=None, image="registry.example/resize:1")
    assert build.code_configmap(fn) is None
    container = build.deployment(fn, runtime_image="ripple:test", replicas=None)["spec"]["template"]["spec"]
    assert container["containers"][0]["image"] == "registry.example/resize:1"
    assert [v["name"] for v in container["volumes"]] == ["tmp"]


def test_deployment_runs_non_root_with_probes_env_and_timeout():
    fn = function(env=[{"name": "SIZE", "value": "64"}], timeout="PT5S")
    deployment = build.deployment(fn, runtime_image="ripple:test", replicas=0)
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["readinessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert {"name": "SIZE", "value": "64"} in container["env"]
    assert container["args"][container["args"].index("--timeout") + 1] == "5"
    assert deployment["spec"]["replicas"] == 0
    assert deployment["spec"]["selector"]["matchLabels"] == {FUNCTION_LABEL: "resize"}


def test_replicas_are_left_out_after_creation():
    assert "replicas" not in build.deployment(function(), runtime_image="x", replicas=None)["spec"]


def test_service_selects_the_function_pods_and_carries_the_function_label():
    service = build.service(function())
    assert service["spec"]["selector"] == {FUNCTION_LABEL: "resize"}
    assert service["metadata"]["labels"][FUNCTION_LABEL] == "resize"
    assert service["spec"]["ports"][0]["targetPort"] == "http"


def test_ready_follows_the_first_failing_condition():
    parts = [Condition("A", True, "Fine"), Condition("B", False, "Broken", "why"), Condition("C", None, "Unknown")]
    assert ready_from(parts) == Condition("Ready", False, "Broken", "why")
    assert ready_from(parts[:1]) == Condition("Ready", True, "Ready")


def test_transition_time_moves_only_when_the_status_changes():
    first = render_conditions([Condition("Ready", False, "Waiting")], None)
    first[0]["lastTransitionTime"] = "2020-01-01T00:00:00Z"
    same = render_conditions([Condition("Ready", False, "StillWaiting")], first)
    assert same[0]["lastTransitionTime"] == "2020-01-01T00:00:00Z" and same[0]["reason"] == "StillWaiting"
    flipped = render_conditions([Condition("Ready", True, "Ready")], first)
    assert flipped[0]["lastTransitionTime"] != "2020-01-01T00:00:00Z"


def conditions_of(status) -> dict[str, tuple[bool | None, str]]:
    return {c.type: (c.status, c.reason) for c in status.conditions}


def test_trigger_conditions_through_every_reason():
    ref = {"ref": {"kind": "Function", "name": "fn"}}
    t = trigger("t", subscriber_ref=ref, delivery={"deadLetterSink": {"ref": {"kind": "Function", "name": "dls"}}})
    exists = {("default", "fn"), ("default", "dls")}
    ready = trigger_status(t, broker_exists=True, function_exists=lambda ns, n: (ns, n) in exists, filter_error=None)
    assert conditions_of(ready)["Ready"] == (True, "Ready")
    assert ready.subscriber_uri == "http://fn.default.svc.cluster.local"
    assert ready.dead_letter_sink_uri == "http://dls.default.svc.cluster.local"

    no_broker = trigger_status(t, broker_exists=False, function_exists=lambda ns, n: True, filter_error=None)
    assert conditions_of(no_broker)["Ready"] == (False, "BrokerNotFound")

    no_function = trigger_status(t, broker_exists=True, function_exists=lambda ns, n: n == "dls", filter_error=None)
    assert conditions_of(no_function)["SubscriberResolved"] == (False, "FunctionNotFound")
    assert conditions_of(no_function)["Ready"] == (False, "FunctionNotFound") and no_function.subscriber_uri is None

    no_sink = trigger_status(t, broker_exists=True, function_exists=lambda ns, n: n == "fn", filter_error=None)
    assert conditions_of(no_sink)["DeadLetterSinkResolved"] == (False, "FunctionNotFound")

    bad_filter = trigger_status(t, broker_exists=True, function_exists=lambda ns, n: True, filter_error="bad")
    assert conditions_of(bad_filter)["Ready"] == (False, "FilterInvalid")


def test_uri_subscriber_without_sink_is_ready_and_says_where_dead_letters_go():
    status = trigger_status(trigger("t", subscriber="http://svc.example/"), broker_exists=True,
                            function_exists=lambda ns, n: False, filter_error=None)
    assert status.subscriber_uri == "http://svc.example/"
    assert conditions_of(status)["DeadLetterSinkResolved"] == (True, "DeadLetterSinkNotConfigured")


DISPATCHER = build.DispatcherPods("ripple-system", {"app.kubernetes.io/component": "dispatcher",
                                                    "app.kubernetes.io/instance": "ripple"})


def selects(selector: dict, labels: dict) -> bool:
    return selector["matchLabels"].items() <= labels.items()


def test_network_policy_selects_exactly_the_pods_the_deployment_makes():
    fn = function()
    policy = build.network_policy(fn, DISPATCHER)
    pods = build.deployment(fn, runtime_image="x", replicas=None)["spec"]["template"]["metadata"]["labels"]
    assert policy["metadata"] == {"name": "resize", "namespace": "media", "labels": function_labels("resize")}
    assert selects(policy["spec"]["podSelector"], pods)
    assert not selects(policy["spec"]["podSelector"], function_labels("thumbnail"))  # another Function's pods
    assert policy["spec"]["policyTypes"] == ["Ingress"]  # egress (NATS, the ingress for replies) stays open


def test_network_policy_admits_the_dispatcher_by_namespace_and_labels_and_any_eventsource_adapter():
    (rule,) = build.network_policy(function(), DISPATCHER)["spec"]["ingress"]
    container = build.container(function(), "x")
    assert rule["ports"] == [{"port": RUNTIME_PORT, "protocol": "TCP"}]
    assert RUNTIME_PORT in {p["containerPort"] for p in container["ports"]}
    dispatcher, adapters = rule["from"]
    assert dispatcher == {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ripple-system"}},
        "podSelector": {"matchLabels": {"app.kubernetes.io/component": "dispatcher",
                                        "app.kubernetes.io/instance": "ripple"}},
    }
    # An adapter's sink (or dead-letter sink) may be a Function in another namespace: any namespace's adapters.
    assert adapters["namespaceSelector"] == {}
    source = EventSource.model_validate({
        "apiVersion": API_VERSION, "kind": "EventSource", "metadata": {"name": "hook", "namespace": "shop"},
        "spec": {"webhook": {}, "sink": {"ref": {"kind": "Function", "name": "resize", "namespace": "media"}}}})
    assert selects(adapters["podSelector"], adapter_labels(source))
    assert not selects(adapters["podSelector"], function_labels("resize"))  # Functions do not call each other


def test_functions_log_as_the_operator_does_and_trace_with_the_release_s_otel_settings():
    from ripple.api.models import API_VERSION, Function
    from ripple.controller.config import telemetry_env
    from ripple.controller.resources.function import deployment

    fn = Function.model_validate({
        "apiVersion": API_VERSION, "kind": "Function", "metadata": {"name": "ship", "namespace": "shop"},
        "spec": {"handler": "ship:handle", "image": "example/ship:1",
                 "env": [{"name": "OTEL_TRACES_SAMPLER", "value": "always_off"}]}})
    env = telemetry_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_TRACES_SAMPLER": "always_on",
                         "OTEL_SERVICE_NAME": "ripple-operator", "PATH": "/bin"})
    assert env == (("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"), ("OTEL_TRACES_SAMPLER", "always_on"))
    (container,) = deployment(fn, runtime_image="r", replicas=None, log_format="json",
                              pod_env=env)["spec"]["template"]["spec"]["containers"]
    assert container["args"][container["args"].index("--log-format") + 1] == "json"
    variables = [(e["name"], e["value"]) for e in container["env"]]
    assert ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318") in variables
    assert [v for k, v in variables if k == "OTEL_TRACES_SAMPLER"] == ["always_off"], "the Function's own wins"
    assert "OTEL_SERVICE_NAME" not in dict(variables)


def test_every_function_checks_delivery_tokens_and_cannot_opt_itself_out():
    from ripple.api.models import API_VERSION, Function
    from ripple.controller.config import delivery_env
    from ripple.controller.resources.function import deployment

    fn = Function.model_validate({
        "apiVersion": API_VERSION, "kind": "Function", "metadata": {"name": "ship", "namespace": "shop"},
        "spec": {"handler": "ship:handle", "image": "example/ship:1",
                 "env": [{"name": "RIPPLE_DELIVERY_AUTH", "value": "off"}, {"name": "COLOR", "value": "blue"}]}})
    url = "http://ripple-dispatcher.ripple-system.svc:8081/.well-known/jwks.json"
    (container,) = deployment(fn, runtime_image="r", replicas=None, delivery_env=delivery_env("required", url)
                              )["spec"]["template"]["spec"]["containers"]
    variables = [(e["name"], e["value"]) for e in container["env"]]
    assert [v for k, v in variables if k == "RIPPLE_DELIVERY_AUTH"] == ["required"]
    assert ("RIPPLE_DELIVERY_KEYS", url) in variables and ("COLOR", "blue") in variables
    assert ("RIPPLE_FUNCTION", "shop/ship") in variables  # the audience the runtime checks tokens for
    assert delivery_env("off", url) == () and delivery_env("required", None) == ()


def test_with_a_secured_nats_each_function_gets_the_ca_and_password_in_a_secret_of_its_own(tmp_path):
    import base64

    from ripple.api.models import API_VERSION, Function
    from ripple.controller.config import workload_nats_client
    from ripple.controller.resources.function import deployment
    from ripple.controller.resources.natsclient import client_secret
    from ripple.store.auth import NatsAuth

    (tmp_path / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\n")
    client = workload_nats_client(NatsAuth(ca=tmp_path / "ca.crt", user="ripple", password="pw-of-the-test"))
    fn = Function.model_validate({
        "apiVersion": API_VERSION, "kind": "Function", "metadata": {"name": "ship", "namespace": "shop"},
        "spec": {"handler": "ship:handle", "image": "example/ship:1"}})
    pod = deployment(fn, runtime_image="r", replicas=None, nats_url="nats://ripple-nats.ripple-system.svc:4222",
                     nats_client=client)["spec"]["template"]["spec"]
    env = {e["name"]: e["value"] for e in pod["containers"][0]["env"]}
    assert env["RIPPLE_NATS_CA"] == "/var/run/ripple/nats/ca.crt" and env["RIPPLE_NATS_USER"] == "ripple"
    assert env["RIPPLE_NATS_PASSWORD_FILE"] == "/var/run/ripple/nats/password"
    assert "pw-of-the-test" not in str(pod)  # the password is in the Secret, not the Deployment
    assert {"name": "nats-client", "secret": {"secretName": "ship-nats", "defaultMode": 0o440}} in pod["volumes"]
    secret = client_secret("shop", "ship", {}, client)
    assert base64.b64decode(secret["data"]["password"]) == b"pw-of-the-test"
    plain = deployment(fn, runtime_image="r", replicas=None, nats_url="nats://n:4222",
                       nats_client=workload_nats_client(NatsAuth()))["spec"]["template"]["spec"]
    assert "nats-client" not in {v["name"] for v in plain["volumes"]}


def test_a_function_pod_carries_no_api_token():
    from ripple.api.models import API_VERSION, Function
    from ripple.controller.resources.function import deployment

    fn = Function.model_validate({
        "apiVersion": API_VERSION, "kind": "Function", "metadata": {"name": "ship", "namespace": "shop"},
        "spec": {"handler": "ship:handle", "image": "example/ship:1"}})
    assert deployment(fn, runtime_image="r", replicas=None)["spec"]["template"]["spec"][
        "automountServiceAccountToken"] is False


def test_functions_connect_as_the_user_limited_to_their_ledger_when_the_operator_has_one(tmp_path):
    import pytest

    from ripple.controller.config import functions_nats_client
    from ripple.store.auth import NatsAuth

    (tmp_path / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\n")
    (tmp_path / "functions-password").write_text("fn-pw-of-the-test\n")
    operator = NatsAuth(ca=tmp_path / "ca.crt", user="ripple", password="ripple-pw")
    password = str(tmp_path / "functions-password")
    limited = functions_nats_client(operator, {"RIPPLE_FUNCTIONS_NATS_USER": "functions",
                                               "RIPPLE_FUNCTIONS_NATS_PASSWORD_FILE": password})
    assert (limited.user, limited.password) == ("functions", "fn-pw-of-the-test")
    assert limited.ca == b"-----BEGIN CERTIFICATE-----\n"
    assert functions_nats_client(operator, {}).user == "ripple"  # no such user configured: the adapters' settings
    with pytest.raises(ValueError, match="RIPPLE_FUNCTIONS_NATS_PASSWORD_FILE"):
        functions_nats_client(operator, {"RIPPLE_FUNCTIONS_NATS_USER": "functions",
                                         "RIPPLE_FUNCTIONS_NATS_PASSWORD_FILE": str(tmp_path / "missing")})
