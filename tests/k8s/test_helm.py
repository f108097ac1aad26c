"""The Helm chart (charts/ripple) against a real API server: lint, schema, rendering, install/upgrade/uninstall,
and RBAC proven with the chart's own ServiceAccounts (tokens from the TokenRequest API), down to running the
operator, the ingress and the dispatcher with nothing but their ServiceAccounts' permissions.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import secrets
import shutil
import ssl
import subprocess
import textwrap
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from ripple._aio import free_port
from ripple.local.nats_server import NatsServer
from tests.k8s.conftest import ControlPlane
from tests.processes import RippleProcess
from tests.support import eventually

pytestmark = pytest.mark.k8s

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "ripple"
DASHBOARD = CHART / "dashboards" / "ripple.json"
WEBHOOK_CONFIGURATION = "validate.ripple.dev"
WEBHOOK_KINDS = ("validatingwebhookconfigurations", "mutatingwebhookconfigurations")
COMPONENTS = ("operator", "ingress", "dispatcher")
# What every namespace holds without anyone asking: left out when checking what an uninstall leaves behind.
NAMESPACE_DEFAULTS = {"serviceaccounts/default", "configmaps/kube-root-ca.crt"}
RESTRICTED = ("pod-security.kubernetes.io/enforce=restricted", "pod-security.kubernetes.io/warn=restricted")


# --- running helm and kubectl ---------------------------------------------------------------------------------


@dataclass
class Helm:
    binary: Path
    plane: ControlPlane
    home: Path

    def run(self, *args: str, check: bool = True, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        """helm ARGS against the test cluster, with its own (empty) config, cache and data directories."""
        env = {**os.environ, "HELM_CACHE_HOME": str(self.home / "cache"), "HELM_CONFIG_HOME": str(self.home / "config"),
               "HELM_DATA_HOME": str(self.home / "data")}
        command = [str(self.binary), *args, f"--kubeconfig={self.plane.kubeconfig}"]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env, check=False)
        if check and result.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} exited {result.returncode}\n"
                                 f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}")
        return result

    def template(self, *values: str, release: str = "ripple", namespace: str = "ripple-system") -> list[dict]:
        """The chart rendered with ``--set`` VALUES, as objects."""
        args = [a for v in values for a in ("--set", v)]
        rendered = self.run("template", release, str(CHART), "--namespace", namespace, *args).stdout
        return [doc for doc in yaml.safe_load_all(rendered) if doc]


@pytest.fixture(scope="session")
def helm(control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Helm:
    binary = control_plane.bin_dir / "helm"
    if not os.access(binary, os.X_OK):
        found = shutil.which("helm")
        if found is None:
            pytest.skip(f"no helm in {control_plane.bin_dir} nor on PATH (hack/build-k8s-tools.sh builds it)")
        binary = Path(found)
    return Helm(binary, control_plane, tmp_path_factory.mktemp("helm-home"))


def as_user(plane: ControlPlane, kubeconfig: Path, *args: str, input: str | None = None) -> subprocess.CompletedProcess:
    """kubectl ARGS with another identity's kubeconfig; never raises, the caller reads the outcome."""
    command = [str(plane.kubectl_path), f"--kubeconfig={kubeconfig}", f"--cache-dir={kubeconfig.parent / 'cache'}",
               *args]
    return subprocess.run(command, input=input, capture_output=True, text=True, timeout=60, check=False)


def allowed(result: subprocess.CompletedProcess) -> bool:
    return result.returncode == 0


def forbidden(result: subprocess.CompletedProcess) -> bool:
    return result.returncode != 0 and "forbidden" in result.stderr.lower()


