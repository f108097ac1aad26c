"""``ripple dlq list|show|redrive``: the broker's dead-letter stream from the command line."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ripple.events.extensions import ERROR_CODE, ERROR_DEST
from ripple.events.http import structured_document
from ripple.store import EventStore
from ripple.store.dlq import DeadLetter, dead_letters, get_dead_letter, redrive

__all__ = ["nats_url", "run", "summary"]


def nats_url(args: argparse.Namespace) -> str:
    if args.nats:
        return str(args.nats)
    state = Path(args.data_dir) / "state.json"
    if not state.exists():
        raise SystemExit(f"ripple: no --nats given and no running `ripple dev` found ({state} is missing)")
    return str(json.loads(state.read_text())["nats"])


def summary(letter: DeadLetter) -> str:
    event = letter.event
    return (
        f"{letter.sequence:>6}  {letter.trigger:<24} {event.type:<24} {event.id:<36} "
        f"status={event.get(ERROR_CODE)} dest={event.get(ERROR_DEST)}"
    )


async def run(args: argparse.Namespace) -> int:
    namespace, _, broker = str(args.broker).rpartition("/")
    namespace = namespace or "default"
    store = await EventStore.connect(nats_url(args), name="ripple-dlq")
    try:
        if args.dlq_command == "list":
            print(f"{'SEQ':>6}  {'TRIGGER':<24} {'TYPE':<24} {'ID':<36} ERROR")
            async for letter in dead_letters(store, namespace, broker, limit=args.limit):
                print(summary(letter))
        elif args.dlq_command == "show":
            letter = await get_dead_letter(store, namespace, broker, args.sequence)
            print(json.dumps({"sequence": letter.sequence, "event": structured_document(letter.event)}, indent=2))
        elif args.dlq_command == "redrive":
            wanted = set(args.sequences)
            letters = [letter async for letter in dead_letters(store, namespace, broker)]
            chosen = [letter for letter in letters if not wanted or letter.sequence in wanted]
            missing = wanted - {letter.sequence for letter in chosen}
            for letter in chosen:
                await redrive(store, namespace, broker, letter, trigger=args.trigger)
                print(f"redrove {letter.sequence} ({letter.event.id}) to {args.trigger or 'the broker'}")
            if missing:
                print(f"ripple: no dead letter with sequence {sorted(missing)}")
                return 1
    finally:
        await store.close()
    return 0
