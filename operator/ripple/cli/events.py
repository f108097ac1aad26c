"""``ripple events trace ID``: every hop of a Sequence or Parallel an event and what it caused went through."""

from __future__ import annotations

import argparse
import json
from typing import Any

from ripple.cli.dlq import nats_url
from ripple.store import EventStore
from ripple.store.records import read_records

__all__ = ["format_trace", "run"]


def format_trace(root: str, records: list[dict[str, Any]]) -> str:
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


async def run(args: argparse.Namespace) -> int:
    # A step's own id (``root#flow.step``) traces its root.
    root = args.id if "#" not in args.id else args.id.split("#", 1)[0]
    store = await EventStore.connect(nats_url(args), name="ripple-events")
    try:
        records = await read_records(store, root)
    finally:
        await store.close()
    print(json.dumps(records, indent=2) if args.json else format_trace(root, records))
    return 0 if records else 1
