"""The operator against a real API server: conditions, children, consumers, admission, restarts, end to end."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import textwrap
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from ripple._aio import free_port
from ripple.controller.leader import OPERATOR_LEASE
from ripple.events.extensions import stamp_arrival
from ripple.kube.lease import LEASE_TTL
from ripple.local.nats_server import NatsServer
from ripple.store import EventStore, subjects
from tests.k8s.pod_runner import PodRunner
from tests.processes import RippleProcess
from tests.support import event, eventually

pytestmark = [
    pytest.mark.k8s,
    pytest.mark.skipif(bool(os.environ.get("KUBECONFIG_E2E")),
                       reason="runs the operator and a kubelet stand-in as local processes, reachable only from the "
                              "built-in control plane; on a real cluster test_installed_release.py covers the flow"),
]


@pytest.fixture(scope="module")
def k8s_nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path_factory.mktemp("k8s-nats"))
    server.start_process()
    asyncio.run(server.wait_ready())
    yield server
    asyncio.run(server.stop())


@pytest.fixture(scope="module")
def ingress_port() -> int:
    return free_port()


@pytest.fixture
async def operator(crds_installed, k8s_nats, ingress_port) -> AsyncIterator[RippleProcess]:
    process = await start_operator(crds_installed, k8s_nats, ingress_port)
    yield process
    await stop_operator(process, crds_installed)


async def stop_operator(process: RippleProcess, plane) -> None:
    """Stop it and remove its webhook configuration, which would otherwise point at a closed port."""
    await process.interrupt()
    await process.stop()
    for kind in ("validatingwebhookconfiguration", "mutatingwebhookconfiguration"):
        plane.kubectl("delete", kind, "validate.ripple.dev", "--ignore-not-found", check=False)


async def start_operator(plane, nats: NatsServer, ingress_port: int, *extra: str,
                         metrics_port: int | None = None) -> RippleProcess:
    process = await RippleProcess(
        "operator", "--nats", nats.url, "--ingress-url", f"http://127.0.0.1:{ingress_port}",
        "--webhook-host", "127.0.0.1", "--webhook-port", str(free_port()),
        "--metrics-port", str(metrics_port or free_port()), *extra,
        env={"KUBECONFIG": str(plane.kubeconfig)},
    ).start()  # fmt: skip
    await eventually(lambda: webhook_ready(plane), timeout=60, interval=0.5)
    return process


def webhook_ready(plane) -> bool:
    found = plane.kubectl("get", "validatingwebhookconfiguration", "validate.ripple.dev", check=False)
    return found.returncode == 0


class Metrics:
    """One scrape of an operator's ``/metrics``, as (name, labels) -> value."""

    def __init__(self, text: str) -> None:
        self.samples = {(sample.name, frozenset(sample.labels.items())): sample.value
                        for family in text_string_to_metric_families(text) for sample in family.samples}

    def get(self, name: str, **labels: str) -> float | None:
        return self.samples.get((name, frozenset(labels.items())))

    def __getitem__(self, name: str) -> float | None:
        return self.get(name)


async def scrape(port: int) -> Metrics:
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/metrics") as answer:
        assert answer.status == 200 and answer.content_type == "text/plain"
        return Metrics(await answer.text())


@pytest.fixture
async def store(k8s_nats) -> AsyncIterator[EventStore]:
    connected = await EventStore.connect(k8s_nats.url)
    yield connected
    await connected.close()


def apply(plane, namespace: str, text: str, check: bool = True):
    docs = [d for d in yaml.safe_load_all(textwrap.dedent(text)) if d]
    for doc in docs:
        doc.setdefault("apiVersion", "ripple.dev/v1alpha1")
        doc.setdefault("metadata", {})["namespace"] = namespace
    return plane.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(docs), check=check)


def conditions(plane, namespace: str, kind: str, name: str) -> dict[str, tuple[str, str]]:
    found = plane.kubectl("get", kind, name, "-n", namespace, "-o", "json", check=False)
    if found.returncode != 0:
        return {}
    status = json.loads(found.stdout).get("status") or {}
    return {c["type"]: (c["status"], c["reason"]) for c in status.get("conditions") or []}


def ready_reason(plane, namespace: str, kind: str, name: str) -> tuple[str, str] | None:
    return conditions(plane, namespace, kind, name).get("Ready")


