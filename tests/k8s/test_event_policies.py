"""EventPolicies in a cluster, on the real control plane: the operator reads a policy's token Secret into its
status (digests only); ``ripple ingress --kubernetes`` checks real ServiceAccount tokens with TokenReview for the
broker's audience (``ripple/<namespace>/<broker>``), static tokens by digest, and refuses the rest."""

from __future__ import annotations

import json

import aiohttp
import pytest

from ripple._aio import free_port
from tests.k8s.test_operator import apply, conditions, ingress_port, k8s_nats, operator  # noqa: F401 - fixtures
from tests.processes import RippleProcess
from tests.support import eventually

pytestmark = pytest.mark.k8s

PARTNER = "partner-7f3a9c2e1b8d4f60"
BINARY = {"ce-specversion": "1.0", "ce-id": "1", "ce-source": "/shop", "ce-type": "order.placed"}


def token(plane, namespace: str, account: str, audience: str) -> str:
    return plane.kubectl("create", "token", account, "-n", namespace, "--audience", audience).stdout.strip()


async def test_only_the_senders_a_policy_names_reach_its_broker(crds_installed, operator, k8s_nats,  # noqa: F811
                                                                namespace):
    plane = crds_installed
    other = f"{namespace}-x"
    plane.kubectl("create", "namespace", other)
    try:
        for ns, account in ((namespace, "checkout"), (namespace, "marketing"), (other, "checkout")):
            plane.kubectl("create", "serviceaccount", account, "-n", ns)
        plane.kubectl("create", "secret", "generic", "partner", "-n", namespace, f"--from-literal=token={PARTNER}")
        apply(plane, namespace, f"""
            kind: Broker
            metadata: {{name: default}}
            ---
            kind: Broker
            metadata: {{name: open}}
            ---
            kind: EventPolicy
            metadata: {{name: senders}}
            spec:
              to: [{{broker: default}}]
              from:
                - serviceAccount: {{namespace: {namespace}, name: checkout}}
                - token: {{secretRef: {{name: partner, key: token}}}}
            """)
        try:
            await eventually(lambda: conditions(plane, namespace, "eventpolicy", "senders").get("Ready") ==
                             ("True", "Ready"), timeout=60)
        except AssertionError:
            print(operator.output()[-6000:])
            raise
        status = json.loads(plane.kubectl("get", "eventpolicy", "senders", "-n", namespace, "-o", "json").stdout)
        assert [t["index"] for t in status["status"]["tokens"]] == [1] and PARTNER not in json.dumps(status)
        await eventually(lambda: conditions(plane, namespace, "broker", "default").get("Ready") == ("True", "Ready"),
                         timeout=60)
        port = free_port()
        ingress = await RippleProcess("ingress", "--kubernetes", "--nats", k8s_nats.url, "--port", str(port),
                                      env={"KUBECONFIG": str(plane.kubeconfig)}).start()
        try:
            await ingress.wait_for_line("ingress listening on")
            audience = f"ripple/{namespace}/default"
            cases = {
                "no token": (None, 401),
                "the named ServiceAccount": (token(plane, namespace, "checkout", audience), 202),
                "its token for another audience": (token(plane, namespace, "checkout", "ripple/elsewhere"), 401),
                "another ServiceAccount of the namespace": (token(plane, namespace, "marketing", audience), 403),
                "the same name in another namespace": (token(plane, other, "checkout", audience), 403),
                "the static token": (PARTNER, 202),
                "a made-up token": ("x" * 40, 401),
            }
            url = f"http://127.0.0.1:{port}/{namespace}/default"
            async with aiohttp.ClientSession() as http:
                async def status_of(bearer: str | None) -> int:
                    headers = {**BINARY, **({"Authorization": f"Bearer {bearer}"} if bearer else {})}
                    async with http.post(url, headers=headers) as answer:
                        return answer.status

                # The ingress learns the policy from its watch: wait until it guards the broker.
                await eventually(lambda: status_of(None), timeout=30)
                await eventually(lambda: _is(status_of(None), 401), timeout=30)
                got = {case: await status_of(bearer) for case, (bearer, _) in cases.items()}
                assert got == {case: want for case, (_, want) in cases.items()}
                async with http.post(f"http://127.0.0.1:{port}/{namespace}/open", headers=BINARY) as answer:
                    assert answer.status == 202, "a broker no policy names stays open"
        finally:
            await ingress.interrupt()
            await ingress.stop()
    finally:
        plane.kubectl("delete", "namespace", other, "--wait=false", check=False)


async def _is(status, wanted: int) -> bool:
    return await status == wanted
