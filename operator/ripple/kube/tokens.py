"""Whose a bearer token is: the API server's TokenReview, for a ServiceAccount's token and an audience."""

from __future__ import annotations

import logging

import aiohttp
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

__all__ = ["SERVICE_ACCOUNT_PREFIX", "KubeTokenReviewer"]

log = logging.getLogger(__name__)

SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"
REVIEW_TIMEOUT = 5.0


class KubeTokenReviewer:
    """Asks the API server who a token belongs to (it checks signature, expiry, and that the token was issued
    for the audience); only ServiceAccounts count."""

    def __init__(self, api: client.ApiClient) -> None:
        self.authentication = client.AuthenticationV1Api(api)

    async def review(self, token: str, audience: str) -> tuple[str, str] | None:
        review = client.V1TokenReview(spec=client.V1TokenReviewSpec(token=token, audiences=[audience]))
        try:
            answer = await self.authentication.create_token_review(review, _request_timeout=REVIEW_TIMEOUT)
        except ApiException as exc:
            log.warning("TokenReview failed: %s %s", exc.status, exc.reason)
            return None
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:  # out of reach: nobody is proven, never a 500
            log.warning("TokenReview failed: %s: %s", type(exc).__name__, exc)
            return None
        status = answer.status
        if status is None or not status.authenticated or audience not in (status.audiences or []):
            return None
        username = (status.user.username if status.user is not None else "") or ""
        if not username.startswith(SERVICE_ACCOUNT_PREFIX):
            return None
        namespace, _, name = username.removeprefix(SERVICE_ACCOUNT_PREFIX).partition(":")
        return (namespace, name) if namespace and name else None