INLINE_FUNCTION = """
kind: Function
metadata: {{name: {name}}}
spec:
  handler: handler:handle
  scale: {{idleTimeout: PT2S}}
  env: [{{name: OUT, value: "{out}"}}]
  source:
    inline: |
      import os
      def handle(event):
          with open(os.environ["OUT"], "a") as out:
              out.write(event["id"] + "\\n")
          {reply}
"""


async def test_trigger_conditions_follow_what_exists(crds_installed, operator, namespace):
    plane = crds_installed
    apply(plane, namespace, """
        kind: Trigger
        metadata: {name: t}
        spec:
          broker: default
          subscriber: {ref: {kind: Function, name: fn}}
    """)
    await eventually(lambda: ready_reason(plane, namespace, "trigger", "t") == ("False", "BrokerNotFound"))
    apply(plane, namespace, "kind: Broker\nmetadata: {name: default}\n")
    await eventually(lambda: ready_reason(plane, namespace, "trigger", "t") == ("False", "FunctionNotFound"))
    apply(plane, namespace, INLINE_FUNCTION.format(name="fn", out="/dev/null", reply=""))
    await eventually(lambda: ready_reason(plane, namespace, "trigger", "t") == ("True", "Ready"), timeout=30)
    status = plane.get_json("trigger", "t", "-n", namespace)["status"]
    assert status["subscriberUri"] == f"http://fn.{namespace}.svc.cluster.local"
    assert set(conditions(plane, namespace, "trigger", "t")) >= {
        "BrokerReady", "SubscriberResolved", "DeadLetterSinkResolved", "Ready"}
    broker = plane.get_json("broker", "default", "-n", namespace)["status"]
    assert broker["address"]["url"].endswith(f"/{namespace}/default")
    plane.kubectl("wait", "--for=condition=Ready", "trigger/t", "-n", namespace, "--timeout=30s")


BAD_FILTER = """
kind: Trigger
metadata: {name: bad}
spec:
  subscriber: {uri: "http://example.invalid/"}
  filters: [{all: [{cesql: "source LIKE"}]}]
"""
"""A Trigger whose CESQL filter does not parse: the admission webhook refuses it."""


async def test_a_filter_that_does_not_compile_is_refused_at_admission(crds_installed, operator, namespace):
    refused = apply(crds_installed, namespace, BAD_FILTER, check=False)
    assert refused.returncode != 0
    assert "spec.filters[0].all[0].cesql" in refused.stderr and "parse error" in refused.stderr


async def test_consumer_follows_the_trigger_and_goes_with_it(crds_installed, operator, namespace, store):
    plane = crds_installed
    apply(plane, namespace, """
        kind: Broker
        metadata: {name: default}
        ---
        kind: Trigger
        metadata: {name: t}
        spec:
          filter: {attributes: {type: order.placed}}
          subscriber: {uri: "http://127.0.0.1:9/"}
    """)
    await eventually(lambda: ready_reason(plane, namespace, "trigger", "t") == ("True", "Ready"), timeout=30)
    stream, consumer = subjects.stream_name(namespace, "default"), subjects.consumer_name("t")

    async def filter_subjects() -> list[str] | None:
        try:
            return list((await store.js.consumer_info(stream, consumer)).config.filter_subjects or [])
        except Exception:
            return None

    assert await filter_subjects() == [f"ripple.{namespace}.default.e.order.placed", f"ripple.{namespace}.default.r.t"]
    apply(plane, namespace, """
        kind: Trigger
        metadata: {name: t}
        spec:
          filter: {attributes: {type: order.shipped}}
          subscriber: {uri: "http://127.0.0.1:9/"}
    """)
    await eventually(lambda: _has(filter_subjects(), f"ripple.{namespace}.default.e.order.shipped"), timeout=30)
    plane.kubectl("delete", "trigger", "t", "-n", namespace, "--timeout=30s")
    await eventually(lambda: _is_none(filter_subjects()), timeout=30)


async def _has(pending, subject: str) -> bool:
    return subject in (await pending or [])


async def _is_none(pending) -> bool:
    return await pending is None


