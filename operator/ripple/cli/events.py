"""``ripple events show ID``: an event, every delivery attempt, reply, retry and dead letter it caused;
``ripple events tail``: a broker's events as they are stored; ``ripple events trace ID``: the hops of the
Sequences and Parallels an event went through."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
from typing import Any

import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.js.api import DeliverPolicy

from ripple.cli.dlq import nats_url
from ripple.events.http import structured_document
from ripple.events.model import CloudEvent, EventError
from ripple.logformat import trace_id
from ripple.store import EventStore, subjects
from ripple.store.history import History, read_history
from ripple.store.records import read_records

__all__ = ["format_history", "format_trace", "run", "tail", "tail_line"]

DATA_SHOWN = 400
"""Characters of an event's data printed by ``show`` (``--json`` prints it whole)."""


def _record_line(record: dict[str, Any]) -> str:
    where = record.get("trigger", "?")
    if record.get("flow"):
        step = record["step"] if record.get("role") in ("step", "branch") else f"{record['step']} ({record['role']})"
        where = f"{record['flow']} {step}"
    status = record.get("status") or "error"
    outcome = str(record.get("outcome", ""))
    if record.get("reply"):
        outcome += f" {record['reply']['id']} ({record['reply']['type']})"
    if record.get("error"):
        outcome += f" ({record['error']})"
    return (f"  {record.get('time', ''):<24} {where:<36} {record.get('attempt', ''):>7} {status:>6} "
            f"{record.get('latencyMs', 0):>7.1f}ms  {outcome}")


def format_history(history: History, *, depth: int = 0) -> str:
    indent = "    " * depth
    lines: list[str] = []
    event = history.event
    trace = trace_id(event.get("traceparent")) if event is not None else next(
        (r.get("traceId") for r in history.records if r.get("traceId")), None)
    if event is None:
        lines.append(f"event {history.event_id} (no longer stored)  trace {trace or '-'}")
    else:
        lines.append(f"event {event.id}  type {event.type}  source {event.source}  trace {trace or '-'}")
        extra = {k: v for k, v in event.attributes.items() if k not in ("id", "type", "source", "specversion")}
        for name, value in sorted(extra.items()):
            lines.append(f"  {name}: {value}")
        if event.data is not None:
            data = event.data.decode("utf-8", "replace")
            lines.append(f"  data: {data[:DATA_SHOWN]}{'...' if len(data) > DATA_SHOWN else ''}")
    if history.records:
        lines.append(f"  {'TIME':<24} {'TRIGGER':<36} {'ATTEMPT':>7} {'STATUS':>6} {'LATENCY':>9}  OUTCOME")
        lines.extend(_record_line(record) for record in history.records)
    else:
        lines.append("  no delivery recorded")
    text = "\n".join(indent + line for line in lines)
    for reply in history.replies:
        text += "\n" + indent + "  reply:\n" + format_history(reply, depth=depth + 1)
    return text


def format_trace(root: str, records: list[dict[str, Any]]) -> str:
    records = [record for record in records if record.get("flow")]
    if not records:
        return f"no hop of a Sequence or Parallel has recorded event {root!r} (records are kept for a day)"
    lines = [f"{'TIME':<24} {'FLOW':<36} {'STEP':<20} {'ID':<36} {'ATTEMPT':>7} {'STATUS':>6} {'LATENCY':>9}  OUTCOME"]
    for record in records:
        step = record["step"] if record["role"] in ("step", "branch") else f"{record['step']} ({record['role']})"
        status = record["status"] or "error"
        outcome = record["outcome"] + (f" ({record['error']})" if record.get("error") else "")
        lines.append(f"{record['time']:<24} {record['flow']:<36} {step:<20} {record['id']:<36} "
                     f"{record['attempt']:>7} {status:>6} {record['latencyMs']:>7.1f}ms  {outcome}")
    return "\n".join(lines)


def tail_line(namespace: str, broker: str, event: CloudEvent) -> str:
    arrived = event.get("ripplearrivaltime") or ""
    return (f"{arrived!s:<24} {namespace}/{broker:<20} {event.type:<28} {event.source:<24} {event.id:<36} "
            f"{trace_id(event.get('traceparent')) or '-'}")


async def _brokers(store: EventStore, wanted: str | None) -> list[tuple[str, str]]:
    found = []
    for info in await store.js.streams_info():
        parsed = subjects.parse_stream_name(info.config.name or "")
        if parsed is not None and (wanted is None or "/".join(parsed) == wanted):
            found.append(parsed)
    return sorted(found)


async def tail(store: EventStore, args: argparse.Namespace) -> int:
    wanted = None if args.broker is None else (args.broker if "/" in args.broker else f"default/{args.broker}")
    brokers = await _brokers(store, wanted)
    if not brokers:
        print(f"ripple: no broker {wanted or ''} found".replace("  ", " "))
        return 1
    printed, done = 0, asyncio.Event()

    async def show(namespace: str, broker: str, msg: Msg) -> None:
        nonlocal printed
        try:
            event = CloudEvent.from_json_bytes(msg.data)
        except (EventError, ValueError) as exc:
            print(f"{namespace}/{broker}: an unreadable message at {msg.metadata.sequence.stream}: {exc}")
            return
        print(json.dumps(structured_document(event)) if args.json else tail_line(namespace, broker, event),
              flush=True)
        printed += 1
        if args.count and printed >= args.count:
            done.set()

    subscriptions = []
    for namespace, broker in brokers:
        subject = (subjects.all_events_subject(namespace, broker) if args.type is None
                   else subjects.event_subject(namespace, broker, args.type))

        async def callback(msg: Msg, namespace: str = namespace, broker: str = broker) -> None:
            await show(namespace, broker, msg)

        subscriptions.append(await store.js.subscribe(
            subject, stream=subjects.stream_name(namespace, broker), ordered_consumer=True,
            deliver_policy=DeliverPolicy.NEW, cb=callback))
    names = ", ".join(f"{ns}/{b}" for ns, b in brokers)
    print(f"following {names}{f' (type {args.type})' if args.type else ''}; Ctrl-C stops", flush=True)
    try:
        await done.wait()
    finally:
        for subscription in subscriptions:
            with contextlib.suppress(nats.errors.Error):
                await subscription.unsubscribe()
    return 0


async def run(args: argparse.Namespace) -> int:
    store = await EventStore.connect(nats_url(args), name="ripple-events")
    try:
        if args.events_command == "tail":
            return await tail(store, args)
        if args.events_command == "show":
            history = await read_history(store, args.id)
            found = history.event is not None or bool(history.records)
            if args.json:
                print(json.dumps(history.as_dict(), indent=2))
            elif found:
                print(format_history(history))
            else:
                print(f"no delivery of event {args.id!r} is recorded (delivery records are kept for a day by "
                      f"default; an event no trigger matched has none)")
            return 0 if found else 1
        # A step's own id (``root#flow.step``) traces its root.
        root = args.id if "#" not in args.id else args.id.split("#", 1)[0]
        records = await read_records(store, root)
        flow_records = [record for record in records if record.get("flow")]
        print(json.dumps(flow_records, indent=2) if args.json else format_trace(root, records))
        return 0 if flow_records else 1
    finally:
        await store.close()
