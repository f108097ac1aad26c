"""Sequence and Parallel: their steps and branches resolved and reported; running them comes with their executor.

``StepsResolved`` says whether every Function a step, branch, error route, dead-letter sink or reply names
exists. ``Ready`` stays False with reason ``ExecutionNotAvailable``: this release validates and resolves
Sequences and Parallels (locally and by the API server) but does not run them yet, and says so rather than
accept events it would not deliver.
"""

from __future__ import annotations

from typing import Any

import kopf

from ripple.api.models import Destination, Function, Parallel, Sequence
from ripple.controller.config import OperatorConfig
from ripple.controller.resources.conditions import Condition
from ripple.controller.status import write_conditions
from ripple.kube.objects import InvalidSpec, parse
from ripple.kube.resources import custom_object

__all__ = ["destinations", "reconcile_parallel", "reconcile_sequence"]

NOT_RUNNING = "Sequences and Parallels are validated and resolved; their executor is not part of this release yet"


def destinations(resource: Sequence | Parallel) -> list[tuple[str, Destination]]:
    """Every destination the resource names, with its field path."""
    found: list[tuple[str, Destination | None]] = []
    if isinstance(resource, Sequence):
        for index, step in enumerate(resource.spec.steps):
            found += [(f"spec.steps[{index}]", step), (f"spec.steps[{index}].onError", step.on_error),
                      (f"spec.steps[{index}].delivery.deadLetterSink", step.delivery.dead_letter_sink)]
    else:
        for index, branch in enumerate(resource.spec.branches):
            found += [(f"spec.branches[{index}].subscriber", branch.subscriber),
                      (f"spec.branches[{index}].reply", branch.reply),
                      (f"spec.branches[{index}].delivery.deadLetterSink", branch.delivery.dead_letter_sink)]
    found.append(("spec.reply", resource.spec.reply))
    return [(path, dest) for path, dest in found if dest is not None]


async def _reconcile(model: type[Sequence] | type[Parallel], body: kopf.Body, status: kopf.Status,
                     patch: kopf.Patch, memo: Any) -> None:
    cfg: OperatorConfig = memo.config
    assert cfg.kube is not None
    try:
        resource = parse(model, body)
    except InvalidSpec as exc:
        resolved = Condition("StepsResolved", False, "InvalidSpec", str(exc))
    else:
        missing = []
        for path, dest in destinations(resource):
            if dest.ref is not None:
                namespace, name = dest.ref.key(resource.namespace)
                if await cfg.kube.ripple_object(Function, namespace, name) is None:
                    missing.append(f"{path}: no Function '{namespace}/{name}'")
        resolved = (Condition("StepsResolved", False, "FunctionNotFound", "; ".join(missing)) if missing
                    else Condition("StepsResolved", True, "Resolved"))
    ready = Condition("Ready", False, resolved.reason if resolved.status is not True else "ExecutionNotAvailable",
                      resolved.message if resolved.status is not True else NOT_RUNNING)
    write_conditions(body, status, patch, [resolved, ready], ready=False)
    if resolved.reason == "FunctionNotFound":
        raise kopf.TemporaryError(resolved.message, delay=10)  # nothing here watches Functions: look again


@kopf.on.resume(*custom_object(Sequence))
@kopf.on.create(*custom_object(Sequence))
@kopf.on.update(*custom_object(Sequence), field="spec")
async def reconcile_sequence(body: kopf.Body, status: kopf.Status, patch: kopf.Patch, memo: Any, **_: Any) -> None:
    await _reconcile(Sequence, body, status, patch, memo)


@kopf.on.resume(*custom_object(Parallel))
@kopf.on.create(*custom_object(Parallel))
@kopf.on.update(*custom_object(Parallel), field="spec")
async def reconcile_parallel(body: kopf.Body, status: kopf.Status, patch: kopf.Patch, memo: Any, **_: Any) -> None:
    await _reconcile(Parallel, body, status, patch, memo)