async def test_function_children_are_owned_and_garbage_collected(crds_installed, operator, namespace):
    plane = crds_installed
    apply(plane, namespace, INLINE_FUNCTION.format(name="fn", out="/dev/null", reply=""))
    await eventually(lambda: ready_reason(plane, namespace, "function", "fn") == ("True", "Ready"), timeout=30)
    for kind in ("deployment", "service", "configmap"):
        name = "fn-code" if kind == "configmap" else "fn"
        owners = plane.get_json(kind, name, "-n", namespace)["metadata"]["ownerReferences"]
        assert owners[0]["kind"] == "Function" and owners[0]["name"] == "fn" and owners[0]["controller"] is True
    deployment = plane.get_json("deployment", "fn", "-n", namespace)
    assert deployment["spec"]["replicas"] == 0  # minScale 0: nothing runs until an event comes
    plane.kubectl("delete", "function", "fn", "-n", namespace)
    await eventually(lambda: plane.kubectl("get", "deployment", "fn", "-n", namespace, check=False).returncode != 0,
                     timeout=60, interval=0.5)


async def test_restarting_the_operator_changes_nothing(crds_installed, k8s_nats, ingress_port, namespace):
    plane = crds_installed
    first = await start_operator(plane, k8s_nats, ingress_port)
    try:
        apply(plane, namespace, "kind: Broker\nmetadata: {name: default}\n")
        apply(plane, namespace, INLINE_FUNCTION.format(name="fn", out="/dev/null", reply=""))
        apply(plane, namespace, """
            kind: Trigger
            metadata: {name: t}
            spec: {subscriber: {ref: {kind: Function, name: fn}}}
        """)
        await eventually(lambda: ready_reason(plane, namespace, "trigger", "t") == ("True", "Ready"), timeout=30)
        await asyncio.sleep(2)
    finally:
        await first.interrupt()
        await first.stop()
    before = versions(plane, namespace)
    second = await start_operator(plane, k8s_nats, ingress_port)
    try:
        await asyncio.sleep(6)
        assert versions(plane, namespace) == before
    finally:
        await stop_operator(second, plane)


async def send_orders(url: str, numbers) -> None:
    for number in numbers:
        send = await RippleProcess("send", "--to", url, "--type", "order.placed", "--source", "/shop",
                                   "--id", f"order-{number}", "--data", "{}").start()
        await send.process.wait()  # type: ignore[union-attr]
        assert "202" in send.output()


def versions(plane, namespace: str) -> dict[str, str]:
    found = {}
    for kind in ("brokers", "functions", "triggers", "deployments", "services", "configmaps"):
        for item in plane.get_json(kind, "-n", namespace)["items"]:
            found[f"{kind}/{item['metadata']['name']}"] = item["metadata"]["resourceVersion"]
    return found


