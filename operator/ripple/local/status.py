"""The data plane's state at a glance: ``GET /-/status`` in local mode, ``ripple status`` as a table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import nats.errors
import nats.js.errors

from ripple.dispatch import Dispatcher
from ripple.scaling.autoscaler import Autoscaler
from ripple.scaling.local import LocalProcessBackend
from ripple.store import EventStore, subjects

__all__ = ["collect_status", "format_status", "read_status"]


async def collect_status(
    store: EventStore, dispatcher: Dispatcher, autoscaler: Autoscaler, backend: LocalProcessBackend
) -> dict[str, Any]:
    functions = {}
    for key, state in autoscaler.states.items():
        cold = backend.cold_starts[key]
        functions[f"{key[0]}/{key[1]}"] = {
            "desired": state.replicas,
            "replicas": backend.replicas(key),
            "ready": len(backend.endpoints(key)),
            "demand": autoscaler.demand.get(key, 0),
            "coldStarts": cold.count,
            "lastColdStartSeconds": None if cold.last_latency is None else round(cold.last_latency, 4),
        }
    triggers: dict[str, Any] = {}
    flows: dict[str, Any] = {}
    for (namespace, name), worker in dispatcher.workers.items():
        stats = worker.stats
        counts = {
            "pending": await _pending(store, namespace, worker.trigger.spec.broker, name),
            "inFlight": stats.in_flight,
            "delivered": stats.delivered,
            "retried": stats.retried,
            "deadLettered": stats.dead_lettered,
            "filtered": stats.filtered,
            "replies": stats.replies,
        }
        hop = worker.hop
        if hop is None:
            triggers[f"{namespace}/{name}"] = counts
            continue
        flow = flows.setdefault(f"{hop.flow_kind} {hop.flow_key}", {"kind": hop.flow_kind, "hops": []})
        flow["hops"].append({"hop": name, "role": hop.role, "step": hop.label, **counts,
                             "errorRouted": stats.error_routed, "ended": stats.ended})
    return {"functions": functions, "triggers": triggers, "flows": flows}


async def _pending(store: EventStore, namespace: str, broker: str, trigger: str) -> int | None:
    try:
        info = await store.js.consumer_info(subjects.stream_name(namespace, broker), subjects.consumer_name(trigger))
    except (nats.errors.Error, nats.js.errors.Error, TimeoutError):
        return None
    return int(info.num_pending)


def format_status(status: dict[str, Any]) -> str:
    """Tables of functions, triggers and (when there are any) sources, as ``kubectl get`` would print them."""
    lines = [f"{'FUNCTION':<32} {'DESIRED':>7} {'READY':>5} {'DEMAND':>6} {'COLD STARTS':>11} {'LAST COLD START':>15}"]
    for name, fn in status["functions"].items():
        last = "-" if fn["lastColdStartSeconds"] is None else f"{fn['lastColdStartSeconds'] * 1000:.0f}ms"
        lines.append(f"{name:<32} {fn['desired']:>7} {fn['ready']:>5} {fn['demand']:>6} {fn['coldStarts']:>11} "
                     f"{last:>15}")
    lines.append("")
    lines.append(f"{'TRIGGER':<32} {'PENDING':>7} {'IN-FLIGHT':>9} {'DELIVERED':>9} {'RETRIED':>7} "
                 f"{'DEAD-LETTERED':>13}")
    for name, trig in status["triggers"].items():
        pending = "-" if trig["pending"] is None else trig["pending"]
        lines.append(f"{name:<32} {pending:>7} {trig['inFlight']:>9} {trig['delivered']:>9} {trig['retried']:>7} "
                     f"{trig['deadLettered']:>13}")
    flows = status.get("flows") or {}
    if flows:
        lines.append("")
        lines.append(f"{'SEQUENCE / PARALLEL':<32} {'STEP':<20} {'PENDING':>7} {'IN-FLIGHT':>9} {'DELIVERED':>9} "
                     f"{'RETRIED':>7} {'DEAD-LETTERED':>13} {'ERROR-ROUTED':>12} {'ENDED':>5}")
        for name, flow in flows.items():
            for hop in flow["hops"]:
                step = hop["step"] if hop["role"] in ("step", "branch") else f"{hop['step']} ({hop['role']})"
                pending = "-" if hop["pending"] is None else hop["pending"]
                lines.append(f"{name:<32} {step:<20} {pending:>7} {hop['inFlight']:>9} {hop['delivered']:>9} "
                             f"{hop['retried']:>7} {hop['deadLettered']:>13} {hop['errorRouted']:>12} "
                             f"{hop['ended']:>5}")
    sources = status.get("sources") or {}
    if sources:
        lines.append("")
        lines.append(f"{'SOURCE':<32} {'KIND':<10} {'SINK':<28} {'SENT':>6} {'RETRIED':>7} {'DEAD-LETTERED':>13} "
                     f"{'REFUSED':>7}  LAST ERROR")
        for name, src in sources.items():
            lines.append(f"{name:<32} {src['kind']:<10} {src['sink']:<28} {src['sent']:>6} {src['retried']:>7} "
                         f"{src['deadLettered']:>13} {src['refused']:>7}  {src['lastError'] or '-'}")
    return "\n".join(lines)


async def read_status(url: str | None, data_dir: Path) -> dict[str, Any]:
    """Ask a running ``ripple dev`` for its status (its ingress URL from ``state.json`` unless given)."""
    if url is None:
        state = data_dir / "state.json"
        if not state.exists():
            raise SystemExit(f"ripple: no --url given and no running `ripple dev` found ({state} is missing)")
        url = str(json.loads(state.read_text())["ingress"])
    async with aiohttp.ClientSession() as session, session.get(url.rstrip("/") + "/-/status") as response:
        response.raise_for_status()
        return dict(await response.json())
