"""EventPolicies in a cluster, on the real control plane: the operator reads a policy's token Secret into its
status (digests only); ``ripple ingress --kubernetes`` checks real ServiceAccount tokens with TokenReview for the
broker's audience (``ripple/<namespace>/<broker>``), static tokens by digest, and refuses the rest."""

from __future__ import annotations

import json

import aiohttp
import pytest
from aiohttp import web

from ripple._aio import free_port
from ripple.signing import DeliverySigner, flow_audience, jwks_route, trigger_subject
from tests.k8s.test_operator import apply, conditions, ingress_port, k8s_nats, operator  # noqa: F401 - fixtures
from tests.processes import RippleProcess
from tests.support import eventually, serve

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


async def test_the_chart_default_lets_only_a_namespace_s_own_service_accounts_send(
        crds_installed, operator, k8s_nats, namespace):  # noqa: F811
    """``--default-policy namespace`` (the chart's default): a broker no policy names refuses an anonymous POST
    (401) and another namespace's ServiceAccount (403), takes its own namespace's; a policy naming it replaces the
    default; and a dispatcher's delivery to a Sequence, signed for the Sequence's address, is let in."""
    plane = crds_installed
    other = f"{namespace}-y"
    plane.kubectl("create", "namespace", other)
    signer = DeliverySigner()

    async def jwks() -> dict[str, object]:
        return signer.ring.jwks()

    keys = web.Application()
    keys.router.add_routes([jwks_route(jwks)])
    try:
        for ns in (namespace, other):
            plane.kubectl("create", "serviceaccount", "producer", "-n", ns)
        apply(plane, namespace, """
            kind: Broker
            metadata: {name: default}
            ---
            kind: Broker
            metadata: {name: partners}
            ---
            kind: EventPolicy
            metadata: {name: partners-only}
            spec:
              to: [{broker: partners}]
              from: [{token: {secretRef: {name: partner, key: token}}}]
            ---
            kind: Sequence
            metadata: {name: audited}
            spec:
              steps: [{uri: "http://example.invalid/"}]
            """)
        plane.kubectl("create", "secret", "generic", "partner", "-n", namespace, f"--from-literal=token={PARTNER}")
        for kind, name in (("broker", "default"), ("broker", "partners"), ("sequence", "audited")):
            await eventually(lambda k=kind, n=name: conditions(plane, namespace, k, n).get("Ready", ("",))[0] ==
                             "True", timeout=60)
        port = free_port()
        async with serve(keys) as keys_url:
            ingress = await RippleProcess(
                "ingress", "--kubernetes", "--nats", k8s_nats.url, "--port", str(port), "--default-policy",
                "namespace", "--delivery-keys-url", keys_url + "/.well-known/jwks.json",
                env={"KUBECONFIG": str(plane.kubeconfig)}).start()
            try:
                await ingress.wait_for_line("ingress listening on")
                base = f"http://127.0.0.1:{port}/{namespace}"
                audience = f"ripple/{namespace}/default"
                async with aiohttp.ClientSession() as http:
                    async def status_of(url: str, bearer: str | None) -> tuple[int, str]:
                        headers = {**BINARY, **({"Authorization": f"Bearer {bearer}"} if bearer else {})}
                        async with http.post(url, headers=headers) as answer:
                            return answer.status, await answer.text()

                    await eventually(lambda: _is_status(status_of(f"{base}/default", None), 401), timeout=30)
                    _, body = await status_of(f"{base}/default", None)
                    assert "ServiceAccounts of namespace" in body and audience in body
                    own = token(plane, namespace, "producer", audience)
                    assert (await status_of(f"{base}/default", own))[0] == 202
                    foreign = await status_of(f"{base}/default", token(plane, other, "producer", audience))
                    assert foreign[0] == 403, foreign
                    # A policy naming a broker replaces the default: the namespace's own account proves nobody the
                    # policy knows (it names no ServiceAccount, so none is reviewed).
                    await eventually(lambda: _is_status(status_of(f"{base}/partners", PARTNER), 202), timeout=60)
                    partners = token(plane, namespace, "producer", f"ripple/{namespace}/partners")
                    assert (await status_of(f"{base}/partners", partners))[0] == 401

                    sequence = f"{base}/sequences/audited"
                    await eventually(lambda: _is_status(status_of(sequence, None), 401), timeout=30)
                    hop = signer.token(flow_audience("Sequence", namespace, "audited"),
                                       trigger_subject(namespace, "orders"))
                    assert (await status_of(sequence, hop))[0] == 202
                    elsewhere = signer.token(flow_audience("Sequence", namespace, "other"),
                                             trigger_subject(namespace, "orders"))
                    assert (await status_of(sequence, elsewhere))[0] == 401
            finally:
                await ingress.interrupt()
                await ingress.stop()
    finally:
        plane.kubectl("delete", "namespace", other, "--wait=false", check=False)


async def _is_status(found, wanted: int) -> bool:
    return (await found)[0] == wanted