async def test_events_flow_through_functions_that_scale_from_zero(
    crds_installed, operator, k8s_nats, ingress_port, namespace, tmp_path: Path
):
    plane = crds_installed
    out = tmp_path / "received.txt"
    reply = 'return {"type": "order.validated", "source": "/validate", "data": {"ok": True}}'
    apply(plane, namespace, "kind: Broker\nmetadata: {name: default}\n")
    apply(plane, namespace, INLINE_FUNCTION.format(name="validate", out=out, reply=reply))
    apply(plane, namespace, INLINE_FUNCTION.format(name="ship", out=out, reply=""))
    apply(plane, namespace, """
        kind: Trigger
        metadata: {name: on-placed}
        spec:
          filter: {attributes: {type: order.placed}}
          subscriber: {ref: {kind: Function, name: validate}}
        ---
        kind: Trigger
        metadata: {name: on-validated}
        spec:
          filter: {attributes: {type: order.validated}}
          subscriber: {ref: {kind: Function, name: ship}}
    """)
    for name in ("on-placed", "on-validated"):
        plane.kubectl("wait", "--for=condition=Ready", f"trigger/{name}", "-n", namespace, "--timeout=60s")
    env = {"KUBECONFIG": str(plane.kubeconfig)}
    ingress = await RippleProcess("ingress", "--kubernetes", "--nats", k8s_nats.url, "--host", "127.0.0.1",
                                  "--port", str(ingress_port), env=env).start()
    health_port = free_port()
    dispatcher = await RippleProcess("dispatcher", "--kubernetes", "--readiness", "pods", "--nats", k8s_nats.url,
                                     "--health-port", str(health_port), env=env).start()
    runner = PodRunner(plane.kubeconfig)
    await runner.start()
    try:
        await ingress.wait_for_line("ingress listening")
        await dispatcher.wait_for_line("dispatcher watching")
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{health_port}/-/health") as health:
            assert health.status == 200 and (await health.json()) == {"nats": True, "running": True}
        url = f"http://127.0.0.1:{ingress_port}/{namespace}/default"
        send = await RippleProcess("send", "--to", url, "--type", "order.placed", "--source", "/shop",
                                   "--id", "order-1", "--data", '{"total": 3}').start()
        await eventually(lambda: "202" in send.output(), timeout=30, interval=0.2)
        lines = await eventually(lambda: out.exists() and len(out.read_text().split()) >= 2 and out.read_text(),
                                 timeout=90, interval=0.2)
        assert lines.split()[0] == "order-1"  # validate got the order, ship got validate's reply
        assert {name.split("/")[1].rsplit("-", 2)[0] for name in runner.started} == {"validate", "ship"}
        assert plane.get_json("deployment", "ship", "-n", namespace)["spec"]["replicas"] == 1

        # Reconfigure a trigger while events flow: its consumer is updated in place and nothing is lost.
        sending = asyncio.create_task(send_orders(url, range(2, 12)))
        apply(plane, namespace, """
            kind: Trigger
            metadata: {name: on-validated}
            spec:
              filter: {attributes: {type: order.validated}}
              subscriber: {ref: {kind: Function, name: ship}}
              delivery: {retry: 5, concurrency: 4}
        """)
        await sending
        received = await eventually(lambda: len(out.read_text().split()) >= 22 and out.read_text().split(),
                                    timeout=90, interval=0.2)
        assert {r for r in received if r.startswith("order-")} == {f"order-{i}" for i in range(1, 12)}
        assert len({r for r in received if not r.startswith("order-")}) == 11  # every order's reply reached ship
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{health_port}/metrics") as metrics:
            text = await metrics.text()
        assert f'ripple_deliveries_total{{outcome="ack",trigger="{namespace}/on-placed"}}' in text
        # No events for idleTimeout: both scale back to zero replicas for real.
        await eventually(lambda: all(plane.get_json("deployment", n, "-n", namespace)["spec"]["replicas"] == 0
                                     for n in ("validate", "ship")), timeout=60, interval=0.5)
    finally:
        await runner.stop()
        await dispatcher.stop()
        await ingress.stop()


async def test_deleting_a_broker_removes_its_streams(crds_installed, operator, namespace, store):
    plane = crds_installed
    apply(plane, namespace, "kind: Broker\nmetadata: {name: default}\n")
    await eventually(lambda: ready_reason(plane, namespace, "broker", "default") == ("True", "Ready"), timeout=30)
    stream = plane.get_json("broker", "default", "-n", namespace)["status"]["stream"]
    assert stream["replicas"] == 1 and stream["currentReplicas"] == 1 and stream["leader"]
    names = {subjects.stream_name(namespace, "default"), subjects.dead_letter_stream_name(namespace, "default")}

    async def streams() -> set[str]:
        return {info.config.name for info in await store.js.streams_info()} & names

    assert await streams() == names
    plane.kubectl("delete", "broker", "default", "-n", namespace, "--timeout=30s")
    await eventually(lambda: _empty(streams()), timeout=30)


async def _empty(pending) -> bool:
    return not await pending


async def test_the_webhook_can_be_registered_by_service_reference(crds_installed, k8s_nats, ingress_port):
    """In a cluster the API server reaches the operator through its Service, whatever its DNS can resolve."""
    plane = crds_installed
    process = await start_operator(plane, k8s_nats, ingress_port, "--webhook-service", "ripple-system/ripple-webhook")
    try:
        webhooks = plane.get_json("validatingwebhookconfiguration", "validate.ripple.dev")["webhooks"]
        client = webhooks[0]["clientConfig"]
        assert "url" not in client and client["caBundle"]
        service = client["service"]
        assert (service["namespace"], service["name"]) == ("ripple-system", "ripple-webhook")
        assert service["path"].startswith("/") and isinstance(service["port"], int)
    finally:
        await stop_operator(process, plane)


