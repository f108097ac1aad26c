"""EventSources on the real control plane: the operator's adapters and conditions, and a Kubernetes source
adapter running on its own ServiceAccount's token, refused what its RBAC does not grant."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.k8s.conftest import _write_kubeconfig
from tests.k8s.test_operator import apply, conditions, ingress_port, k8s_nats, operator  # noqa: F401 - fixtures
from tests.postgres_server import pg_bin_dir, postgres_server
from tests.processes import RippleProcess
from tests.support import eventually

pytestmark = [
    pytest.mark.k8s,
    pytest.mark.skipif(bool(os.environ.get("KUBECONFIG_E2E")),
                       reason="runs the operator and the adapter as local processes of the built-in control plane"),
]

WEBHOOK_SOURCE = """
kind: Broker
metadata: {name: default}
---
kind: EventSource
metadata: {name: hooks}
spec:
  sink: {ref: {kind: Broker, name: default}}
  webhook:
    path: /github
    signature: {scheme: github, secretRef: {name: github, key: secret}}
"""

CONFIGMAP_SOURCE = """
kind: EventSource
metadata: {name: config}
spec:
  sink: {uri: "http://127.0.0.1:1/"}
  kubernetes:
    mode: Resource
    resources: [{apiVersion: v1, kind: ConfigMap, labelSelector: "app=shop"}]
