"""Delivery tokens for EventSource adapters whose sink is a Function, in exchange for their ServiceAccount's token.

An adapter runs in its source's namespace, not in the dispatcher, so it holds no signing key; a Function that
requires delivery tokens would refuse it. The adapter sends its projected ServiceAccount token, issued for the
Function's audience, to ``POST /-/delivery-token?function=<namespace>/<name>`` on a dispatcher. The dispatcher
checks it with a TokenReview for that audience, then that the account is the adapter of an EventSource in the
Function's namespace whose sink (or dead-letter sink) is that Function, and only then signs a delivery token whose
``sub`` is the source. Another pod of the namespace, with a token of its own, gets ``403``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp
from aiohttp import web
from kubernetes_asyncio.client.exceptions import ApiException

from ripple.api.models import EventSource
from ripple.ingress.policies import TokenReviewer
from ripple.kube.client import Kube
from ripple.kube.names import adapter_name
from ripple.signing import EXCHANGE_PATH, TOKEN_LIFETIME, DeliverySigner, function_audience, source_subject

__all__ = ["TokenExchange"]

log = logging.getLogger(__name__)
LIST_TIMEOUT = 5.0


class TokenExchange:
    def __init__(self, kube: Kube, signer: DeliverySigner, reviewer: TokenReviewer) -> None:
        self.kube = kube
        self.signer = signer
        self.reviewer = reviewer

    def route(self) -> web.RouteDef:
        return web.post(EXCHANGE_PATH, self.handle)

    async def handle(self, request: web.Request) -> web.Response:
        namespace, _, name = request.query.get("function", "").partition("/")
        if not namespace or not name:
            return _error(400, "give the Function as ?function=<namespace>/<name>")
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return _error(401, "send the adapter's ServiceAccount token as 'Authorization: Bearer <token>'")
        audience = function_audience(namespace, name)
        account = await self.reviewer.review(token.strip(), audience)
        if account is None:
            return _error(401, f"the token is no ServiceAccount token for the audience {audience}")
        try:
            source = await self._source_of(account, namespace, name)
        except (ApiException, aiohttp.ClientError, OSError, TimeoutError) as exc:  # the adapter retries: not a 500
            log.warning("token exchange: cannot list EventSources in %s: %s: %s", namespace, type(exc).__name__, exc)
            return web.json_response({"error": "cannot read EventSources now, retry"}, status=503,
                                     headers={"Retry-After": "5"})
        if source is None:
            return _error(403, f"ServiceAccount '{account[0]}/{account[1]}' is the adapter of no EventSource "
                               f"sending to Function '{namespace}/{name}'")
        issued = self.signer.token(audience, source_subject(namespace, source))
        return web.json_response({"token": issued, "expiresIn": int(TOKEN_LIFETIME)})

    async def _source_of(self, account: tuple[str, str], namespace: str, function: str) -> str | None:
        if account[0] != namespace:
            return None
        async with asyncio.timeout(LIST_TIMEOUT):
            found = await self.kube.ripple_objects(EventSource, namespace)
        for body in found:
            name = str(body.get("metadata", {}).get("name", ""))
            if adapter_name(name) == account[1] and _sends_to(body.get("spec") or {}, namespace, function):
                return name
        return None


def _sends_to(spec: dict[str, Any], namespace: str, function: str) -> bool:
    sinks = [spec.get("sink") or {}, ((spec.get("delivery") or {}).get("deadLetterSink")) or {}]
    for sink in sinks:
        ref = sink.get("ref") or {}
        if ref.get("kind") == "Function" and ref.get("name") == function and \
                ref.get("namespace") in (None, "", namespace):
            return True
    return False


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)