async def test_the_webhook_goes_into_the_configuration_it_is_told(crds_installed, k8s_nats, ingress_port, namespace):
    """A second release's operator registers into a configuration of its own, and admission works through it."""
    plane, name = crds_installed, "validate.second.ripple.dev"
    process = await RippleProcess(
        "operator", "--nats", k8s_nats.url, "--ingress-url", f"http://127.0.0.1:{ingress_port}",
        "--webhook-host", "127.0.0.1", "--webhook-port", str(free_port()), "--webhook-configuration", name,
        "--metrics-port", str(free_port()), env={"KUBECONFIG": str(plane.kubeconfig)},
    ).start()  # fmt: skip
    try:
        def registered() -> bool:
            found = plane.kubectl("get", "validatingwebhookconfiguration", name, "-o", "json", check=False)
            return found.returncode == 0 and bool(json.loads(found.stdout).get("webhooks"))

        await eventually(registered, timeout=60, interval=0.5)
        assert not webhook_ready(plane)  # nothing written under the default name
        refused = apply(plane, namespace, BAD_FILTER, check=False)
        assert refused.returncode != 0 and "spec.filters[0].all[0].cesql" in refused.stderr
    finally:
        await process.interrupt()
        await process.stop()
        for kind in ("validatingwebhookconfiguration", "mutatingwebhookconfiguration"):
            plane.kubectl("delete", kind, name, "--ignore-not-found", check=False)


async def test_a_separate_autoscaler_follows_the_backlog(crds_installed, operator, k8s_nats, namespace, store):
    """`ripple autoscaler` alone: events waiting for a function scale its Deployment up; none, back to zero."""
    plane = crds_installed
    apply(plane, namespace, "kind: Broker\nmetadata: {name: default}\n")
    apply(plane, namespace, INLINE_FUNCTION.format(name="fn", out="/dev/null", reply=""))
    apply(plane, namespace, """
        kind: Trigger
        metadata: {name: t}
        spec:
          filter: {attributes: {type: work}}
          subscriber: {ref: {kind: Function, name: fn}}
    """)
    plane.kubectl("wait", "--for=condition=Ready", "trigger/t", "-n", namespace, "--timeout=60s")
    autoscaler = await RippleProcess("autoscaler", "--kubernetes", "--nats", k8s_nats.url,
                                     env={"KUBECONFIG": str(plane.kubeconfig)}).start()
    try:
        await autoscaler.wait_for_line("autoscaler watching")
        for i in range(15):
            await store.publish_event(namespace, "default", stamp_arrival(event(f"w{i}", type="work")))

        def replicas() -> int:
            return plane.get_json("deployment", "fn", "-n", namespace)["spec"]["replicas"]

        await eventually(lambda: replicas() == 2, timeout=30, interval=0.5)  # 15 waiting / targetConcurrency 10
        await store.js.purge_stream(subjects.stream_name(namespace, "default"))
        await eventually(lambda: replicas() == 0, timeout=30, interval=0.5)
    finally:
        await autoscaler.stop()


async def start_elected(plane, nats: NatsServer, ingress_port: int, namespace: str, name: str,
                        metrics_port: int | None = None) -> RippleProcess:
    """An operator replica with ``--leader-election``, its Lease in ``namespace`` under the pod name ``name``."""
    return await RippleProcess(
        "operator", "--nats", nats.url, "--ingress-url", f"http://127.0.0.1:{ingress_port}", "--leader-election",
        "--namespace", namespace, "--liveness", f"http://127.0.0.1:{free_port()}/healthz",
        "--metrics-port", str(metrics_port or free_port()),
        env={"KUBECONFIG": str(plane.kubeconfig), "POD_NAME": name, "POD_NAMESPACE": namespace},
    ).start()  # fmt: skip


def lease_holder(plane, namespace: str) -> str | None:
    found = plane.kubectl("get", "lease", OPERATOR_LEASE, "-n", namespace, "-o", "json", check=False)
    return json.loads(found.stdout)["spec"].get("holderIdentity") if found.returncode == 0 else None


