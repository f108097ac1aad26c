"""``ripple replay --trigger NAME (--from TIME|--from-seq N) [--to TIME|--to-seq N] [--rate N] [--dry-run]``:
re-deliver a broker's stored events to one trigger (see ``dispatch/replay.py``)."""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime
from pathlib import Path

from ripple.api.loading import load_manifests
from ripple.api.models import Trigger
from ripple.cli.dlq import nats_url
from ripple.cli.parser import namespaced
from ripple.defaults import MAX_REPLAY_RATE
from ripple.dispatch.replay import ReplayProgress, ReplayWindow, replay, since_to_start
from ripple.events.extensions import parse_rfc3339
from ripple.store import EventStore

__all__ = ["find_trigger", "run", "summary"]

PROGRESS_EVERY = 2.0
"""Seconds between progress lines."""


async def find_trigger(args: argparse.Namespace, namespace: str, name: str) -> Trigger:
    """The trigger, from the cluster (``--kubernetes``), the manifests given, or those ``ripple dev`` runs."""
    if args.kubernetes:
        from kubernetes_asyncio import client

        from ripple.api.models import GROUP, VERSION
        from ripple.kube.client import load_kube_config
        from ripple.kube.objects import parse

        async with await load_kube_config() as api:
            body = await client.CustomObjectsApi(api).get_namespaced_custom_object(
                GROUP, VERSION, namespace, "triggers", name)
        return parse(Trigger, body)
    paths = args.manifests
    if not paths:
        state = Path(args.data_dir) / "state.json"
        if not state.exists():
            raise SystemExit("ripple replay: give the trigger's manifests (-f PATH), --kubernetes, or run `ripple dev`")
        paths = [Path(p) for p in json.loads(state.read_text()).get("paths", [])]
    trigger = load_manifests(paths).triggers.get((namespace, name))
    if trigger is None:
        raise SystemExit(f"ripple replay: no trigger {namespace}/{name} in {', '.join(map(str, paths))}")
    return trigger


def _window(args: argparse.Namespace) -> ReplayWindow:
    try:
        return ReplayWindow(
            start_seq=args.from_seq, start_time=since_to_start(args.from_time) if args.from_time else None,
            end_seq=args.to_seq, end_time=parse_rfc3339(args.to_time) if args.to_time else None)
    except ValueError as exc:
        raise SystemExit(f"ripple replay: {exc} (times are RFC 3339, or a duration before now such as PT1H)") from None


def summary(progress: ReplayProgress, *, dry_run: bool, trigger: str, name: str) -> str:
    where = (f"sequences {progress.first_seq}..{progress.last_seq}" if progress.first_seq is not None
             else "no stored event in the window")
    if dry_run:
        kinds = ", ".join(f"{t} {n}" for t, n in sorted(progress.types.items())) or "none"
        return f"dry run: {progress.matched} of {progress.scanned} events ({where}) would go to {trigger}: {kinds}"
    return f"replayed {progress.published} of {progress.scanned} events ({where}) to {trigger} as {name}"


async def run(args: argparse.Namespace) -> int:
    if not 0 < args.rate <= MAX_REPLAY_RATE:
        raise SystemExit(f"ripple replay: --rate must be above 0 and at most {MAX_REPLAY_RATE}")
    namespace, name = namespaced(args.trigger)
    trigger = await find_trigger(args, namespace, name)
    window = _window(args)
    replay_name = args.name or f"{name}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}"
    store = await EventStore.connect(nats_url(args), name="ripple-replay")
    shown = time.monotonic()

    def on_progress(progress: ReplayProgress) -> None:
        nonlocal shown
        if time.monotonic() - shown >= PROGRESS_EVERY:
            shown = time.monotonic()
            print(f"... {progress.published or progress.matched} events so far (at sequence {progress.last_seq})",
                  flush=True)

    try:
        progress = await replay(store, trigger, window, name=replay_name, rate=args.rate, dry_run=args.dry_run,
                                on_progress=on_progress)
    finally:
        await store.close()
    trigger_name = f"{namespace}/{name}"
    if args.json:
        print(json.dumps({"replay": replay_name, "trigger": trigger_name, "dryRun": args.dry_run,
                          **progress.as_dict()}))
    else:
        print(summary(progress, dry_run=args.dry_run, trigger=trigger_name, name=replay_name))
    return 0