def objects_of(docs: list[dict], kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def container_args(docs: list[dict], name: str) -> list[str]:
    return objects_of(docs, "Deployment")[name]["spec"]["template"]["spec"]["containers"][0]["args"]


def rules_of(docs: list[dict], component: str) -> list[dict]:
    roles = [d for d in docs if d["kind"] == "ClusterRole"
             and d["metadata"]["labels"]["app.kubernetes.io/component"] == component]
    assert len(roles) == 1, roles
    return roles[0]["rules"]


def grants(rules: list[dict], group: str, resource: str, verb: str, name: str | None = None) -> bool:
    return any(group in r.get("apiGroups", []) and resource in r.get("resources", []) and verb in r.get("verbs", [])
               and (not r.get("resourceNames") or name in r["resourceNames"]) for r in rules)


# --- the chart on its own: files, lint, schema, rendering -------------------------------------------------------


def test_chart_crds_are_the_generated_crds() -> None:
    """charts/ripple/crds holds exactly crds/*.yaml, byte for byte (re-copy them after `ripple crds`)."""
    top = {p.name: p.read_bytes() for p in (REPO / "crds").glob("*.yaml")}
    chart = {p.name: p.read_bytes() for p in (CHART / "crds").glob("*.yaml")}
    assert top, "no CRDs in crds/"
    assert sorted(chart) == sorted(top), "charts/ripple/crds must hold the same files as crds/"
    drifted = [name for name in top if chart[name] != top[name]]
    assert not drifted, f"charts/ripple/crds differs from crds/ in {drifted}: cp crds/*.yaml charts/ripple/crds/"


LINT_MATRIX = {
    "defaults": [],
    "external-nats": ["nats.enabled=false", "nats.url=nats://nats.messaging.svc:4222"],
    "custom-images": ["image.repository=registry.example.com/team/ripple", "image.tag=1.2.3", "image.pullPolicy=Always",
                      "nats.image.repository=registry.example.com/nats", "nats.image.tag=2.11.4-alpine",
                      "operator.runtimeImage=registry.example.com/team/runtime:7", "imagePullSecrets[0].name=regcred"],
    "custom-resources": ["operator.resources.limits.cpu=1", "operator.resources.limits.memory=1Gi",
                         "ingress.resources.requests.memory=64Mi", "dispatcher.resources.requests.cpu=0.5",
                         "nats.resources.limits.memory=2Gi", "nats.persistence.size=50Gi",
                         "nats.persistence.storageClass=fast-ssd"],
    "no-webhook-no-persistence": ["operator.webhook.enabled=false", "nats.persistence.enabled=false",
                                  "dispatcher.readiness=pods", "ingress.replicaCount=3"],
    "own-webhook-cert": ["operator.webhook.certSecret=ripple-webhook-from-cert-manager", "fullnameOverride=events"],
    "production-extras": ["networkPolicy.enabled=true", "metrics.serviceMonitor.enabled=true",
                          "metrics.grafanaDashboard.enabled=true", "metrics.grafanaDashboard.namespace=monitoring",
                          "operator.webhook.certManager.enabled=true",
                          "operator.webhook.certManager.issuerRef.name=ripple-ca",
                          "operator.webhook.certManager.issuerRef.kind=ClusterIssuer", "operator.replicaCount=2"],
}


@pytest.mark.parametrize("values", LINT_MATRIX.values(), ids=LINT_MATRIX.keys())
def test_lint_strict_passes(helm: Helm, values: list[str]) -> None:
    args = [a for v in values for a in ("--set", v)]
    result = helm.run("lint", "--strict", str(CHART), *args, check=False)
    assert result.returncode == 0 and "0 chart(s) failed" in result.stdout, result.stdout + result.stderr


def test_custom_values_reach_the_manifests(helm: Helm) -> None:
    docs = helm.template(*LINT_MATRIX["custom-images"], *LINT_MATRIX["custom-resources"])
    pods = {d["metadata"]["name"]: d["spec"]["template"]["spec"] for d in docs
            if d["kind"] in ("Deployment", "StatefulSet")}
    for name, pod in pods.items():
        assert pod["imagePullSecrets"] == [{"name": "regcred"}], name
        container = pod["containers"][0]
        if name == "ripple-nats":
            assert container["image"] == "registry.example.com/nats:2.11.4-alpine"
        else:
            assert container["image"] == "registry.example.com/team/ripple:1.2.3", name
            assert container["imagePullPolicy"] == "Always", name
    assert "--runtime-image=registry.example.com/team/runtime:7" in container_args(docs, "ripple-operator")
    assert pods["ripple-operator"]["containers"][0]["resources"] == {
        "requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"cpu": 1, "memory": "1Gi"}}
    assert pods["ripple-dispatcher"]["containers"][0]["resources"]["requests"]["cpu"] == "0.5"
    assert pods["ripple-nats"]["containers"][0]["resources"]["limits"] == {"memory": "2Gi"}
    claim = objects_of(docs, "StatefulSet")["ripple-nats"]["spec"]["volumeClaimTemplates"][0]["spec"]
    assert claim["storageClassName"] == "fast-ssd" and claim["resources"]["requests"]["storage"] == "50Gi"


def test_nats_disabled_without_url_fails_to_render(helm: Helm) -> None:
    """The schema refuses it (`helm lint` only logs a template's `fail`), and the templates fail too, with the
    explanation, where the schema is skipped."""
    for command in (["lint", "--strict", str(CHART)], ["template", "ripple", str(CHART)]):
        for values in (["nats.enabled=false"], ["nats.enabled=false", "nats.url="]):
            result = helm.run(*command, *(a for v in values for a in ("--set", v)), check=False)
            assert result.returncode != 0, f"helm {command[0]} accepted {values}"
            assert ("at '/nats': missing property 'url'" in result.stdout + result.stderr
                    or "at '/nats/url': minLength" in result.stdout + result.stderr), result.stdout + result.stderr
    unchecked = helm.run("template", "ripple", str(CHART), "--set", "nats.enabled=false", "--skip-schema-validation",
                         check=False)
    assert unchecked.returncode != 0
    assert "nats.url is required when nats.enabled=false: set it to a NATS server with JetStream" in unchecked.stderr
    both = helm.run("template", "ripple", str(CHART), "--set", "nats.url=nats://elsewhere:4222", check=False)
    assert both.returncode != 0 and "set nats.enabled=false to use it" in both.stderr


BAD_VALUES = {
    "negative-replicas": (["--set", "ingress.replicaCount=-1"], "/ingress/replicaCount"),
    "fractional-replicas": (["--set", "ingress.replicaCount=1.5"], "/ingress/replicaCount"),
    "pull-policy-enum": (["--set", "image.pullPolicy=Sometimes"], "/image/pullPolicy"),
    "nats-enabled-not-boolean": (["--set", "nats.enabled=yes"], "/nats/enabled"),
    "unknown-top-level-key": (["--set", "replicas=2"], "additional properties 'replicas' not allowed"),
    "unknown-nested-key": (["--set", "operator.replicas=2"], "additional properties 'replicas' not allowed"),
    "log-format": (["--set", "logFormat=xml"], "/logFormat"),
    "webhook-configuration-name": (["--set", "operator.webhook.configurationName=Not_A_Name"],
                                   "/operator/webhook/configurationName"),
    "resources-not-an-object": (["--set-json", 'dispatcher.resources="1Gi"'], "/dispatcher/resources"),
    "bad-quantity": (["--set", "nats.resources.limits.memory=lots"], "/nats/resources/limits/memory"),
    "port-out-of-range": (["--set", "ingress.service.port=70000"], "/ingress/service/port"),
    "readiness-enum": (["--set", "dispatcher.readiness=dns"], "/dispatcher/readiness"),
    "delivery-auth-enum": (["--set", "operator.deliveryAuth=sometimes"], "/operator/deliveryAuth"),
    "nats-url-scheme": (["--set", "nats.enabled=false", "--set", "nats.url=http://nats:4222"], "/nats/url"),
    "retention-enum": (["--set", "nats.persistence.whenDeleted=Sometimes"], "/nats/persistence/whenDeleted"),
    "webhook-enabled-not-boolean": (["--set-string", "operator.webhook.enabled=true"], "/operator/webhook/enabled"),
    "cert-manager-without-issuer": (["--set", "operator.webhook.certManager.enabled=true"],
                                    "/operator/webhook/certManager/issuerRef/name"),
    "cert-manager-unknown-key": (["--set", "operator.webhook.certManager.duration=24h"],
                                 "additional properties 'duration' not allowed"),
    "dashboard-label-not-a-label": (["--set", "metrics.grafanaDashboard.label=not a label"],
                                    "/metrics/grafanaDashboard/label"),
    "dashboard-namespace": (["--set", "metrics.grafanaDashboard.namespace=Monitoring"],
                            "/metrics/grafanaDashboard/namespace"),
}


@pytest.mark.parametrize(("args", "names"), BAD_VALUES.values(), ids=BAD_VALUES.keys())
def test_schema_refuses_bad_values(helm: Helm, args: list[str], names: str) -> None:
    for command in (["template", "ripple", str(CHART)], ["lint", "--strict", str(CHART)]):
        result = helm.run(*command, *args, check=False)
        output = result.stdout + result.stderr
        assert result.returncode != 0, f"helm {command[0]} accepted {args}"
        assert "don't meet the specifications of the schema" in output and names in output, output


def test_every_pod_runs_restricted_with_resources(helm: Helm) -> None:
    docs = helm.template()
    workloads = {d["metadata"]["name"]: d for d in docs if d["kind"] in ("Deployment", "StatefulSet")}
    assert set(workloads) == {"ripple-operator", "ripple-ingress", "ripple-dispatcher", "ripple-nats"}
    for name, workload in workloads.items():
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 10001
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["serviceAccountName"] == name  # one ServiceAccount per component
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["runAsNonRoot"] is True and context["runAsUser"] == 10001, name
            assert context["readOnlyRootFilesystem"] is True and context["allowPrivilegeEscalation"] is False, name
            assert context["capabilities"] == {"drop": ["ALL"]}, name
            assert context["seccompProfile"] == {"type": "RuntimeDefault"}, name
            assert container["resources"]["requests"] and container["resources"]["limits"], name
    # NATS never talks to the API server: no token is mounted into its pod.
    assert workloads["ripple-nats"]["spec"]["template"]["spec"]["automountServiceAccountToken"] is False
    assert objects_of(docs, "ServiceAccount")["ripple-nats"]["automountServiceAccountToken"] is False
    # Probes only where there is something real to probe.
    ingress = workloads["ripple-ingress"]["spec"]["template"]["spec"]["containers"][0]
    assert ingress["readinessProbe"]["httpGet"] == {"path": "/-/health", "port": "http"}
    assert ingress["livenessProbe"]["httpGet"] == {"path": "/-/health", "port": "http"}
    operator = workloads["ripple-operator"]["spec"]["template"]["spec"]["containers"][0]
    assert operator["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    dispatcher = workloads["ripple-dispatcher"]["spec"]["template"]["spec"]["containers"][0]
    assert dispatcher["readinessProbe"]["httpGet"] == {"path": "/-/health", "port": "health"}
    nats = workloads["ripple-nats"]
    assert nats["spec"]["template"]["spec"]["containers"][0]["image"] == "nats:2.11-alpine"
    assert nats["spec"]["template"]["spec"]["containers"][0]["args"][:3] == ["-js", "-sd", "/data"]
    assert nats["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == "8Gi"


def test_components_are_wired_to_each_other(helm: Helm) -> None:
    docs = helm.template(release="ripple", namespace="events")
    nats = "--nats=" + ",".join(f"nats://ripple-nats-{i}.ripple-nats-headless.events.svc:4222" for i in range(3))
    assert container_args(docs, "ripple-operator") == [
        "operator", nats, "--log-format=json", "--ingress-url=http://ripple-ingress.events.svc",
        "--runtime-image=ghcr.io/ripple-dev/ripple:0.1.0", "--liveness=http://0.0.0.0:8081/healthz",
        "--broker-replicas=3", "--leader-election", "--metrics-port=8082", "--max-fanout=100",
        "--delivery-auth=required",
        "--delivery-keys-url=http://ripple-dispatcher.events.svc:8081/.well-known/jwks.json",
        "--webhook-host=ripple-operator-webhook.events.svc",
        "--webhook-service=events/ripple-operator-webhook",
        "--webhook-port=9443", "--webhook-configuration=validate.ripple.dev",
        "--webhook-cert=/etc/ripple/webhook/tls.crt",
        "--webhook-key=/etc/ripple/webhook/tls.key",
    ]
    assert container_args(docs, "ripple-ingress")[:6] == ["ingress", "--kubernetes", nats, "--log-format=json",
                                                          "--host=0.0.0.0", "--port=8080"]
    assert container_args(docs, "ripple-dispatcher")[:4] == ["dispatcher", "--kubernetes", nats, "--log-format=json"]
    text = helm.template("logFormat=text")
    assert all("--log-format=text" in container_args(text, f"ripple-{c}") for c in COMPONENTS)
    assert "--health-port=8081" in container_args(docs, "ripple-dispatcher")
    services = objects_of(docs, "Service")
    assert services["ripple-ingress"]["spec"]["ports"] == [
        {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]
    assert services["ripple-operator-webhook"]["spec"]["ports"][0]["port"] == 9443
    assert services["ripple-nats-headless"]["spec"]["clusterIP"] == "None"
    assert services["ripple-nats"]["spec"]["ports"][0]["port"] == 4222
    # The webhook certificate: self-signed for the Service's DNS name, mounted from its own Secret.
    secret = objects_of(docs, "Secret")["ripple-operator-webhook-tls"]
    assert secret["type"] == "kubernetes.io/tls" and set(secret["data"]) == {"tls.crt", "tls.key"}
    volumes = objects_of(docs, "Deployment")["ripple-operator"]["spec"]["template"]["spec"]["volumes"]
    assert {"name": "webhook-cert",
            "secret": {"secretName": "ripple-operator-webhook-tls", "defaultMode": 0o440}} in volumes
    assert WEBHOOK_CONFIGURATION in objects_of(docs, "ValidatingWebhookConfiguration")
    assert WEBHOOK_CONFIGURATION in objects_of(docs, "MutatingWebhookConfiguration")  # Kopf manages one too

    external = helm.template("nats.enabled=false", "nats.url=nats://nats.messaging:4222",
                             "operator.webhook.certSecret=from-cert-manager")
    assert not [d for d in external if d["kind"] == "StatefulSet" or "nats" in d["metadata"]["name"]]
    for name in ("ripple-operator", "ripple-ingress", "ripple-dispatcher"):
        assert "--nats=nats://nats.messaging:4222" in container_args(external, name)
    assert "--broker-replicas=1" in container_args(external, "ripple-operator")
    cluster = helm.template("nats.enabled=false", "operator.brokerReplicas=5",
                            "nats.url=nats://a.nats:4222\\,nats://b.nats:4222\\,nats://c.nats:4222")
    urls = "--nats=nats://a.nats:4222,nats://b.nats:4222,nats://c.nats:4222"
    assert urls in container_args(cluster, "ripple-ingress")
    assert "--broker-replicas=5" in container_args(cluster, "ripple-operator")
    assert set(objects_of(external, "Secret")) == {"ripple-dispatcher-keys"}  # a certificate of one's own: none made
    volumes = objects_of(external, "Deployment")["ripple-operator"]["spec"]["template"]["spec"]["volumes"]
    assert {"name": "webhook-cert", "secret": {"secretName": "from-cert-manager", "defaultMode": 0o440}} in volumes

    no_webhook = helm.template("operator.webhook.enabled=false")
    assert not any("--webhook" in a for a in container_args(no_webhook, "ripple-operator"))
    assert "--liveness=http://0.0.0.0:8081/healthz" in container_args(no_webhook, "ripple-operator")
    assert not objects_of(no_webhook, "ValidatingWebhookConfiguration")
    assert set(objects_of(no_webhook, "Secret")) == {"ripple-dispatcher-keys"}
    assert not objects_of(no_webhook, "MutatingWebhookConfiguration")
    for kind in WEBHOOK_KINDS:
        assert not grants(rules_of(no_webhook, "operator"), "admissionregistration.k8s.io", kind, "create")


def test_functions_read_the_dispatchers_keys_through_its_service(helm: Helm) -> None:
    docs = helm.template(release="ripple", namespace="events")
    service = objects_of(docs, "Service")["ripple-dispatcher"]["spec"]
    assert service["ports"] == [{"name": "health", "port": 8081, "targetPort": "health", "protocol": "TCP"}]
    pods = objects_of(docs, "Deployment")["ripple-dispatcher"]["spec"]["template"]["metadata"]["labels"]
    assert all(pods[key] == value for key, value in service["selector"].items())
    secret = objects_of(docs, "Secret")["ripple-dispatcher-keys"]
    assert len(base64.b64decode(secret["data"]["secret"])) >= 32
    dispatcher = objects_of(docs, "Deployment")["ripple-dispatcher"]["spec"]["template"]["spec"]
    assert {"name": "delivery-keys", "secret": {"secretName": "ripple-dispatcher-keys", "defaultMode": 0o440}} \
        in dispatcher["volumes"]
    env = {e["name"]: e.get("value") for e in dispatcher["containers"][0]["env"]}
    assert env["RIPPLE_DELIVERY_KEYS_SECRET_FILE"] == "/etc/ripple/delivery-keys/secret"
    for other in ("ripple-ingress", "ripple-operator"):  # no one else holds it
        pod = objects_of(docs, "Deployment")[other]["spec"]["template"]["spec"]
        assert all(v.get("secret", {}).get("secretName") != "ripple-dispatcher-keys" for v in pod["volumes"])
    off = helm.template("operator.deliveryAuth=off")
    assert "--delivery-auth=off" in container_args(off, "ripple-operator")


def test_the_ingress_guards_brokers_by_default_and_serves_https_when_given_a_certificate(helm: Helm) -> None:
    docs = helm.template(release="ripple", namespace="events")
    args = container_args(docs, "ripple-ingress")
    assert "--default-policy=namespace" in args
    assert "--delivery-keys-url=http://ripple-dispatcher.events.svc:8081/.well-known/jwks.json" in args
    assert not any(a.startswith("--tls") for a in args)
    assert "--default-policy=open" in container_args(helm.template("ingress.defaultPolicy=open"), "ripple-ingress")
    secured = helm.template("ingress.tls.secretName=shop-tls", release="ripple", namespace="events")
    args = container_args(secured, "ripple-ingress")
    assert {"--tls-port=8443", "--tls-cert=/etc/ripple/tls/tls.crt", "--tls-key=/etc/ripple/tls/tls.key"} <= set(args)
    ports = objects_of(secured, "Service")["ripple-ingress"]["spec"]["ports"]
    assert {"name": "https", "port": 443, "targetPort": "https", "protocol": "TCP"} in ports
    pod = objects_of(secured, "Deployment")["ripple-ingress"]["spec"]["template"]["spec"]
    assert {"name": "tls", "secret": {"secretName": "shop-tls", "defaultMode": 0o440}} in pod["volumes"]
    issued = helm.template("ingress.tls.certManager.enabled=true", "ingress.tls.certManager.issuerRef.name=ca",
                           release="ripple", namespace="events")
    assert objects_of(issued, "Certificate")["ripple-ingress"]["spec"]["secretName"] == "ripple-ingress-tls"


def test_rbac_rules_are_least_privilege(helm: Helm) -> None:
    docs = helm.template()
    every_rule = [r for d in docs if d["kind"] in ("ClusterRole", "Role") for r in d["rules"]]
    assert every_rule
    for rule in every_rule:
        assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"], rule
        # Whether an EventSource's Secret exists: a metadata-only get, never a list or a watch.
        assert "secrets" not in rule["resources"] or rule["verbs"] == ["get"], rule
        assert "escalate" not in rule["verbs"] and "bind" not in rule["verbs"], rule
    secured = helm.template("nats.auth.enabled=true")
    secret_rules = [r["verbs"] for r in rules_of(secured, "operator") if "secrets" in r["resources"]]
    assert secret_rules == [["get"], ["create", "patch"]]  # the workloads' NATS client Secrets, never list/watch
    operator, ingress, dispatcher = (rules_of(docs, c) for c in COMPONENTS)
    for kind in WEBHOOK_KINDS:
        assert grants(operator, "admissionregistration.k8s.io", kind, "patch", WEBHOOK_CONFIGURATION)
        assert not grants(operator, "admissionregistration.k8s.io", kind, "patch", "other")
        assert not grants(operator, "admissionregistration.k8s.io", kind, "delete", WEBHOOK_CONFIGURATION)
    assert not grants(operator, "", "namespaces", "list")  # cluster-wide Kopf never lists namespaces
    assert ingress == [
        {"apiGroups": ["ripple.dev"], "resources": ["brokers", "sequences", "parallels"],
         "verbs": ["get", "list", "watch"]},
        # Who may send: policies (their token digests in status, so no Secret) and TokenReviews, nothing more.
        {"apiGroups": ["ripple.dev"], "resources": ["eventpolicies"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"], "verbs": ["create"]},
    ]
    assert grants(dispatcher, "discovery.k8s.io", "endpointslices", "watch")
    assert not grants(dispatcher, "", "pods", "watch")
    assert grants(dispatcher, "authentication.k8s.io", "tokenreviews", "create")  # the adapters' token exchange
    assert grants(dispatcher, "ripple.dev", "eventsources", "list")
    assert not grants(dispatcher, "ripple.dev", "eventsources", "watch")
    pods = rules_of(helm.template("dispatcher.readiness=pods"), "dispatcher")
    assert grants(pods, "", "pods", "watch") and not grants(pods, "discovery.k8s.io", "endpointslices", "watch")
    # A Function's NetworkPolicy: made with networkPolicy.enabled, removed by the operator with it off.
    for verb in ("create", "get", "patch", "delete"):
        assert grants(operator, "networking.k8s.io", "networkpolicies", verb), verb
    assert not grants(operator, "networking.k8s.io", "networkpolicies", "list")
    assert not grants(dispatcher, "networking.k8s.io", "networkpolicies", "create")
    assert grants(operator, "rbac.authorization.k8s.io", "roles", "create")  # no more than it holds itself
    assert not grants(operator, "rbac.authorization.k8s.io", "clusterroles", "create")
    granting = rules_of(helm.template("sources.kubernetesRBAC=true"), "operator")
    assert grants(granting, "rbac.authorization.k8s.io", "roles", "escalate")
    assert grants(granting, "rbac.authorization.k8s.io", "rolebindings", "bind")
    bindings = objects_of(docs, "ClusterRoleBinding")
    assert {b["subjects"][0]["name"] for b in bindings.values()} == {f"ripple-{c}" for c in COMPONENTS}
    assert all(b["roleRef"]["name"] == name for name, b in bindings.items())


# --- the chart in a cluster -------------------------------------------------------------------------------------


def skip_if_webhook_configuration_taken(plane: ControlPlane) -> None:
    """Only one Ripple per cluster: validate.ripple.dev is a fixed name (on KUBECONFIG_E2E, one may be installed).
    Left behind by an operator run outside Helm (tests/k8s/test_operator.py), it is removed."""
    for kind in WEBHOOK_KINDS:
        found = plane.kubectl("get", kind, WEBHOOK_CONFIGURATION, "-o", "json", check=False)
        if found.returncode != 0:
            continue
        owner = (json.loads(found.stdout)["metadata"].get("annotations") or {}).get("meta.helm.sh/release-name")
        if owner is not None or plane.external:
            pytest.skip(f"{kind}/{WEBHOOK_CONFIGURATION} exists (release {owner}): Ripple installs once per cluster")
        plane.kubectl("delete", kind, WEBHOOK_CONFIGURATION)


def test_rendered_manifests_pass_server_side_dry_run(helm: Helm, crds_installed: ControlPlane, namespace: str) -> None:
    """Every object of the default rendering (and a variant) validated by the API server, admission included:
    the namespace enforces the restricted Pod Security Standard."""
    plane = crds_installed
    plane.kubectl("label", "namespace", namespace, *RESTRICTED)
    for values in ([], ["nats.persistence.enabled=false", "dispatcher.readiness=pods", "ingress.replicaCount=2",
                        "networkPolicy.enabled=true", "metrics.grafanaDashboard.enabled=true"]):
        args = [a for v in values for a in ("--set", v)]
        rendered = helm.run("template", "ripple", str(CHART), "--namespace", namespace, *args).stdout
        applied = plane.kubectl("apply", "--dry-run=server", "-n", namespace, "-f", "-", input=rendered)
        # No PodSecurity or deprecation warning. (An existing validate.ripple.dev made by Kopf outside Helm, e.g.
        # left by tests/k8s/test_operator.py, gets kubectl's warning that it was not applied before: not ours.)
        warnings = [w for w in applied.stderr.splitlines() if w.startswith("Warning")
                    and "last-applied-configuration" not in w]
        assert not warnings, applied.stderr
        lines = applied.stdout.splitlines()
        assert len(lines) == len([d for d in yaml.safe_load_all(rendered) if d]), applied.stdout
        assert all(line.endswith("(server dry run)") for line in lines), applied.stdout


def leftovers(plane: ControlPlane, namespace: str, release: str) -> list[str]:
    """Every object in the namespace (but events and what each namespace has anyway), and the release's
    cluster-scoped objects."""
    kinds = plane.kubectl("api-resources", "--namespaced=true", "--verbs=list", "-o", "name").stdout.split()
    kinds = [k for k in kinds if k.split(".")[0] != "events"]
    found = plane.get_json(",".join(kinds), "-n", namespace)["items"]
    names = {f"{o['kind'].lower()}s/{o['metadata']['name']}" for o in found}
    cluster = plane.kubectl("get", ",".join(("clusterroles", "clusterrolebindings", *WEBHOOK_KINDS)), "-o", "name",
                            "-l", f"app.kubernetes.io/instance={release}").stdout.split()
    webhooks = [line for kind in WEBHOOK_KINDS for line in plane.kubectl(
        "get", kind, WEBHOOK_CONFIGURATION, "-o", "name", "--ignore-not-found").stdout.split()]
    return sorted(names - NAMESPACE_DEFAULTS) + cluster + webhooks


async def test_install_upgrade_uninstall(helm: Helm, crds_installed: ControlPlane, namespace: str) -> None:
    plane = crds_installed
    skip_if_webhook_configuration_taken(plane)
    plane.kubectl("label", "namespace", namespace, *RESTRICTED)
    release = f"ripple-{namespace}"
    name = release  # the release name holds "ripple": resources are named after it
    try:
        # Scaled out as a platform team runs it: a three-server NATS (the default), two dispatchers, two operators.
        installed = helm.run("install", release, str(CHART), "--namespace", namespace,
                             "--set", "dispatcher.replicaCount=2", "--set", "operator.replicaCount=2")
        assert "would violate PodSecurity" not in installed.stderr, installed.stderr
        assert "port-forward" in installed.stdout  # NOTES.txt
        instance = f"app.kubernetes.io/instance={release}"
        got = {f"{o['kind']}/{o['metadata']['name']}" for o in plane.get_json(
            "deployments,statefulsets,services,serviceaccounts,secrets", "-n", namespace, "-l", instance)["items"]}
        assert got == {
            *(f"Deployment/{name}-{c}" for c in COMPONENTS), f"StatefulSet/{name}-nats",
            f"Service/{name}-ingress", f"Service/{name}-operator-webhook", f"Service/{name}-nats",
            f"Service/{name}-nats-headless", f"Service/{name}-dispatcher",
            *(f"ServiceAccount/{name}-{c}" for c in (*COMPONENTS, "nats")),
            f"Secret/{name}-operator-webhook-tls", f"Secret/{name}-dispatcher-keys",
        }
        cluster = plane.kubectl("get", "clusterroles,clusterrolebindings", "-o", "name", "-l", instance).stdout.split()
        assert sorted(cluster) == sorted(f"clusterrole{b}.rbac.authorization.k8s.io/{namespace}-{name}-{c}"
                                         for c in COMPONENTS for b in ("", "binding"))
        for kind in WEBHOOK_KINDS:
            labels = plane.get_json(kind, WEBHOOK_CONFIGURATION)["metadata"]["labels"]
            assert labels["app.kubernetes.io/instance"] == release
        # The pods pass admission (restricted Pod Security) and come up on the fake node; NATS waits for a volume.
        plane.kubectl("wait", "--for=condition=Available", "deployment", "-l", instance, "-n", namespace,
                      "--timeout=60s", timeout=90)
        for component in ("dispatcher", "operator"):
            plane.kubectl("wait", "--for=jsonpath={.status.readyReplicas}=2", f"deployment/{name}-{component}",
                          "-n", namespace, "--timeout=60s", timeout=90)
        assert plane.get_json("statefulset", f"{name}-nats", "-n", namespace)["spec"]["replicas"] == 3
        budgets = plane.kubectl("get", "pdb", "-n", namespace, "-l", instance, "-o", "name").stdout.split()
        assert sorted(budgets) == sorted(f"poddisruptionbudget.policy/{name}-{c}"
                                         for c in ("dispatcher", "operator", "nats"))
        assert plane.get_json("pvc", f"data-{name}-nats-0", "-n", namespace)["spec"]["resources"]["requests"] == {
            "storage": "8Gi"}
        assert plane.get_json("pod", f"{name}-nats-0", "-n", namespace)["spec"]["securityContext"]["fsGroup"] == 10001
        certificate = plane.get_json("secret", f"{name}-operator-webhook-tls", "-n", namespace)["data"]
        keys = plane.get_json("secret", f"{name}-dispatcher-keys", "-n", namespace)["data"]

        helm.run("upgrade", release, str(CHART), "--namespace", namespace, "--reuse-values",
                 "--set", "ingress.replicaCount=2", "--set", "nats.persistence.whenDeleted=Delete")
        plane.kubectl("wait", "--for=jsonpath={.status.readyReplicas}=2", f"deployment/{name}-ingress",
                      "-n", namespace, "--timeout=60s", timeout=90)
        statefulset = plane.get_json("statefulset", f"{name}-nats", "-n", namespace)
        assert statefulset["spec"]["persistentVolumeClaimRetentionPolicy"]["whenDeleted"] == "Delete"
        # The generated certificate survives upgrades (looked up, not generated again): no operator restart.
        assert plane.get_json("secret", f"{name}-operator-webhook-tls", "-n", namespace)["data"] == certificate
        assert plane.get_json("secret", f"{name}-dispatcher-keys", "-n", namespace)["data"] == keys
        history = json.loads(helm.run("history", release, "-n", namespace, "-o", "json").stdout)
        assert [h["status"] for h in history] == ["superseded", "deployed"]

        before = leftovers(plane, namespace, release)  # what the check below would catch
        assert {f"deployments/{name}-operator", f"persistentvolumeclaims/data-{name}-nats-0",
                f"secrets/{name}-operator-webhook-tls", f"serviceaccounts/{name}-nats",
                f"clusterrole.rbac.authorization.k8s.io/{namespace}-{name}-dispatcher",
                f"mutatingwebhookconfiguration.admissionregistration.k8s.io/{WEBHOOK_CONFIGURATION}"} <= set(before)
        helm.run("uninstall", release, "--namespace", namespace, "--wait", "--timeout=60s")
        await eventually(lambda: not leftovers(plane, namespace, release), timeout=60, interval=0.5)
        for crd in ("brokers", "functions", "triggers", "eventsources"):  # Helm never deletes CRDs
            plane.kubectl("get", "crd", f"{crd}.ripple.dev")
    finally:
        helm.run("uninstall", release, "--namespace", namespace, "--ignore-not-found", check=False)


# --- RBAC, proven with the ServiceAccounts' own tokens ----------------------------------------------------------


@dataclass
class Release:
    plane: ControlPlane
    name: str
    namespace: str
    kubeconfigs: dict[str, Path]
    """component -> a kubeconfig with a token of the component's ServiceAccount"""


def write_kubeconfig(path: Path, plane: ControlPlane, user: str, token: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "test",
                      "cluster": {"server": plane.server, "certificate-authority": str(plane.ca_file)}}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": user}}],
        "current-context": "test",
    }))
    path.chmod(0o600)
    return path


@pytest.fixture(scope="module")
def release(helm: Helm, crds_installed: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Release]:
    """The chart installed in a namespace of its own, and a kubeconfig per component with a token of its
    ServiceAccount (TokenRequest API, as a pod's projected token)."""
    plane = crds_installed
    skip_if_webhook_configuration_taken(plane)
    namespace = f"helm-{secrets.token_hex(3)}"
    name = "ripple"
    plane.kubectl("create", "namespace", namespace)
    work = tmp_path_factory.mktemp("sa-kubeconfigs")
    try:
        helm.run("install", name, str(CHART), "--namespace", namespace)
        kubeconfigs = {}
        for component in COMPONENTS:
            token = plane.kubectl("create", "token", f"{name}-{component}", "-n", namespace, "--duration=1h").stdout
            kubeconfigs[component] = write_kubeconfig(work / component / "kubeconfig", plane,
                                                      f"{name}-{component}", token.strip())
        yield Release(plane, name, namespace, kubeconfigs)
    finally:
        helm.run("uninstall", name, "--namespace", namespace, "--ignore-not-found", check=False)
        for kind in WEBHOOK_KINDS:
            plane.kubectl("delete", kind, WEBHOOK_CONFIGURATION, "--ignore-not-found", check=False)
        plane.kubectl("delete", "namespace", namespace, "--wait=false", "--ignore-not-found", check=False)


def can_i(plane: ControlPlane, kubeconfig: Path, question: str) -> bool:
    """``kubectl auth can-i QUESTION`` as the kubeconfig's identity."""
    result = as_user(plane, kubeconfig, "auth", "can-i", *question.split())
    assert result.stdout.strip() in ("yes", "no"), result.stdout + result.stderr
    return result.stdout.strip() == "yes"


def test_service_accounts_can_do_their_work_and_nothing_more(release: Release, namespace: str) -> None:
    """Each component's ServiceAccount, by its own token: ``kubectl auth can-i`` answers, then real calls. The
    Ripple objects live in another namespace than the release: the roles reach every namespace."""
    plane, ns, own = release.plane, namespace, release.namespace
    expected = {
        "operator": {
            "list triggers.ripple.dev --all-namespaces": True, "watch brokers.ripple.dev --all-namespaces": True,
            f"patch triggers.ripple.dev -n {ns}": True, f"patch triggers.ripple.dev --subresource=status -n {ns}": True,
            f"update functions.ripple.dev --subresource=finalizers -n {ns}": True,
            f"create deployments.apps -n {ns}": True, f"patch deployments.apps -n {ns}": True,
            f"create services -n {ns}": True, f"delete configmaps -n {ns}": True, f"create events -n {ns}": True,
            "watch customresourcedefinitions.apiextensions.k8s.io": True,
            "create validatingwebhookconfigurations.admissionregistration.k8s.io": True,
            f"patch validatingwebhookconfigurations.admissionregistration.k8s.io/{WEBHOOK_CONFIGURATION}": True,
            "patch validatingwebhookconfigurations.admissionregistration.k8s.io/someone-elses": False,
            "delete validatingwebhookconfigurations.admissionregistration.k8s.io": False,
            "create mutatingwebhookconfigurations.admissionregistration.k8s.io": True,
            f"patch mutatingwebhookconfigurations.admissionregistration.k8s.io/{WEBHOOK_CONFIGURATION}": True,
            "patch mutatingwebhookconfigurations.admissionregistration.k8s.io/someone-elses": False,
            "create validatingadmissionpolicies.admissionregistration.k8s.io": False,
            f"get secrets -n {own}": True, "list secrets --all-namespaces": False,
            f"watch secrets -n {own}": False, f"delete namespace/{ns}": False, "list namespaces": False,
            f"delete deployments.apps -n {ns}": False,
            f"create pods -n {ns}": False, "create clusterrolebindings.rbac.authorization.k8s.io": False,
            f"update leases.coordination.k8s.io/ripple-operator -n {own}": True,
            f"update leases.coordination.k8s.io/ripple-autoscaler -n {own}": False,
            f"update leases.coordination.k8s.io/ripple-operator -n {ns}": False,
            f"create networkpolicies.networking.k8s.io -n {ns}": True,
            f"delete networkpolicies.networking.k8s.io -n {ns}": True,
            "list networkpolicies.networking.k8s.io --all-namespaces": False,
        },
        "dispatcher": {
            "list triggers.ripple.dev --all-namespaces": True, "watch functions.ripple.dev --all-namespaces": True,
            f"patch deployments.apps --subresource=scale -n {ns}": True,
            f"update deployments.apps --subresource=scale -n {ns}": True,
            "list endpointslices.discovery.k8s.io --all-namespaces": True,
            "watch endpointslices.discovery.k8s.io --all-namespaces": True,
            f"get secrets -n {own}": False, f"create deployments.apps -n {ns}": False,
            f"patch deployments.apps -n {ns}": False, f"patch triggers.ripple.dev -n {ns}": False,
            "list pods --all-namespaces": False, "list brokers.ripple.dev --all-namespaces": False,
            f"create networkpolicies.networking.k8s.io -n {ns}": False,
            # The token exchange for EventSource adapters whose sink is a Function.
            "create tokenreviews.authentication.k8s.io": True, f"list eventsources.ripple.dev -n {ns}": True,
            f"watch eventsources.ripple.dev -n {ns}": False, f"patch eventsources.ripple.dev -n {ns}": False,
        },
        "ingress": {
            "list brokers.ripple.dev --all-namespaces": True, "watch brokers.ripple.dev --all-namespaces": True,
            f"get secrets -n {own}": False, f"list triggers.ripple.dev -n {ns}": False,
            f"list functions.ripple.dev -n {ns}": False, f"create brokers.ripple.dev -n {ns}": False,
            f"patch brokers.ripple.dev --subresource=status -n {ns}": False,
        },
    }
    questions = [(c, q) for c, qs in expected.items() for q in qs]
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda cq: can_i(plane, release.kubeconfigs[cq[0]], cq[1]), questions))
    wrong = [f"{c}: can-i {q} -> {'yes' if a else 'no'}" for (c, q), a in zip(questions, answers, strict=True)
             if a != expected[c][q]]
    assert not wrong, "\n".join(wrong)

    # Real calls. As the admin: the objects the components work on.
    plane.kubectl("apply", "-n", ns, "-f", "-", input=textwrap.dedent("""
        apiVersion: ripple.dev/v1alpha1
        kind: Broker
        metadata: {name: default}
        ---
        apiVersion: ripple.dev/v1alpha1
        kind: Trigger
        metadata: {name: t}
        spec: {subscriber: {uri: "http://example.invalid/"}}
    """))
    plane.kubectl("create", "deployment", "fn", "--image=ghcr.io/ripple-dev/ripple:0.1.0", "--replicas=0", "-n", ns)
    kc = release.kubeconfigs

    operator = kc["operator"]
    assert allowed(as_user(plane, operator, "get", "triggers.ripple.dev", "--all-namespaces"))
    status = '{"status": {"subscriberUri": "http://example.invalid/"}}'
    assert allowed(as_user(plane, operator, "patch", "trigger", "t", "-n", ns, "--subresource=status",
                           "--type=merge", "-p", status))
    assert plane.get_json("trigger", "t", "-n", ns)["status"]["subscriberUri"] == "http://example.invalid/"
    assert allowed(as_user(plane, operator, "create", "deployment", "made-by-operator", "--replicas=0",
                           "--image=ghcr.io/ripple-dev/ripple:0.1.0", "-n", ns))
    vwc = json.dumps({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
                      "metadata": {"name": "rbac-probe.ripple.dev"}})
    assert allowed(as_user(plane, operator, "create", "--dry-run=server", "-f", "-", input=vwc))
    label = '{"metadata": {"labels": {"rbac-probe": "yes"}}}'
    assert allowed(as_user(plane, operator, "patch", "validatingwebhookconfiguration", WEBHOOK_CONFIGURATION,
                           "--type=merge", "-p", label, "--dry-run=server"))
    assert forbidden(as_user(plane, operator, "patch", "validatingwebhookconfiguration", "someone-elses",
                             "--type=merge", "-p", label))
    assert forbidden(as_user(plane, operator, "get", "secrets", "-n", own))
    assert forbidden(as_user(plane, operator, "delete", "namespace", ns, "--dry-run=server"))

    dispatcher = kc["dispatcher"]
    assert allowed(as_user(plane, dispatcher, "get", "triggers.ripple.dev", "--all-namespaces"))
    assert allowed(as_user(plane, dispatcher, "get", "endpointslices", "--all-namespaces"))
    assert allowed(as_user(plane, dispatcher, "patch", "deployment", "fn", "-n", ns, "--subresource=scale",
                           "--type=merge", "-p", '{"spec": {"replicas": 1}}'))
    assert plane.get_json("deployment", "fn", "-n", ns)["spec"]["replicas"] == 1
    assert forbidden(as_user(plane, dispatcher, "create", "deployment", "x", "--image=x", "-n", ns))
    assert forbidden(as_user(plane, dispatcher, "patch", "deployment", "fn", "-n", ns, "--type=merge",
                             "-p", '{"spec": {"paused": true}}'))
    assert forbidden(as_user(plane, dispatcher, "get", "secrets", "-n", own))

    ingress = kc["ingress"]
    brokers = as_user(plane, ingress, "get", "brokers.ripple.dev", "--all-namespaces", "-o", "name")
    assert allowed(brokers) and "broker.ripple.dev/default" in brokers.stdout
    assert forbidden(as_user(plane, ingress, "get", "triggers.ripple.dev", "-n", ns))
    assert forbidden(as_user(plane, ingress, "get", "secrets", "-n", own))



def ready(plane: ControlPlane, namespace: str, kind: str, name: str) -> bool:
    found = plane.kubectl("get", kind, name, "-n", namespace, "-o", "json", check=False)
    if found.returncode != 0:
        return False
    conditions = (json.loads(found.stdout).get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def webhooks(plane: ControlPlane, kind: str = "validatingwebhookconfiguration") -> list[dict]:
    found = plane.kubectl("get", kind, WEBHOOK_CONFIGURATION, "-o", "json", check=False)
    return (json.loads(found.stdout).get("webhooks") or []) if found.returncode == 0 else []


async def start_operator(release: Release, nats_url: str, port: int, *extra: str) -> RippleProcess:
    """``ripple operator`` as the chart runs it, but local: the API server reaches its webhook on 127.0.0.1."""
    return await RippleProcess(
        "operator", "--nats", nats_url, "--ingress-url", f"http://{release.name}-ingress.{release.namespace}.svc",
        "--webhook-host", "127.0.0.1", "--webhook-port", str(port), "--metrics-port", str(free_port()), *extra,
        env={"KUBECONFIG": str(release.kubeconfigs["operator"])},
    ).start()  # fmt: skip


async def stop_operator(operator: RippleProcess) -> None:
    if operator.process is not None and operator.process.returncode is None:
        await operator.interrupt()
    await operator.stop()


async def test_operator_serves_the_generated_webhook_certificate(release: Release, tmp_path: Path) -> None:
    """The self-signed certificate the chart generated, loaded by the operator from files (as its pod mounts the
    Secret): Kopf serves it, hands it to the API server as the webhooks' caBundle, and it is valid for the name
    the chart passes as --webhook-host (here reached on 127.0.0.1, so the API server itself cannot use it)."""
    plane = release.plane
    service = f"{release.name}-operator-webhook"
    data = plane.get_json("secret", f"{service}-tls", "-n", release.namespace)["data"]
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    cert.write_bytes(base64.b64decode(data["tls.crt"]))
    key.write_bytes(base64.b64decode(data["tls.key"]))
    nats = NatsServer(tmp_path / "nats")
    await nats.start()
    port = free_port()
    operator = await start_operator(release, nats.url, port, "--webhook-cert", str(cert), "--webhook-key", str(key))
    try:
        registered = await eventually(lambda: webhooks(plane), timeout=60, interval=0.3)
        assert base64.b64decode(registered[0]["clientConfig"]["caBundle"]) == cert.read_bytes()
        context = ssl.create_default_context(cadata=cert.read_text())
        host = f"{service}.{release.namespace}.svc"
        _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context, server_hostname=host)
        assert writer.get_extra_info("peercert")["subject"] == ((("commonName", host),),)
        writer.close()
        with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"):
            await asyncio.open_connection("127.0.0.1", port, ssl=context, server_hostname="elsewhere.svc")
    finally:
        await stop_operator(operator)
        await nats.stop()
    assert webhooks(plane) == []  # no webhook left pointing at 127.0.0.1 with a certificate for another name


async def post_event(url: str, event_id: str) -> int:
    headers = {"ce-specversion": "1.0", "ce-id": event_id, "ce-type": "order.placed", "ce-source": "/shop",
               "content-type": "application/json"}
    async with aiohttp.ClientSession() as session, session.post(url, data=b'{"total": 3}', headers=headers) as answer:
        return answer.status


async def accepted(url: str, event_id: str) -> bool:
    """The ingress stored the event (it answers 404 until its watch has seen the Broker)."""
    return await post_event(url, event_id) == 202


async def test_components_run_on_their_service_accounts_alone(
    helm: Helm, release: Release, namespace: str, tmp_path: Path
) -> None:
    """The operator, the ingress and the dispatcher as local processes, each with no credentials but its own
    ServiceAccount's token. The operator registers its webhook in the chart's configuration; a Broker, a Function
    and a Trigger go Ready with the Function's children created; the ingress knows the Broker (202) and no other
    (404); the dispatcher wakes the Function, scaling its Deployment through deployments/scale; a filter that
    does not compile is refused at admission. Not one request is forbidden: the ClusterRoles are sufficient.
    A Helm upgrade leaves the webhooks Kopf registered alone."""
    plane = release.plane
    nats = NatsServer(tmp_path / "nats")
    await nats.start()
    operator = await start_operator(release, nats.url, free_port())
    processes = [operator]
    try:
        registered = await eventually(lambda: webhooks(plane), timeout=60, interval=0.3)
        assert registered[0]["clientConfig"]["url"].startswith("https://127.0.0.1:")
        plane.kubectl("apply", "-n", namespace, "-f", "-", input=textwrap.dedent("""
            apiVersion: ripple.dev/v1alpha1
            kind: Broker
            metadata: {name: default}
            ---
            apiVersion: ripple.dev/v1alpha1
            kind: Function
            metadata: {name: fn}
            spec:
              handler: handler:handle
              source: {inline: "def handle(event):\\n    return None\\n"}
            ---
            apiVersion: ripple.dev/v1alpha1
            kind: Trigger
            metadata: {name: t}
            spec:
              filter: {attributes: {type: order.placed}}
              subscriber: {ref: {kind: Function, name: fn}}
        """))
        for kind, name in (("broker", "default"), ("function", "fn"), ("trigger", "t")):
            await eventually(lambda k=kind, n=name: ready(plane, namespace, k, n), timeout=45, interval=0.3)
        for kind, name in (("deployment", "fn"), ("service", "fn"), ("configmap", "fn-code")):
            plane.kubectl("get", kind, name, "-n", namespace)
        assert plane.get_json("deployment", "fn", "-n", namespace)["spec"]["replicas"] == 0

        port = free_port()
        ingress = await RippleProcess("ingress", "--kubernetes", "--nats", nats.url, "--host", "127.0.0.1",
                                      "--port", str(port), env={"KUBECONFIG": str(release.kubeconfigs["ingress"])},
                                      ).start()
        processes.append(ingress)
        dispatcher = await RippleProcess("dispatcher", "--kubernetes", "--nats", nats.url, "--activation-timeout=5",
                                         env={"KUBECONFIG": str(release.kubeconfigs["dispatcher"]),
                                              "POD_NAMESPACE": release.namespace,  # as the chart's pod has it
                                              "POD_NAME": "ripple-dispatcher-test"}).start()
        processes.append(dispatcher)
        await ingress.wait_for_line("ingress listening")
        await dispatcher.wait_for_line("dispatcher watching")
        base = f"http://127.0.0.1:{port}/{namespace}"
        await eventually(lambda: accepted(f"{base}/default", "order-1"), timeout=30, interval=0.3)
        assert await post_event(f"{base}/default", "order-2") == 202
        assert await post_event(f"{base}/no-such-broker", "order-3") == 404
        # The activator wakes the Function for the waiting events: the dispatcher scaled its Deployment.
        await eventually(lambda: plane.get_json("deployment", "fn", "-n", namespace)["spec"]["replicas"] == 1,
                         timeout=30, interval=0.3)

        refused = plane.kubectl("apply", "-n", namespace, "-f", "-", check=False, input=textwrap.dedent("""
            apiVersion: ripple.dev/v1alpha1
            kind: Trigger
            metadata: {name: bad}
            spec:
              subscriber: {uri: "http://example.invalid/"}
              filters: [{cesql: "source LIKE"}]
        """))
        assert refused.returncode != 0 and "spec.filters[0].cesql" in refused.stderr, refused.stderr
        # An upgrade leaves the webhooks alone: the chart's object carries no `webhooks` for Helm to reset.
        helm.run("upgrade", release.name, str(CHART), "--namespace", release.namespace, "--reuse-values",
                 "--set", "ingress.replicaCount=2")
        assert webhooks(plane) == registered
        # Deleting goes through Kopf's finalizers (consumer and streams removed) with the same permissions.
        plane.kubectl("delete", "trigger,function,broker", "--all", "-n", namespace, "--timeout=45s", timeout=60)
        for process in processes:
            denied = [line for line in process.lines if "forbidden" in line.lower() or "permission" in line.lower()]
            assert not denied, f"ripple {process.args[0]}:\n" + "\n".join(denied)
            assert process.process is not None and process.process.returncode is None, process.output()
        assert webhooks(plane, "mutatingwebhookconfiguration") == []  # Kopf's, for mutating handlers: none
    finally:
        for process in reversed(processes[1:]):
            await process.stop()
        await stop_operator(operator)
        await nats.stop()
    # On shutdown Kopf empties the webhooks (the chart's object stays, for `helm uninstall` to remove).
    assert webhooks(plane) == []


def test_the_bundled_nats_is_a_three_server_cluster_by_default(helm: Helm) -> None:
    docs = helm.template(release="ripple", namespace="events")
    nats = objects_of(docs, "StatefulSet")["ripple-nats"]
    assert nats["spec"]["replicas"] == 3 and nats["spec"]["podManagementPolicy"] == "Parallel"
    pod = nats["spec"]["template"]["spec"]
    container = pod["containers"][0]
    routes = ",".join(f"nats://ripple-nats-{i}.ripple-nats-headless.events.svc:6222" for i in range(3))
    assert container["args"] == ["-js", "-sd", "/data", "-m", "8222", "--server_name", "$(POD_NAME)",
                                 "--cluster_name", "ripple-nats", "--cluster", "nats://0.0.0.0:6222",
                                 "--routes", routes]
    assert container["env"] == [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]
    assert {"name": "cluster", "containerPort": 6222, "protocol": "TCP"} in container["ports"]
    assert nats["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"  # a PVC per server
    spread = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]
    assert spread["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    budget = objects_of(docs, "PodDisruptionBudget")["ripple-nats"]
    assert budget["spec"]["maxUnavailable"] == 1
    assert budget["spec"]["selector"]["matchLabels"] == nats["spec"]["selector"]["matchLabels"]
    headless = objects_of(docs, "Service")["ripple-nats-headless"]["spec"]["ports"]
    assert {"name": "cluster", "port": 6222, "targetPort": "cluster", "protocol": "TCP"} in headless

    single = helm.template("nats.cluster.replicas=1", release="ripple", namespace="events")
    one = objects_of(single, "StatefulSet")["ripple-nats"]
    assert one["spec"]["replicas"] == 1 and one["spec"]["template"]["spec"]["containers"][0]["args"] == [
        "-js", "-sd", "/data", "-m", "8222"]
    assert not objects_of(single, "PodDisruptionBudget")
    assert "--nats=nats://ripple-nats.events.svc:4222" in container_args(single, "ripple-dispatcher")
    assert "--broker-replicas=1" in container_args(single, "ripple-operator")
    refused = helm.run("template", "ripple", str(CHART), "--set", "nats.cluster.replicas=2", check=False)
    assert refused.returncode != 0 and "/nats/cluster/replicas" in refused.stdout + refused.stderr


async def test_two_autoscalers_elect_one_by_a_lease_with_the_dispatchers_rbac(release: Release) -> None:
    """Two lease holders on the dispatcher's own token, in the release's namespace: one leads at a time, the other
    takes over once the leader stops renewing; another Lease's name is refused."""
    from kubernetes_asyncio import client as kube_client
    from kubernetes_asyncio import config as kube_config
    from kubernetes_asyncio.client.exceptions import ApiException

    from ripple.cluster.dataplane import AUTOSCALER_LEASE
    from ripple.kube.lease import KubeLease

    # A dispatcher of an earlier test may have left its Lease behind (killed, it did not hand it over).
    release.plane.kubectl("delete", "lease", AUTOSCALER_LEASE, "-n", release.namespace, "--ignore-not-found")
    path = str(release.kubeconfigs["dispatcher"])
    apis = [await kube_config.new_client_from_config(config_file=path) for _ in range(2)]
    first, second = (KubeLease(api, release.namespace, AUTOSCALER_LEASE, holder, ttl=2.0)
                     for api, holder in zip(apis, ("dispatcher-a", "dispatcher-b"), strict=True))
    try:
        assert await first.attempt() and not await second.attempt()
        assert await first.attempt() and not await second.attempt()  # renewed; still the only one
        lease = await kube_client.CoordinationV1Api(apis[0]).read_namespaced_lease(AUTOSCALER_LEASE,
                                                                                   release.namespace)
        assert lease.spec.holder_identity == "dispatcher-a" and lease.spec.lease_duration_seconds == 2
        await asyncio.sleep(0.5)
        assert not await second.attempt()  # not expired yet
        await asyncio.sleep(2.5)  # the first stops renewing (its process died): the lease runs out
        assert not first.held()
        assert await second.attempt() and not await first.attempt()
        other = KubeLease(apis[0], release.namespace, "someone-elses", "dispatcher-a")
        assert not await other.attempt()
        with pytest.raises(ApiException) as refused:  # the Role names the autoscaler's Lease alone
            await other.leases.read_namespaced_lease("someone-elses", release.namespace)
        assert refused.value.status == 403
    finally:
        for api in apis:
            await api.close()


def test_scaled_out_components_get_disruption_budgets_and_the_ingress_an_autoscaler(helm: Helm) -> None:
    docs = helm.template("dispatcher.replicaCount=2", "ingress.autoscaling.enabled=true", "ingress.replicaCount=2",
                         "ingress.autoscaling.maxReplicas=6", "operator.replicaCount=2")
    deployments = objects_of(docs, "Deployment")
    assert deployments["ripple-dispatcher"]["spec"]["replicas"] == 2
    assert "replicas" not in deployments["ripple-ingress"]["spec"]  # the HorizontalPodAutoscaler owns it
    budgets = objects_of(docs, "PodDisruptionBudget")
    assert set(budgets) == {"ripple-ingress", "ripple-dispatcher", "ripple-operator", "ripple-nats"}
    for name in ("ripple-ingress", "ripple-dispatcher", "ripple-operator"):
        assert budgets[name]["spec"]["selector"]["matchLabels"] == deployments[name]["spec"]["selector"]["matchLabels"]
    hpa = objects_of(docs, "HorizontalPodAutoscaler")["ripple-ingress"]["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "ripple-ingress"}
    assert hpa["minReplicas"] == 2 and hpa["maxReplicas"] == 6
    dispatcher = deployments["ripple-dispatcher"]["spec"]["template"]["spec"]["containers"][0]
    assert {e["name"] for e in dispatcher["env"]} == {"POD_NAME", "POD_NAMESPACE", "RIPPLE_DELIVERY_KEYS_SECRET_FILE"}
    for component, lease in (("dispatcher", "ripple-autoscaler"), ("operator", "ripple-operator")):
        lease_role = objects_of(docs, "Role")[f"ripple-{component}-lease"]
        assert lease_role["rules"][1] == {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
                                          "resourceNames": [lease], "verbs": ["get", "update"]}
    operator = deployments["ripple-operator"]["spec"]
    assert operator["replicas"] == 2 and "strategy" not in operator  # standbys make a rolling update safe
    container = operator["template"]["spec"]["containers"][0]
    assert "--leader-election" in container["args"]
    assert {e["name"] for e in container["env"]} == {"POD_NAME", "POD_NAMESPACE"}
    assert container["readinessProbe"]["tcpSocket"] == {"port": "webhook"}  # standbys stay out of the Service
    single = helm.template()
    assert set(objects_of(single, "PodDisruptionBudget")) == {"ripple-nats"}
    assert not objects_of(single, "HorizontalPodAutoscaler")


WEBHOOK_KINDS_OBJECTS = ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration")


def test_a_second_release_names_its_own_webhook_configuration(helm: Helm) -> None:
    docs = helm.template("operator.webhook.configurationName=validate.second.ripple.dev", release="second")
    for kind in WEBHOOK_KINDS_OBJECTS:
        assert set(objects_of(docs, kind)) == {"validate.second.ripple.dev"}
    assert "--webhook-configuration=validate.second.ripple.dev" in container_args(docs, "second-ripple-operator")
    named = [r for r in rules_of(docs, "operator") if r.get("resourceNames") and
             "validatingwebhookconfigurations" in r["resources"]]
    assert [r["resourceNames"] for r in named] == [["validate.second.ripple.dev"]]


def test_the_network_policy_admits_exactly_ripples_pods_to_nats(helm: Helm) -> None:
    """Each ``from`` of the policy selects the pods it means: the chart's own Deployments, and the Functions and
    EventSource adapters the operator makes (labels from the operator's own builders)."""
    from ripple.api.models import API_VERSION, EventSource
    from ripple.controller.resources.eventsource import adapter_labels
    from ripple.kube.names import function_labels

    assert not objects_of(helm.template(), "NetworkPolicy")
    docs = helm.template("networkPolicy.enabled=true")
    policy = objects_of(docs, "NetworkPolicy")["ripple-nats"]["spec"]
    nats_pod = objects_of(docs, "StatefulSet")["ripple-nats"]["spec"]["template"]["metadata"]["labels"]
    assert policy["podSelector"]["matchLabels"].items() <= nats_pod.items()
    client, routes, monitor = policy["ingress"]
    assert [p["port"] for r in (client, routes, monitor) for p in r["ports"]] == [4222, 6222, 8222]
    assert "from" not in monitor  # probes and scrapers
    assert routes["from"][0]["podSelector"]["matchLabels"].items() <= nats_pod.items()
    source = EventSource.model_validate({
        "apiVersion": API_VERSION, "kind": "EventSource", "metadata": {"name": "hook", "namespace": "shop"},
        "spec": {"webhook": {}, "sink": {"uri": "http://example.invalid/"}}})
    pods = {**{name: d["spec"]["template"]["metadata"]["labels"] for name, d in objects_of(docs, "Deployment").items()},
            "function": function_labels("fn"), "eventsource": adapter_labels(source)}
    admitted = set()
    for peer in client["from"]:
        wanted = peer["podSelector"]["matchLabels"].items()
        selected = {name for name, labels in pods.items() if wanted <= labels.items()}
        assert len(selected) == 1, (peer, selected)
        assert ("namespaceSelector" in peer) == (selected <= {"function", "eventsource"})  # those live anywhere
        admitted |= selected
    assert admitted == {"ripple-ingress", "ripple-dispatcher", "ripple-operator", "function", "eventsource"}


def test_service_monitors_reach_the_metrics_ports(helm: Helm) -> None:
    """Each ServiceMonitor selects exactly one Service, whose port it names and which leads to the container port
    the component serves /metrics on."""
    assert not objects_of(helm.template(), "ServiceMonitor")
    docs = helm.template("metrics.serviceMonitor.enabled=true", "metrics.serviceMonitor.labels.release=prom",
                         "metrics.serviceMonitor.interval=15s")
    monitors, services = objects_of(docs, "ServiceMonitor"), objects_of(docs, "Service")
    deployments = objects_of(docs, "Deployment")
    assert set(monitors) == {"ripple-ingress", "ripple-dispatcher", "ripple-operator"}
    for name, monitor in monitors.items():
        assert monitor["metadata"]["labels"]["release"] == "prom"
        wanted = monitor["spec"]["selector"]["matchLabels"].items()
        (service,) = [s for s in services.values() if wanted <= s["metadata"]["labels"].items()]
        (endpoint,) = monitor["spec"]["endpoints"]
        assert endpoint["path"] == "/metrics" and endpoint["interval"] == "15s"
        (port,) = [p for p in service["spec"]["ports"] if p["name"] == endpoint["port"]]
        container = deployments[name]["spec"]["template"]["spec"]["containers"][0]
        assert port["targetPort"] in {p["name"] for p in container["ports"]}
        pod_labels = deployments[name]["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= pod_labels.items()
        if name == "ripple-operator":
            # Standbys are not ready (only the leader serves the webhook) yet report ripple_operator_leader 0.
            assert service["spec"]["publishNotReadyAddresses"] is True and port["port"] == 8082
            assert "--metrics-port=8082" in container_args(docs, name)
            assert not service["metadata"]["name"].endswith("-webhook")


# --- production extras: Functions' NetworkPolicies, the Grafana dashboard, cert-manager ----------------------


def network_policy_flags(docs: list[dict], operator: str) -> list[str]:
    return [a for a in container_args(docs, operator) if a.startswith(("--function-network-policy", "--dispatcher-"))]


def test_functions_network_policies_admit_this_release_s_dispatcher(helm: Helm) -> None:
    """The flags the chart gives the operator, read by the operator's own parser, make a policy whose dispatcher
    peer is this release's dispatcher pods in its namespace: not its ingress or operator, not another release's."""
    from ripple.api.models import API_VERSION, Function
    from ripple.cli.operator import dispatcher_pods
    from ripple.cli.parser import build_parser
    from ripple.controller.resources.function import network_policy

    assert not network_policy_flags(helm.template(), "ripple-operator")
    docs = helm.template("networkPolicy.enabled=true", release="shop", namespace="events")
    pods = dispatcher_pods(build_parser().parse_args(container_args(docs, "shop-ripple-operator")))
    assert pods is not None and pods.namespace == "events"
    fn = Function.model_validate({"apiVersion": API_VERSION, "kind": "Function",
                                  "metadata": {"name": "fn", "namespace": "orders"},
                                  "spec": {"handler": "m:h", "image": "fn:1"}})
    peer = network_policy(fn, pods)["spec"]["ingress"][0]["from"][0]
    assert peer["namespaceSelector"] == {"matchLabels": {"kubernetes.io/metadata.name": "events"}}
    wanted = peer["podSelector"]["matchLabels"].items()
    labels = {name: d["spec"]["template"]["metadata"]["labels"] for name, d in objects_of(docs, "Deployment").items()}
    assert {name for name, pod in labels.items() if wanted <= pod.items()} == {"shop-ripple-dispatcher"}
    other = helm.template(release="other", namespace="events")
    assert not wanted <= objects_of(other, "Deployment")["other-ripple-dispatcher"]["spec"]["template"]["metadata"][
        "labels"].items()


def test_the_grafana_dashboard_is_a_configmap_for_the_sidecar(helm: Helm) -> None:
    assert not objects_of(helm.template(), "ConfigMap")
    docs = helm.template("metrics.grafanaDashboard.enabled=true", namespace="events")
    (configmap,) = objects_of(docs, "ConfigMap").values()
    assert configmap["metadata"]["namespace"] == "events"
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(configmap["data"]["ripple.json"]) == json.loads(DASHBOARD.read_text())  # the file, unchanged
    custom = helm.template("metrics.grafanaDashboard.enabled=true", "metrics.grafanaDashboard.label=example.com/dash",
                           "metrics.grafanaDashboard.labelValue=2", "metrics.grafanaDashboard.namespace=monitoring",
                           "metrics.grafanaDashboard.annotations.grafana_folder=Ripple")
    (configmap,) = objects_of(custom, "ConfigMap").values()
    assert configmap["metadata"]["labels"]["example.com/dash"] == "2"  # --set makes 2 a number: quoted again
    assert "grafana_dashboard" not in configmap["metadata"]["labels"]
    assert configmap["metadata"]["namespace"] == "monitoring"
    assert configmap["metadata"]["annotations"] == {"grafana_folder": "Ripple"}


def test_cert_manager_issues_the_webhook_certificate(helm: Helm) -> None:
    """The Certificate covers the names the API server reaches the webhook by, lands in the Secret the operator
    mounts, whose ca.crt the operator registers; the CA injector is pointed at it; the chart generates nothing."""
    docs = helm.template("operator.webhook.certManager.enabled=true", "operator.webhook.certManager.issuerRef.name=ca",
                         "operator.webhook.certManager.issuerRef.kind=ClusterIssuer", namespace="events")
    (certificate,) = objects_of(docs, "Certificate").values()
    spec = certificate["spec"]
    args = container_args(docs, "ripple-operator")
    flags = dict(a.removeprefix("--").split("=", 1) for a in args if a.startswith("--webhook-"))
    namespace, service = flags["webhook-service"].split("/")
    assert service in objects_of(docs, "Service") and certificate["metadata"]["namespace"] == namespace == "events"
    assert {flags["webhook-host"], f"{service}.{namespace}.svc", f"{service}.{namespace}.svc.cluster.local"} <= set(
        spec["dnsNames"])
    assert spec["issuerRef"] == {"name": "ca", "kind": "ClusterIssuer", "group": "cert-manager.io"}
    assert "server auth" in spec["usages"]
    pod = objects_of(docs, "Deployment")["ripple-operator"]["spec"]["template"]
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes["webhook-cert"]["secret"]["secretName"] == spec["secretName"]
    (mount,) = [m for m in pod["spec"]["containers"][0]["volumeMounts"] if m["name"] == "webhook-cert"]
    # cert-manager's Secret holds tls.crt, tls.key and ca.crt: the CA is what the webhooks must trust.
    assert (flags["webhook-cert"], flags["webhook-key"], flags["webhook-ca"]) == (
        f"{mount['mountPath']}/tls.crt", f"{mount['mountPath']}/tls.key", f"{mount['mountPath']}/ca.crt")
    assert set(objects_of(docs, "Secret")) == {"ripple-dispatcher-keys"}  # no webhook certificate of the chart's
    assert "checksum/webhook-cert" not in pod["metadata"].get("annotations", {})
    for kind in WEBHOOK_KINDS_OBJECTS:
        annotations = objects_of(docs, kind)[WEBHOOK_CONFIGURATION]["metadata"]["annotations"]
        assert annotations == {"cert-manager.io/inject-ca-from": f"events/{certificate['metadata']['name']}"}

    default = helm.template()
    assert not objects_of(default, "Certificate") and "--webhook-ca" not in " ".join(
        container_args(default, "ripple-operator"))
    assert "annotations" not in objects_of(default, "ValidatingWebhookConfiguration")[WEBHOOK_CONFIGURATION]["metadata"]
    both = helm.run("template", "ripple", str(CHART), "--set", "operator.webhook.certManager.enabled=true",
                    "--set", "operator.webhook.certManager.issuerRef.name=ca",
                    "--set", "operator.webhook.certSecret=mine", check=False)
    assert both.returncode != 0 and "exclude each other" in both.stderr
    unnamed = helm.run("template", "ripple", str(CHART), "--set", "operator.webhook.certManager.enabled=true",
                       "--skip-schema-validation", check=False)
    assert unnamed.returncode != 0 and "needs operator.webhook.certManager.issuerRef.name" in unnamed.stderr


async def test_the_operator_makes_and_removes_functions_network_policies_on_its_service_account(
    helm: Helm, release: Release, namespace: str, tmp_path: Path
) -> None:
    """With the flags the chart passes (networkPolicy.enabled) and nothing but the operator's ServiceAccount, a
    Function gets its NetworkPolicy admitting the release's dispatcher; started without them, the operator
    removes it. Not one request is forbidden."""
    plane = release.plane
    docs = helm.template("networkPolicy.enabled=true", release=release.name, namespace=release.namespace)
    flags = network_policy_flags(docs, f"{release.name}-operator")
    assert "--function-network-policy" in flags
    dispatcher = objects_of(docs, "Deployment")[f"{release.name}-dispatcher"]["spec"]["template"]["metadata"]["labels"]
    nats = NatsServer(tmp_path / "nats")
    await nats.start()
    outputs = []
    try:
        operator = await start_operator(release, nats.url, free_port(), *flags)
        try:
            plane.kubectl("apply", "-n", namespace, "-f", "-", input=textwrap.dedent("""
                apiVersion: ripple.dev/v1alpha1
                kind: Function
                metadata: {name: fn}
                spec: {handler: "m:h", image: "fn:1"}
            """))
            found = await eventually(lambda: plane.kubectl("get", "networkpolicy", "fn", "-n", namespace, "-o", "json",
                                                           check=False).stdout, timeout=45, interval=0.3)
            (peer, _) = json.loads(found)["spec"]["ingress"][0]["from"]
            assert peer["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": release.namespace}
            assert peer["podSelector"]["matchLabels"].items() <= dispatcher.items()
        finally:
            await stop_operator(operator)
            outputs.append(operator.output())
        operator = await start_operator(release, nats.url, free_port())
        try:
            await eventually(lambda: plane.kubectl("get", "networkpolicy", "fn", "-n", namespace,
                                                   check=False).returncode != 0, timeout=45, interval=0.3)
        finally:
            await stop_operator(operator)
            outputs.append(operator.output())
    finally:
        await nats.stop()
    for output in outputs:
        denied = [line for line in output.splitlines() if "forbidden" in line.lower()]
        assert not denied, "\n".join(denied)


# --- the console -------------------------------------------------------------------------------------------------


def test_the_console_reads_every_dispatcher_and_may_change_nothing(helm: Helm) -> None:
    """Off by default; on, its --dispatchers names the headless Service of the dispatchers' health port (so every
    replica's /metrics is read), its ClusterRole only reads, and NATS admits it under the network policy."""
    from ripple.cli.parser import build_parser

    assert "ripple-console" not in objects_of(helm.template(), "Deployment")
    docs = helm.template("console.enabled=true", "networkPolicy.enabled=true", "dispatcher.replicaCount=2",
                         release="ripple", namespace="events")
    args = container_args(docs, "ripple-console")
    parsed = build_parser().parse_args(args)
    assert parsed.command == "console" and parsed.kubernetes
    host, _, port = parsed.dispatchers.rpartition(":")
    services = objects_of(docs, "Service")
    headless = services[host.split(".", 1)[0]]
    assert host.split(".")[1] == "events" and headless["spec"]["clusterIP"] == "None"
    dispatcher = objects_of(docs, "Deployment")["ripple-dispatcher"]["spec"]["template"]
    assert headless["spec"]["selector"].items() <= dispatcher["metadata"]["labels"].items()
    (served,) = [p for p in headless["spec"]["ports"] if p["port"] == int(port)]
    assert served["targetPort"] in {p["name"] for p in dispatcher["spec"]["containers"][0]["ports"]}
    verbs = {verb for rule in rules_of(docs, "console") for verb in rule["verbs"]}
    assert verbs <= {"get", "list", "watch"}
    service = services["ripple-console"]
    assert service["spec"]["type"] == "ClusterIP"
    console_pod = objects_of(docs, "Deployment")["ripple-console"]["spec"]["template"]["metadata"]["labels"]
    client = objects_of(docs, "NetworkPolicy")["ripple-nats"]["spec"]["ingress"][0]
    assert any(peer["podSelector"]["matchLabels"].items() <= console_pod.items() for peer in client["from"])


def test_the_dispatcher_keeps_the_delivery_history_the_values_say(helm: Helm) -> None:
    from ripple.cli.dispatcher import record_settings
    from ripple.cli.parser import build_parser

    args = container_args(helm.template("dispatcher.records.maxAge=PT6H", "dispatcher.records.maxBytes=1048576"),
                          "ripple-dispatcher")
    settings = record_settings(build_parser().parse_args(args))
    assert (settings.max_age, settings.max_bytes) == (6 * 3600, 1048576)
    refused = helm.run("template", "ripple", str(CHART), "--set", "dispatcher.records.maxAge=six hours",
                       check=False)
    assert refused.returncode != 0 and "maxAge" in refused.stderr


def test_tracing_reaches_every_component_and_what_the_operator_makes(helm: Helm) -> None:
    """tracing.otlpEndpoint and tracing.env become OTEL_* variables of each component; the operator hands its own
    on to Functions and adapters (controller/config.py: telemetry_env), so one value traces the whole release."""
    from ripple.controller.config import telemetry_env

    def env_of(docs: list[dict], name: str) -> dict[str, str]:
        container = objects_of(docs, "Deployment")[name]["spec"]["template"]["spec"]["containers"][0]
        return {e["name"]: e.get("value") for e in container.get("env") or []}

    plain = helm.template("console.enabled=true")
    assert not any(k.startswith("OTEL_") for name in objects_of(plain, "Deployment") for k in env_of(plain, name))
    docs = helm.template("console.enabled=true", "tracing.otlpEndpoint=http://collector.obs:4318",
                         "tracing.env.OTEL_TRACES_SAMPLER=parentbased_traceidratio",
                         "tracing.env.OTEL_TRACES_SAMPLER_ARG=0.1")
    wanted = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector.obs:4318",
              "OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.1"}
    for name in ("ripple-ingress", "ripple-dispatcher", "ripple-operator", "ripple-console"):
        assert wanted.items() <= env_of(docs, name).items(), name
    assert dict(telemetry_env(env_of(docs, "ripple-operator"))) == wanted
    refused = helm.run("template", "ripple", str(CHART), "--set", "tracing.env.PATH=/tmp", check=False)
    assert refused.returncode != 0


def test_the_ingress_and_operator_get_the_abuse_limits_the_values_say(helm: Helm) -> None:
    """ingress.maxBatch and ingress.rateLimits become the ingress's flags (a generous broker limit by default, no
    sender limit: behind a proxy every client would share one); operator.maxFanout the operator's."""
    from ripple.cli.parser import build_parser
    from ripple.defaults import MAX_BATCH, MAX_FANOUT
    from ripple.ingress.limits import RateLimit

    parse = build_parser().parse_args
    docs = helm.template()
    ingress = parse(container_args(docs, "ripple-ingress"))
    assert (ingress.max_batch, ingress.rate_limit_broker, ingress.rate_limit_sender) == (
        MAX_BATCH, RateLimit(2000, 10000), None)
    assert parse(container_args(docs, "ripple-operator")).max_fanout == MAX_FANOUT

    docs = helm.template("ingress.maxBatch=50", "ingress.rateLimits.broker=null",
                         "ingress.rateLimits.sender.eventsPerSecond=0.5", "operator.maxFanout=7")
    ingress = parse(container_args(docs, "ripple-ingress"))
    assert (ingress.max_batch, ingress.rate_limit_broker, ingress.rate_limit_sender) == (50, None, RateLimit(0.5, 1))
    assert parse(container_args(docs, "ripple-operator")).max_fanout == 7
    burst = parse(container_args(helm.template("ingress.rateLimits.sender.eventsPerSecond=10",
                                               "ingress.rateLimits.sender.burst=100"), "ripple-ingress"))
    assert burst.rate_limit_sender == RateLimit(10, 100)

    for bad, name in (("ingress.rateLimits.broker.eventsPerSecond=0", "eventsPerSecond"),
                      ("ingress.rateLimits.sender.eventsPerSecond=fast", "eventsPerSecond"),
                      ("ingress.rateLimits.broker.burst=0", "burst"), ("ingress.maxBatch=0", "maxBatch"),
                      ("operator.maxFanout=0", "maxFanout"), ("ingress.rateLimits.everyone.eventsPerSecond=1",
                                                              "everyone")):
        refused = helm.run("template", "ripple", str(CHART), "--set", bad, check=False)
        assert refused.returncode != 0 and name in refused.stderr, (bad, refused.stderr)


SECURED_NATS = ["nats.cluster.replicas=1", "nats.encryption.enabled=true", "nats.tls.enabled=true",
                "nats.tls.secretName=nats-tls", "nats.auth.enabled=true"]


def test_a_secured_nats_is_wired_to_every_component(helm: Helm) -> None:
    docs = helm.template(*SECURED_NATS, release="ripple", namespace="events")
    (nats,) = objects_of(docs, "StatefulSet").values()
    container = nats["spec"]["template"]["spec"]["containers"][0]
    assert container["args"][:2] == ["-c", "/etc/nats/config/nats.conf"]
    env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"] if "valueFrom" in e}
    assert env["JS_KEY"] == {"name": "ripple-nats-encryption", "key": "key"}
    assert env["NATS_PASSWORD"] == {"name": "ripple-nats-client", "key": "password"}
    secrets_made = objects_of(docs, "Secret")
    assert secrets_made["ripple-nats-encryption"]["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert len(base64.b64decode(secrets_made["ripple-nats-encryption"]["data"]["key"])) >= 32
    for component in ("ingress", "dispatcher", "operator"):
        pod = objects_of(docs, "Deployment")[f"ripple-{component}"]["spec"]["template"]["spec"]
        (main,) = pod["containers"]
        variables = {e["name"]: e.get("value") for e in main["env"]}
        assert variables["RIPPLE_NATS_CA"] == "/etc/ripple/nats/ca.crt"
        assert variables["RIPPLE_NATS_USER"] == "ripple"
        assert variables["RIPPLE_NATS_PASSWORD_FILE"] == "/etc/ripple/nats-auth/password"
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert volumes["nats-ca"]["secret"]["secretName"] == "nats-tls"
        # Only the operator knows the Functions' NATS user, to hand it to the Functions it deploys.
        assert ("RIPPLE_FUNCTIONS_NATS_USER" in variables) == (component == "operator")
        assert volumes["nats-auth"]["secret"]["secretName"] == "ripple-nats-client"
    plain = helm.template(release="ripple", namespace="events")
    assert not any(d["kind"] == "ConfigMap" and d["metadata"]["name"] == "ripple-nats-config" for d in plain)
    manager = helm.template("nats.tls.enabled=true", "nats.tls.certManager.enabled=true",
                            "nats.tls.certManager.issuerRef.name=internal-ca", release="ripple", namespace="events")
    certificate = objects_of(manager, "Certificate")["ripple-nats"]["spec"]
    assert certificate["secretName"] == "ripple-nats-tls"
    assert "*.ripple-nats-headless.events.svc" in certificate["dnsNames"]


@dataclass
class RenderedNats:
    url: str
    store_dir: Path
    ca: Path
    env: dict[str, str]
    ripple: Any
    """A NatsAuth for the user ``ripple`` (or none when the chart asks for none)."""


@asynccontextmanager
async def rendered_nats(helm: Helm, tmp_path: Path, values: list[str]) -> AsyncIterator[RenderedNats]:
    """nats-server started as the chart's StatefulSet would start it: its args and rendered config, the Secrets
    as files and environment variables."""
    from ripple.local.nats_server import nats_server_binary
    from ripple.store import EventStore
    from ripple.store.auth import NatsAuth
    from ripple.tls import throwaway_ca

    docs = helm.template(*values, release="ripple", namespace="events")
    (nats,) = objects_of(docs, "StatefulSet").values()
    args = list(nats["spec"]["template"]["spec"]["containers"][0]["args"])
    ca = throwaway_ca(tmp_path / "tls", ["127.0.0.1"])
    # As the chart makes them (a letter first: nats-server parses a variable's value, and one starting with "-"
    # is refused as a malformed number).
    env = dict(os.environ, JS_KEY="k" + secrets.token_hex(24), NATS_PASSWORD="p" + secrets.token_hex(16),
               NATS_FUNCTIONS_PASSWORD="f" + secrets.token_hex(16))
    auth = NatsAuth()
    configs = objects_of(docs, "ConfigMap")
    if "ripple-nats-config" in configs:
        text = configs["ripple-nats-config"]["data"]["nats.conf"]
        text = text.replace("/etc/nats/tls/tls.crt", str(ca.server.cert)).replace(
            "/etc/nats/tls/tls.key", str(ca.server.key)).replace("/etc/nats/tls/ca.crt", str(ca.ca))
        (tmp_path / "nats.conf").write_text(text)
        args[args.index("/etc/nats/config/nats.conf")] = str(tmp_path / "nats.conf")
        auth = NatsAuth(ca=ca.ca if "tls {" in text else None,
                        user="ripple" if "authorization" in text else None,
                        password=env["NATS_PASSWORD"] if "authorization" in text else None)
    store_dir = tmp_path / "data"
    args[args.index("/data")] = str(store_dir)
    args[args.index("8222")] = str(free_port())
    port = free_port()
    log = tmp_path / "nats-server.log"
    with log.open("wb") as output:
        process = await asyncio.create_subprocess_exec(
            nats_server_binary(), *args, "-a", "127.0.0.1", "-p", str(port), env=env,
            stdout=output, stderr=asyncio.subprocess.STDOUT)
    url = f"nats://127.0.0.1:{port}"
    try:
        for _ in range(100):
            assert process.returncode is None, f"the rendered nats-server exited: {log.read_text()[-2000:]}"
            try:
                await (await asyncio.wait_for(EventStore.connect(url, auth=auth), 2)).close()
                break
            except Exception:
                await asyncio.sleep(0.1)
        else:
            raise AssertionError(f"the rendered nats-server took no connection: {log.read_text()[-2000:]}")
        yield RenderedNats(url, store_dir, ca.ca, env, auth)
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 10)


async def run_rendered_nats(helm: Helm, tmp_path: Path, values: list[str], payload: bytes) -> Path:
    """Store one event carrying ``payload`` through Ripple's store on the rendered NATS; its store directory."""
    from ripple.api.models import BrokerSpec
    from ripple.store import EventStore
    from tests.support import event

    async with rendered_nats(helm, tmp_path, values) as nats:
        store = await EventStore.connect(nats.url, auth=nats.ripple)
        await store.ensure_broker("shop", "default", BrokerSpec())
        await store.publish_events("shop", "default", [event("at-rest", subject=payload.decode())])
        await store.close()
    return nats.store_dir


async def test_functions_reach_their_idempotency_ledger_on_the_rendered_nats_and_nothing_else(
        helm: Helm, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The chart's NATS user for Functions: the runtime's ledger works as that user; a broker's stream, its
    publishing subjects and other buckets are refused."""
    import nats as nats_client
    import nats.errors
    import nats.js.errors

    from ripple.api.models import BrokerSpec
    from ripple.runtime.idempotency import KvLedger
    from ripple.store import EventStore
    from ripple.store.auth import NatsAuth

    async with rendered_nats(helm, tmp_path, SECURED_NATS) as rendered:
        store = await EventStore.connect(rendered.url, auth=rendered.ripple)
        await store.ensure_broker("shop", "default", BrokerSpec())
        await store.js.create_key_value(bucket="ripple-delivery-keys")  # as Ripple: these exist, just not for it
        await store.close()
        monkeypatch.setenv("RIPPLE_NATS_CA", str(rendered.ca))
        monkeypatch.setenv("RIPPLE_NATS_USER", "functions")
        monkeypatch.setenv("RIPPLE_NATS_PASSWORD", rendered.env["NATS_FUNCTIONS_PASSWORD"])
        calls: list[int] = []

        async def handle() -> dict[str, object]:
            calls.append(1)
            return {"type": "payment.charged", "source": "/billing", "data": {"charged": 42}}

        ledger = KvLedger(rendered.url)
        first = await ledger.run("order-7", 60.0, handle)
        again = await ledger.run("order-7", 60.0, handle)
        assert len(calls) == 1 and again == first  # the stored reply, not a second run

        functions = NatsAuth(ca=rendered.ca, user="functions", password=rendered.env["NATS_FUNCTIONS_PASSWORD"])
        nc = await nats_client.connect(rendered.url, allow_reconnect=False, **functions.connect_options())
        try:
            js = nc.jetstream(timeout=2)
            with pytest.raises((nats.errors.Error, nats.js.errors.Error)):
                await js.publish("ripple.shop.default.e.order.placed", b"{}")
            with pytest.raises((nats.errors.Error, nats.js.errors.Error)):
                await js.stream_info("RIPPLE_shop_default")
            with pytest.raises((nats.errors.Error, nats.js.errors.Error)):
                await js.key_value("ripple-delivery-keys")
        finally:
            await nc.close()


def stored_bytes(directory: Path) -> bytes:
    return b"".join(path.read_bytes() for path in directory.rglob("*") if path.is_file())


async def test_the_rendered_nats_encrypts_what_it_stores_and_requires_tls_and_a_password(
        helm: Helm, tmp_path: Path) -> None:
    payload = b"4111-1111-1111-1111-" + secrets.token_hex(4).encode()
    encrypted = await run_rendered_nats(helm, tmp_path / "secured", SECURED_NATS, payload)
    assert payload not in stored_bytes(encrypted)
    # The same event without the cipher is there in the clear: what the check above would see if it failed.
    clear = await run_rendered_nats(helm, tmp_path / "plain", ["nats.cluster.replicas=1"], payload)
    assert payload in stored_bytes(clear)