async def test_two_operators_reconcile_one_at_a_time_and_the_standby_takes_over(crds_installed, k8s_nats,
                                                                             ingress_port, namespace):
    """Two replicas: one holds the Lease and reconciles, the other waits; kill -9 the leader and the standby
    takes the lease once it expires, then reconciles what comes next."""
    plane = crds_installed
    ports = {"operator-a": free_port(), "operator-b": free_port()}
    first = await start_elected(plane, k8s_nats, ingress_port, namespace, "operator-a", ports["operator-a"])
    await first.wait_for_line("operator: leading", timeout=30)
    second = await start_elected(plane, k8s_nats, ingress_port, namespace, "operator-b", ports["operator-b"])
    try:
        await second.wait_for_line("operator: standby", timeout=30)
        # Which replica leads shows in the metrics, which the standby serves too.
        assert (await scrape(ports["operator-a"]))["ripple_operator_leader"] == 1
        assert (await scrape(ports["operator-b"]))["ripple_operator_leader"] == 0
        apply(plane, namespace, "kind: Broker\nmetadata: {name: before}\n")
        await eventually(lambda: ready_reason(plane, namespace, "broker", "before") == ("True", "Ready"), timeout=30)
        await asyncio.sleep(3)  # a standby that reconciled would have said so by now
        assert lease_holder(plane, namespace) == "operator-a"
        assert "operator: leading" not in second.output() and "before" not in second.output()
        await first.kill()
        killed = asyncio.get_running_loop().time()
        await second.wait_for_line("operator: leading", timeout=LEASE_TTL + 15)
        took_over = asyncio.get_running_loop().time() - killed
        assert lease_holder(plane, namespace) == "operator-b"
        assert (await scrape(ports["operator-b"]))["ripple_operator_leader"] == 1
        apply(plane, namespace, "kind: Broker\nmetadata: {name: after}\n")
        await eventually(lambda: ready_reason(plane, namespace, "broker", "after") == ("True", "Ready"), timeout=30)
        print(json.dumps({"takeover_s": round(took_over, 1), "lease_ttl_s": LEASE_TTL}))
        assert took_over < LEASE_TTL + 10
    finally:
        await first.stop()
        await second.interrupt()
        await second.stop()
        for name in ("before", "after"):
            plane.kubectl("delete", "broker", name, "-n", namespace, "--ignore-not-found", "--wait=false", check=False)


async def test_an_operator_that_loses_its_lease_stops_reconciling_and_exits(crds_installed, k8s_nats, ingress_port,
                                                                         namespace):
    """Someone else holds the lease now (an operator that was partitioned, then came back): the former leader
    sees it at its next renewal, stops Kopf and exits non-zero, so its pod comes back as a standby."""
    plane = crds_installed
    leader = await start_elected(plane, k8s_nats, ingress_port, namespace, "operator-a")
    try:
        await leader.wait_for_line("operator: leading", timeout=30)
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        plane.kubectl("patch", "lease", OPERATOR_LEASE, "-n", namespace, "--type=merge", "-p",
                      json.dumps({"spec": {"holderIdentity": "operator-z", "renewTime": now,
                                           "leaseDurationSeconds": 60}}))
        assert leader.process is not None
        async with asyncio.timeout(LEASE_TTL + 20):
            code = await leader.process.wait()
        assert code == 1, leader.output()
        await leader.wait_for_line("lost the lease")
    finally:
        await leader.stop()


