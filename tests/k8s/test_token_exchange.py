"""The dispatchers' token exchange on the real control plane: an EventSource adapter whose sink is a Function swaps
its ServiceAccount token (for the Function's audience) for a delivery token; no other account gets one."""

from __future__ import annotations

import aiohttp
import jwt
import pytest
from aiohttp import web
from kubernetes_asyncio import client, config

from ripple.cluster.exchange import TokenExchange
from ripple.kube.client import Kube
from ripple.kube.names import adapter_name
from ripple.kube.tokens import KubeTokenReviewer
from ripple.signing import EXCHANGE_PATH, DeliverySigner, DeliveryVerifier, function_audience, jwks_route
from tests.k8s.test_operator import apply
from tests.support import serve

pytestmark = pytest.mark.k8s


def token(plane, namespace: str, account: str, audience: str) -> str:
    return plane.kubectl("create", "token", account, "-n", namespace, "--audience", audience).stdout.strip()


async def test_only_a_source_sending_to_the_function_gets_a_delivery_token_for_it(crds_installed, namespace):
    plane = crds_installed
    apply(plane, namespace, """
        kind: EventSource
        metadata: {name: hooks}
        spec:
          webhook: {}
          sink: {ref: {kind: Function, name: audit}}
        ---
        kind: EventSource
        metadata: {name: elsewhere}
        spec:
          webhook: {}
          sink: {ref: {kind: Function, name: billing}}
        """)
    for account in (adapter_name("hooks"), adapter_name("elsewhere"), "intruder"):
        plane.kubectl("create", "serviceaccount", account, "-n", namespace)
    configuration = client.Configuration()
    await config.load_kube_config(config_file=str(plane.kubeconfig), client_configuration=configuration)
    api = client.ApiClient(configuration)
    signer = DeliverySigner()

    async def jwks() -> dict[str, object]:
        return signer.ring.jwks()

    app = web.Application()
    app.router.add_routes([TokenExchange(Kube(api), signer, KubeTokenReviewer(api)).route(), jwks_route(jwks)])
    audience = function_audience(namespace, "audit")
    try:
        async with serve(app) as url, aiohttp.ClientSession() as http:
            async def exchange(bearer: str | None, function: str = f"{namespace}/audit") -> tuple[int, dict]:
                headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
                async with http.post(f"{url}{EXCHANGE_PATH}", params={"function": function},
                                     headers=headers) as answer:
                    return answer.status, await answer.json()

            status, body = await exchange(token(plane, namespace, adapter_name("hooks"), audience))
            assert status == 200, body
            verifier = DeliveryVerifier(jwks, audience)
            assert await verifier.check(f"Bearer {body['token']}") is None
            assert jwt.decode(body["token"], options={"verify_signature": False})["sub"] == \
                f"ripple/{namespace}/eventsources/hooks"
            cases = {
                "another source's adapter": (token(plane, namespace, adapter_name("elsewhere"), audience), 403),
                "a pod of the namespace": (token(plane, namespace, "intruder", audience), 403),
                "the adapter's token for another audience": (
                    token(plane, namespace, adapter_name("hooks"), f"ripple/{namespace}/default"), 401),
                "no token": (None, 401),
            }
            got = {case: (await exchange(bearer))[0] for case, (bearer, _) in cases.items()}
            assert got == {case: want for case, (_, want) in cases.items()}
            assert (await exchange("x", function="nonsense"))[0] == 400
    finally:
        await api.close()
