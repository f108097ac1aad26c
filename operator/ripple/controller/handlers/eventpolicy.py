"""EventPolicy → ``status.tokens``: the SHA-256 of each static token it names, so that the ingress checks them
without reading Secrets (it may not); Ready says whether every token could be read.

Secrets change without touching the policy, so a timer reads them again every :data:`RECHECK` seconds: a
rotated token replaces the old one within that time."""

from __future__ import annotations

import hashlib
from typing import Any

import kopf

from ripple.api.models import EventPolicy
from ripple.controller.config import OperatorConfig
from ripple.controller.observe import reconciler
from ripple.controller.resources.conditions import Condition
from ripple.controller.status import write_conditions
from ripple.ingress.policies import MIN_TOKEN_BYTES
from ripple.kube.objects import InvalidSpec, parse
from ripple.kube.resources import custom_object

__all__ = ["RECHECK", "recheck_event_policy", "reconcile_event_policy", "token_digests"]

RESOURCE = custom_object(EventPolicy)
RECHECK = 60.0


async def token_digests(policy: EventPolicy, read: Any) -> tuple[list[dict[str, Any]], list[str]]:
    """``[{"index": i, "sha256": digest}]`` for each token sender, and what could not be read (naming the
    field); ``read(namespace, name, key) -> bytes | None``."""
    digests, problems = [], []
    for index, sender in enumerate(policy.spec.from_):
        if sender.token is None:
            continue
        ref = sender.token.secret_ref
        where = f"spec.from[{index}].token.secretRef"
        value = await read(policy.namespace, ref.name, ref.key)
        if value is None:
            problems.append(f"{where}: Secret '{ref.name}' has no key '{ref.key}'")
            continue
        token = bytes(value).decode("utf-8", "replace").strip()
        if len(token.encode()) < MIN_TOKEN_BYTES:
            problems.append(f"{where}: the token is shorter than {MIN_TOKEN_BYTES} bytes")
            continue
        digests.append({"index": index, "sha256": hashlib.sha256(token.encode()).hexdigest()})
    return digests, problems


async def _reconcile(body: kopf.Body, status: kopf.Status, patch: kopf.Patch, memo: Any) -> None:
    cfg: OperatorConfig = memo.config
    assert cfg.kube is not None
    try:
        policy = parse(EventPolicy, body)
    except InvalidSpec as exc:
        write_conditions(body, status, patch, [Condition("TokensRead", False, "InvalidSpec", str(exc))])
        return
    digests, problems = await token_digests(policy, cfg.kube.secret_value)
    if (status.get("tokens") or []) != digests:
        patch.status["tokens"] = digests
    read = (Condition("TokensRead", False, "SecretMissing", "; ".join(problems)) if problems
            else Condition("TokensRead", True, "TokensRead", f"{len(digests)} static token(s)"))
    write_conditions(body, status, patch, [read])


@kopf.on.resume(*RESOURCE)
@kopf.on.create(*RESOURCE)
@kopf.on.update(*RESOURCE, field="spec")
@reconciler("EventPolicy")
async def reconcile_event_policy(body: kopf.Body, status: kopf.Status, patch: kopf.Patch, memo: Any,
                                 **_: Any) -> None:
    await _reconcile(body, status, patch, memo)


@kopf.timer(*RESOURCE, interval=RECHECK, idle=RECHECK)
@reconciler("EventPolicy")
async def recheck_event_policy(body: kopf.Body, status: kopf.Status, patch: kopf.Patch, memo: Any,
                               **_: Any) -> None:
    await _reconcile(body, status, patch, memo)