async def test_the_operator_serves_metrics_of_its_reconciles_objects_and_admission(crds_installed, k8s_nats,
                                                                                ingress_port, namespace):
    """Scraped from the operator's --metrics-port while it works (watching this test's namespace only, so the
    tallies are this test's objects): handler runs by kind and outcome and their durations, the objects by Ready,
    the webhook's allowed and denied reviews, and that this replica leads."""
    plane, port = crds_installed, free_port()
    process = await start_operator(plane, k8s_nats, ingress_port, "--namespace", namespace, metrics_port=port)

    async def objects(kind: str, ready: str) -> float | None:
        return (await scrape(port)).get("ripple_operator_objects", kind=kind, ready=ready)

    try:
        first = await scrape(port)
        assert first["ripple_operator_leader"] == 1  # no --leader-election: the only one, it leads
        assert first.get("ripple_operator_objects", kind="Broker", ready="True") == 0  # zeros, not missing
        apply(plane, namespace, """
            kind: Trigger
            metadata: {name: t}
            spec: {subscriber: {uri: "http://127.0.0.1:9/"}}
        """)
        await eventually(lambda: _equals(objects("Trigger", "False"), 1), timeout=30)  # no Broker yet
        apply(plane, namespace, "kind: Broker\nmetadata: {name: default}\n")
        apply(plane, namespace, INLINE_FUNCTION.format(name="fn", out="/dev/null", reply=""))
        await eventually(lambda: _equals(objects("Broker", "True"), 1), timeout=30)
        await eventually(lambda: _equals(objects("Trigger", "True"), 1), timeout=30)  # its recheck found it
        await eventually(lambda: _equals(objects("Function", "True"), 1), timeout=30)
        refused = apply(plane, namespace, BAD_FILTER, check=False)
        assert refused.returncode != 0 and "spec.filters[0].all[0].cesql" in refused.stderr

        metrics = await scrape(port)
        assert metrics.get("ripple_operator_objects", kind="Trigger", ready="False") == 0
        for kind in ("Broker", "Function", "Trigger"):
            assert (metrics.get("ripple_operator_reconciles_total", kind=kind, outcome="success") or 0) >= 1, kind
            assert (metrics.get("ripple_operator_reconcile_seconds_count", kind=kind) or 0) >= 1, kind
        assert metrics.get("ripple_operator_reconciles_total", kind="Broker", outcome="error") is None
        assert metrics.get("ripple_operator_admission_reviews_total", kind="Trigger", result="denied") == 1
        assert (metrics.get("ripple_operator_admission_reviews_total", kind="Trigger", result="allowed") or 0) >= 1

        plane.kubectl("delete", "broker", "default", "-n", namespace, "--timeout=30s")
        await eventually(lambda: _equals(objects("Broker", "True"), 0), timeout=30)
        deleted = await scrape(port)
        assert (deleted.get("ripple_operator_reconciles_total", kind="Broker", outcome="success") or 0) > (
            metrics.get("ripple_operator_reconciles_total", kind="Broker", outcome="success") or 0)  # the delete
    finally:
        await stop_operator(process, plane)


async def _equals(pending, value: float) -> bool:
    return await pending == value


DISPATCHER_FLAGS = ("--function-network-policy", "--dispatcher-namespace", "ripple-system",
                    "--dispatcher-label", "app.kubernetes.io/component=dispatcher",
                    "--dispatcher-label", "app.kubernetes.io/instance=ripple")


def exists(plane, kind: str, name: str, namespace: str) -> bool:
    return plane.kubectl("get", kind, name, "-n", namespace, check=False).returncode == 0


