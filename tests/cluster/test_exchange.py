"""The token exchange when the API server cannot be asked: 503 with Retry-After (the adapter asks again), never a
500. The accepting paths run on the real control plane in ``tests/k8s/test_token_exchange.py``."""

from __future__ import annotations

import aiohttp
from aiohttp import web
from kubernetes_asyncio import client

from ripple._aio import free_port
from ripple.cluster.exchange import TokenExchange
from ripple.kube.client import Kube
from ripple.signing import EXCHANGE_PATH, DeliverySigner
from tests.support import serve


class KnownAdapter:
    """A TokenReview that proves the adapter's account (the API server's answer, without an API server)."""

    async def review(self, token: str, audience: str) -> tuple[str, str] | None:
        return ("shop", "hooks-source") if token == "adapter-token" else None


async def test_an_unreachable_api_server_is_a_503_not_a_500() -> None:
    configuration = client.Configuration(host=f"http://127.0.0.1:{free_port()}")  # nothing listens there
    api = client.ApiClient(configuration)
    app = web.Application()
    app.router.add_routes([TokenExchange(Kube(api), DeliverySigner(), KnownAdapter()).route()])
    try:
        async with serve(app) as url, aiohttp.ClientSession() as http:
            async with http.post(f"{url}{EXCHANGE_PATH}", params={"function": "shop/audit"},
                                 headers={"Authorization": "Bearer adapter-token"}) as answer:
                assert answer.status == 503 and answer.headers["Retry-After"] == "5"
                assert "retry" in (await answer.json())["error"]
            async with http.post(f"{url}{EXCHANGE_PATH}", params={"function": "shop/audit"},
                                 headers={"Authorization": "Bearer someone-else"}) as answer:
                assert answer.status == 401
    finally:
        await api.close()