"""


async def test_conditions_go_from_secret_not_found_to_ready(crds_installed, operator, namespace):  # noqa: F811
    plane = crds_installed
    apply(plane, namespace, WEBHOOK_SOURCE)
    await eventually(lambda: conditions(plane, namespace, "eventsource", "hooks").get("Deployed")
                     == ("False", "SecretNotFound"), timeout=30)
    assert conditions(plane, namespace, "eventsource", "hooks")["Ready"] == ("False", "SecretNotFound")
    plane.kubectl("create", "secret", "generic", "github", "-n", namespace, "--from-literal=secret=t0ps3cret")
    await eventually(lambda: conditions(plane, namespace, "eventsource", "hooks").get("Ready") == ("True", "Ready"),
                     timeout=60, interval=0.5)
    found = plane.get_json("eventsource", "hooks", "-n", namespace)
    assert found["status"]["sinkUri"].endswith(f"/{namespace}/default")
    assert found["status"]["address"]["url"] == f"http://hooks-source.{namespace}.svc.cluster.local/github"
    assert found["status"]["sourceKind"] == "webhook" and found["status"]["verification"] == "github"
    assert "t0ps3cret" not in json.dumps(found)

    deployment = plane.get_json("deployment", "hooks-source", "-n", namespace)
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["args"][:2] == ["source", "run"] and pod["serviceAccountName"] == "hooks-source"
    assert pod["automountServiceAccountToken"] is False  # a webhook never talks to the API server
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert set(volumes) == {"secret-0", "sink-token"}  # the webhook's Secret, and its own token for the broker
    assert volumes["secret-0"]["secret"] == {"secretName": "github", "items": [{"key": "secret", "path": "secret"}],
                                             "defaultMode": 0o400}
    (projected,) = volumes["sink-token"]["projected"]["sources"]
    assert projected["serviceAccountToken"]["audience"] == f"ripple/{namespace}/default"
    assert plane.kubectl("get", "service", "hooks-source", "-n", namespace, check=False).returncode == 0
    roles = plane.get_json("roles", "-n", namespace)["items"]
    assert roles == []  # no RBAC for a source that does not read the API

    table = plane.kubectl("get", "eventsources", "-n", namespace).stdout
    assert "webhook" in table and "hooks-source" in table


async def test_a_kubernetes_source_is_granted_exactly_its_kinds(crds_installed, operator, namespace):  # noqa: F811
    plane = crds_installed
    apply(plane, namespace, CONFIGMAP_SOURCE)
    await eventually(lambda: plane.kubectl("get", "role", "config-source", "-n", namespace,
                                           check=False).returncode == 0, timeout=30)
    role = plane.get_json("role", "config-source", "-n", namespace)
    assert role["rules"] == [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch"]}]
    account = f"system:serviceaccount:{namespace}:config-source"

    def can(verb: str, resource: str) -> str:
        return plane.kubectl("auth", "can-i", verb, resource, "-n", namespace, f"--as={account}",
                             check=False).stdout.strip()

    assert can("watch", "configmaps") == "yes"
    assert can("get", "secrets") == "no" and can("update", "configmaps") == "no"
    plane.kubectl("delete", "eventsource", "config", "-n", namespace)
    await eventually(lambda: plane.kubectl("get", "role", "config-source", "-n", namespace,
                                           check=False).returncode != 0, timeout=30)


async def test_configmap_changes_reach_a_function_on_the_adapters_own_token(crds_installed, operator,  # noqa: F811
                                                                           namespace, tmp_path: Path):
    plane = crds_installed
    apply(plane, namespace, CONFIGMAP_SOURCE)
    await eventually(lambda: plane.kubectl("get", "rolebinding", "config-source", "-n", namespace,
                                           check=False).returncode == 0, timeout=30)
    token = plane.kubectl("create", "token", "config-source", "-n", namespace).stdout.strip()
    kubeconfig = tmp_path / "adapter.kubeconfig"
    _write_kubeconfig(kubeconfig, plane.server, plane.ca_file, "config-source", token)

    (tmp_path / "fn").mkdir()
    (tmp_path / "fn" / "watcher.py").write_text(
        "def handle(event):\n"
        "    print('got', event['type'].rsplit('.', 1)[-1], event['subject'], event.data['data'], flush=True)\n"
    )
    from ripple._aio import free_port

    port = free_port()
    function = await RippleProcess("function", "serve", "--handler", "watcher:handle", "--path", str(tmp_path / "fn"),
                                   "--host", "127.0.0.1", "--port", str(port)).start()
    source = plane.get_json("eventsource", "config", "-n", namespace)
    (tmp_path / "source.json").write_text(json.dumps(
        {"apiVersion": source["apiVersion"], "kind": "EventSource", "metadata": {"name": "config",
         "namespace": namespace}, "spec": source["spec"]}))
    env = {"KUBECONFIG": str(kubeconfig)}
    adapter = await RippleProcess("source", "run", "--source", str(tmp_path / "source.json"),
                                  "--sink", f"http://127.0.0.1:{port}/", "--host", "127.0.0.1",
                                  "--port", str(free_port()), env=env).start()
    try:
        await function.wait_for_line("listening")
        await adapter.wait_for_line("source adapter listening")
        path = f"/api/v1/namespaces/{namespace}/configmaps/prices"
        plane.kubectl("create", "configmap", "prices", "-n", namespace, "--from-literal=tier=gold")
        plane.kubectl("label", "configmap", "prices", "-n", namespace, "app=shop")
        await function.wait_for_line(f"got add {path} {{'tier': 'gold'}}")
        plane.kubectl("patch", "configmap", "prices", "-n", namespace, "-p", '{"data": {"tier": "silver"}}')
        await function.wait_for_line(f"got update {path} {{'tier': 'silver'}}")
        plane.kubectl("delete", "configmap", "prices", "-n", namespace)
        await function.wait_for_line(f"got delete {path} {{'tier': 'silver'}}")
        plane.kubectl("create", "configmap", "unlabelled", "-n", namespace, "--from-literal=a=b")
    finally:
        await adapter.stop()

    # The same token, asked to watch what its Role does not grant, is refused by the API server.
    secrets = json.loads((tmp_path / "source.json").read_text())
    secrets["spec"]["kubernetes"]["resources"] = [{"apiVersion": "v1", "kind": "Secret"}]
    (tmp_path / "secrets.json").write_text(json.dumps(secrets))
    refused = await RippleProcess("source", "run", "--source", str(tmp_path / "secrets.json"),
                                  "--sink", f"http://127.0.0.1:{port}/", "--host", "127.0.0.1",
                                  "--port", str(free_port()), env=env).start()
    try:
        await refused.wait_for_line("403")
    finally:
        await refused.stop()
        await function.stop()
    assert "unlabelled" not in function.output()


@pytest.mark.skipif(pg_bin_dir() is None, reason="PostgreSQL is not installed")
async def test_a_postgres_source_reports_its_lag_and_its_slot_goes_with_it(crds_installed, operator,  # noqa: F811
                                                                             namespace, tmp_path: Path):
    plane = crds_installed
    with postgres_server() as pg:
        database = pg.create_database()
        pg.execute(database, "CREATE TABLE orders (id int PRIMARY KEY)")
        pg.execute(database, f"SELECT pg_create_logical_replication_slot('{database}', 'pgoutput')")
        plane.kubectl("create", "secret", "generic", "db", "-n", namespace, f"--from-literal=dsn={pg.dsn(database)}")
        apply(plane, namespace, f"""
        kind: EventSource
        metadata: {{name: orders}}
        spec:
          sink: {{uri: "http://127.0.0.1:1/"}}
          postgres: {{connectionSecretRef: {{name: db, key: dsn}}, tables: [public.orders], slot: {database}}}
        """)
        await eventually(lambda: plane.kubectl("get", "rolebinding", "orders-source", "-n", namespace,
                                               check=False).returncode == 0, timeout=30)
        role = plane.get_json("role", "orders-source", "-n", namespace)
        assert role["rules"] == [{"apiGroups": ["ripple.dev"], "resources": ["eventsources/status"],
                                  "resourceNames": ["orders"], "verbs": ["get", "patch"]}]
        # The adapter, on its own ServiceAccount's token, reports the slot's progress to the EventSource's status.
        token = plane.kubectl("create", "token", "orders-source", "-n", namespace).stdout.strip()
        _write_kubeconfig(tmp_path / "adapter.kubeconfig", plane.server, plane.ca_file, "orders-source", token)
        (tmp_path / "secrets" / "db").mkdir(parents=True)
        (tmp_path / "secrets" / "db" / "dsn").write_text(pg.dsn(database))
        found = plane.get_json("eventsource", "orders", "-n", namespace)
        (tmp_path / "source.json").write_text(json.dumps({"apiVersion": found["apiVersion"], "kind": "EventSource",
                                                          "metadata": {"name": "orders", "namespace": namespace},
                                                          "spec": found["spec"]}))
        adapter = await RippleProcess("source", "run", "--source", str(tmp_path / "source.json"), "--sink",
                                      "http://127.0.0.1:1/", "--secrets-dir", str(tmp_path / "secrets"),
                                      "--host", "127.0.0.1", "--port", "0", "--report-progress",
                                      env={"KUBECONFIG": str(tmp_path / "adapter.kubeconfig")}).start()
        try:
            def progress() -> dict:
                return plane.get_json("eventsource", "orders", "-n", namespace).get("status", {}).get("progress", {})

            try:
                await eventually(lambda: progress().get("slot") == database and progress().get("lagBytes") is not None,
                                 timeout=40, interval=0.5)
            except AssertionError:
                raise AssertionError(f"{progress()}\n{adapter.output()}") from None
        finally:
            await adapter.stop()
        assert _slots(pg, database) == [database]
        plane.kubectl("delete", "eventsource", "orders", "-n", namespace, "--wait=false")
        await eventually(lambda: _slots(pg, database) == [], timeout=30)
        await eventually(lambda: plane.kubectl("get", "eventsource", "orders", "-n", namespace,
                                               check=False).returncode != 0, timeout=30)


def _slots(pg, database: str) -> list[str]:  # type: ignore[no-untyped-def]
    import psycopg2

    with psycopg2.connect(pg.dsn(database)) as conn, conn.cursor() as cur:
        cur.execute("SELECT slot_name FROM pg_replication_slots")
        found = [row[0] for row in cur.fetchall()]
    conn.close()
    return found