async def test_each_function_gets_a_network_policy_that_goes_when_switched_off(crds_installed, k8s_nats,
                                                                            ingress_port, namespace):
    """With --function-network-policy a Function's NetworkPolicy (accepted by the API server) selects its
    Deployment's pods and admits the dispatcher named by namespace and labels; it belongs to the Function. An
    operator started without the option removes it, but not a NetworkPolicy of the same name it does not own."""
    plane = crds_installed
    process = await start_operator(plane, k8s_nats, ingress_port, "--namespace", namespace, *DISPATCHER_FLAGS)
    try:
        apply(plane, namespace, INLINE_FUNCTION.format(name="fn", out="/dev/null", reply=""))
        await eventually(lambda: exists(plane, "networkpolicy", "fn", namespace), timeout=30, interval=0.3)
        await eventually(lambda: ready_reason(plane, namespace, "function", "fn") == ("True", "Ready"), timeout=30)
        policy = plane.get_json("networkpolicy", "fn", "-n", namespace)
        (owner,) = policy["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["name"], owner["controller"]) == ("Function", "fn", True)
        pods = plane.get_json("deployment", "fn", "-n", namespace)["spec"]["template"]["metadata"]["labels"]
        assert policy["spec"]["podSelector"]["matchLabels"].items() <= pods.items()
        dispatcher = policy["spec"]["ingress"][0]["from"][0]
        assert dispatcher == {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ripple-system"}},
            "podSelector": {"matchLabels": {"app.kubernetes.io/component": "dispatcher",
                                            "app.kubernetes.io/instance": "ripple"}}}
        # Someone's own policy, named as the Function "mine" that the next operator will reconcile.
        plane.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps({
            "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "mine"},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}}))
        await asyncio.sleep(1)
    finally:
        await stop_operator(process, plane)
    apply(plane, namespace, INLINE_FUNCTION.format(name="mine", out="/dev/null", reply=""))
    process = await start_operator(plane, k8s_nats, ingress_port, "--namespace", namespace)
    try:
        await eventually(lambda: not exists(plane, "networkpolicy", "fn", namespace), timeout=30, interval=0.3)
        await eventually(lambda: ready_reason(plane, namespace, "function", "mine") == ("True", "Ready"), timeout=30)
        assert exists(plane, "networkpolicy", "mine", namespace)
        assert "ownerReferences" not in plane.get_json("networkpolicy", "mine", "-n", namespace)["metadata"]
    finally:
        await stop_operator(process, plane)


def issue(directory: Path, host: str) -> tuple[Path, Path, Path]:
    """What cert-manager's Secret holds, as files: a CA (ca.crt) and a serving certificate it signed for
    ``host`` (tls.crt, tls.key)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-issuer")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    leaf = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = directory / "ca.crt", directory / "tls.crt", directory / "tls.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


async def test_a_certificate_signed_by_a_ca_registers_the_ca(crds_installed, k8s_nats, ingress_port, namespace,
                                                              tmp_path: Path):
    """cert-manager's layout (--webhook-ca): the webhooks' caBundle is the CA, not the serving certificate, and
    the API server, trusting that CA alone, reaches the webhook: a bad filter is refused by it."""
    plane = crds_installed
    ca, cert, key = issue(tmp_path, "127.0.0.1")
    process = await start_operator(plane, k8s_nats, ingress_port, "--webhook-cert", str(cert), "--webhook-key",
                                   str(key), "--webhook-ca", str(ca))
    try:
        registered = await eventually(
            lambda: plane.get_json("validatingwebhookconfiguration", "validate.ripple.dev").get("webhooks"),
            timeout=60, interval=0.3)
        assert base64.b64decode(registered[0]["clientConfig"]["caBundle"]) == ca.read_bytes()
        refused = apply(plane, namespace, BAD_FILTER, check=False)
        assert refused.returncode != 0 and "spec.filters[0].all[0].cesql" in refused.stderr, refused.stderr
    finally:
        await stop_operator(process, plane)


async def test_a_trigger_over_the_fan_out_cap_is_not_ready_until_an_older_one_goes(crds_installed, k8s_nats,
                                                                                     ingress_port, namespace):
    """With --max-fanout 2, a third trigger every event matches waits, not Ready (FanoutCapExceeded), while the two
    older ones run, and so does one pinned to a type (its events reach the two older ones too); once an older one
    goes, the oldest waiting one becomes Ready (the timer that re-checks triggers that are not Ready)."""
    process = await start_operator(crds_installed, k8s_nats, ingress_port, "--max-fanout", "2")
    try:
        apply(crds_installed, namespace, "kind: Broker\nmetadata: {name: default}\n")
        for name in ("a-first", "b-second"):
            apply(crds_installed, namespace, f"kind: Trigger\nmetadata: {{name: {name}}}\n"
                                             "spec: {subscriber: {uri: 'http://sub.example/'}}\n")
        for name in ("a-first", "b-second"):
            await eventually(lambda n=name: ready_reason(crds_installed, namespace, "trigger", n) == ("True", "Ready"),
                             timeout=30)
        apply(crds_installed, namespace, """
            kind: Trigger
            metadata: {name: c-third}
            spec: {subscriber: {uri: 'http://sub.example/'}}
            ---
            kind: Trigger
            metadata: {name: d-pinned}
            spec: {subscriber: {uri: 'http://sub.example/'}, filter: {attributes: {type: audit.only}}}
        """)
        await eventually(lambda: ready_reason(crds_installed, namespace, "trigger", "c-third")
                         == ("False", "FanoutCapExceeded"), timeout=30)
        found = crds_installed.get_json("trigger", "c-third", "-n", namespace)["status"]["conditions"]
        message = next(c["message"] for c in found if c["type"] == "FanoutWithinCap")
        assert "an event would reach 3 triggers" in message and "fan-out cap of 2" in message
        # An audit.only event reaches the two older triggers and this one: 3 as well, so it waits too.
        await eventually(lambda: ready_reason(crds_installed, namespace, "trigger", "d-pinned")
                         == ("False", "FanoutCapExceeded"), timeout=30)
        assert ready_reason(crds_installed, namespace, "trigger", "a-first") == ("True", "Ready")
        crds_installed.kubectl("delete", "trigger", "a-first", "-n", namespace)
        await eventually(lambda: ready_reason(crds_installed, namespace, "trigger", "c-third") == ("True", "Ready"),
                         timeout=30)
        assert ready_reason(crds_installed, namespace, "trigger", "d-pinned") == ("False", "FanoutCapExceeded")
    finally:
        await stop_operator(process, crds_installed)
