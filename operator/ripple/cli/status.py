"""``ripple status``: the functions and triggers of a running ``ripple dev``."""

from __future__ import annotations

import argparse
import json

from ripple.local.status import format_status, read_status

__all__ = ["run"]


async def run(args: argparse.Namespace) -> int:
    status = await read_status(args.url, args.data_dir)
    print(json.dumps(status, indent=2) if args.json else format_status(status))
    return 0
