"""Sequences and Parallels on the real control plane: the operator resolves them, makes their hops' consumers and
address, and the cluster's ingress and dispatcher run them; deleting one removes its consumers."""

from __future__ import annotations

import os

import aiohttp
import nats.js.errors
import pytest

from ripple._aio import free_port
from ripple.events.http import encode_binary
from ripple.store import subjects
from tests.dispatch.test_sequences import counting_step
from tests.k8s.test_operator import apply, conditions, ingress_port, k8s_nats, operator, store  # noqa: F401
from tests.processes import RippleProcess
from tests.support import event, eventually, subscriber

pytestmark = [
    pytest.mark.k8s,
    pytest.mark.skipif(bool(os.environ.get("KUBECONFIG_E2E")),
                       reason="runs the operator, ingress and dispatcher as local processes of the control plane"),
]


async def test_a_sequence_is_resolved_made_ready_and_run_by_the_cluster(
        crds_installed, operator, k8s_nats, ingress_port, namespace, store):  # noqa: F811
    plane = crds_installed
    async with subscriber(counting_step("paid")) as pay, subscriber(counting_step("shipped")) as ship, \
            subscriber() as out:
        apply(plane, namespace, f"""
        kind: Sequence
        metadata: {{name: fulfil}}
        spec:
          steps:
            - {{name: pay, ref: {{kind: Function, name: pay}}}}
            - {{name: ship, uri: "{ship.url}"}}
        """)
        await eventually(lambda: conditions(plane, namespace, "sequence", "fulfil").get("StepsResolved")
                         == ("False", "NotFound"), timeout=30)
        apply(plane, namespace, f"""
        kind: Broker
        metadata: {{name: default}}
        ---
        kind: Sequence
        metadata: {{name: fulfil}}
        spec:
          steps:
            - {{name: pay, uri: "{pay.url}"}}
            - {{name: ship, uri: "{ship.url}"}}
        ---
        kind: Trigger
        metadata: {{name: placed}}
        spec:
          filter: {{attributes: {{type: order.placed}}}}
          subscriber: {{ref: {{kind: Sequence, name: fulfil}}}}
        ---
        kind: Trigger
        metadata: {{name: shipped}}
        spec:
          filter: {{attributes: {{type: shipped}}}}
          subscriber: {{uri: "{out.url}"}}
        """)
        await eventually(lambda: conditions(plane, namespace, "sequence", "fulfil").get("Ready") == ("True", "Ready"),
                         timeout=60, interval=0.5)
        found = plane.get_json("sequence", "fulfil", "-n", namespace)
        address = f"http://127.0.0.1:{ingress_port}/{namespace}/sequences/fulfil"
        assert found["status"]["address"]["url"] == address
        assert [s["name"] for s in found["status"]["steps"]] == ["pay", "ship"]
        assert conditions(plane, namespace, "sequence", "fulfil")["ConsumersReady"] == ("True", "ConsumersReady")
        plane.kubectl("wait", "--for=condition=Ready", "trigger/placed", "-n", namespace, "--timeout=60s")
        assert plane.get_json("trigger", "placed", "-n", namespace)["status"]["subscriberUri"] == address
        printed = plane.kubectl("get", "sequence", "fulfil", "-n", namespace).stdout
        assert "default" in printed and address in printed and "True" in printed

        env = {"KUBECONFIG": str(plane.kubeconfig)}
        ingress = await RippleProcess("ingress", "--kubernetes", "--nats", k8s_nats.url, "--host", "127.0.0.1",
                                      "--port", str(ingress_port), env=env).start()
        dispatcher = await RippleProcess("dispatcher", "--kubernetes", "--readiness", "pods", "--nats", k8s_nats.url,
                                         "--health-port", str(free_port()), "--no-autoscaler", env=env).start()
        try:
            await ingress.wait_for_line("ingress listening")
            await dispatcher.wait_for_line("dispatcher watching")
            async with aiohttp.ClientSession() as http:
                async def post(url: str, ev) -> int:  # type: ignore[no-untyped-def]
                    headers, body = encode_binary(ev)
                    async with http.post(url, data=body, headers=headers) as answer:
                        return answer.status

                # Straight to the Sequence's address, and through the Trigger that subscribes it.
                async def accepted() -> bool:  # once the ingress's watch has seen the Sequence Ready
                    return await post(address, event("direct", data={"n": 0})) == 202

                await eventually(accepted, timeout=30)
                assert await post(f"http://127.0.0.1:{ingress_port}/{namespace}/default",
                                  event("via-trigger", type="order.placed", data={"n": 0})) == 202
                assert await post(f"http://127.0.0.1:{ingress_port}/{namespace}/sequences/absent",
                                  event("lost")) == 404
            await eventually(lambda: sorted(out.ids()) == ["direct#fulfil.out", "via-trigger#fulfil.out"],
                             timeout=60, interval=0.2)
            assert out.received[0].event.json_data()["n"] == 2
        finally:
            await dispatcher.stop()
            await ingress.stop()

    stream = subjects.stream_name(namespace, "default")
    await store.js.consumer_info(stream, subjects.consumer_name("_seq_fulfil_1"))
    plane.kubectl("delete", "sequence", "fulfil", "-n", namespace)

    async def consumer_gone() -> bool:
        try:
            await store.js.consumer_info(stream, subjects.consumer_name("_seq_fulfil_1"))
        except nats.js.errors.NotFoundError:
            return True
        return False

    await eventually(consumer_gone, timeout=30)


async def test_a_parallel_names_what_it_misses_then_is_ready(crds_installed, operator, namespace):  # noqa: F811
    plane = crds_installed
    apply(plane, namespace, """
    kind: Parallel
    metadata: {name: fan}
    spec:
      branches:
        - {filter: {attributes: {type: a}}, subscriber: {ref: {kind: Function, name: missing}}}
        - {subscriber: {uri: "http://127.0.0.1:9/"}, reply: {ref: {kind: Sequence, name: later}}}
    """)
    await eventually(lambda: conditions(plane, namespace, "parallel", "fan").get("StepsResolved")
                     == ("False", "NotFound"), timeout=30)
    message = next(c["message"] for c in plane.get_json("parallel", "fan", "-n", namespace)["status"]["conditions"]
                   if c["type"] == "StepsResolved")
    assert "spec.branches[0].subscriber: no Function" in message and "spec.branches[1].reply: no Sequence" in message
    apply(plane, namespace, """
    kind: Broker
    metadata: {name: default}
    ---
    kind: Function
    metadata: {name: missing}
    spec: {handler: m:handle, source: {inline: "def handle(e): pass"}}
    ---
    kind: Sequence
    metadata: {name: later}
    spec: {steps: [{uri: "http://127.0.0.1:9/"}]}
    """)
    await eventually(lambda: conditions(plane, namespace, "parallel", "fan").get("Ready") == ("True", "Ready"),
                     timeout=60, interval=0.5)
    assert [b["name"] for b in plane.get_json("parallel", "fan", "-n", namespace)["status"]["branches"]] == ["0", "1"]
