"""``ripple function serve``: one Python handler over HTTP, or an empty warm-pool runtime."""

from __future__ import annotations

import argparse
import sys

from ripple._aio import wait_for_signal
from ripple.runtime.loader import HandlerError, load_handler
from ripple.runtime.server import LISTENING, create_function_app, runtime_verifier
from ripple.serving import start_site

__all__ = ["run"]


async def run(args: argparse.Namespace) -> int:
    handler = None
    if args.handler:
        try:
            handler = load_handler(args.handler, args.path)
        except HandlerError as exc:
            print(f"ripple: {exc}", file=sys.stderr)
            return 2
    try:
        verifier = runtime_verifier() if handler is not None else None
    except ValueError as exc:
        print(f"ripple: {exc}", file=sys.stderr)
        return 2
    app = create_function_app(handler, timeout=args.timeout, name=args.handler or "", verifier=verifier)
    runner = await start_site(app, args.host, args.port, name="function")
    what = f"function {args.handler}" if args.handler else "warm-pool runtime"
    print(f"{what} {LISTENING}{args.host}:{args.port}", flush=True)
    try:
        await wait_for_signal()
    finally:
        await runner.cleanup()
    return 0
