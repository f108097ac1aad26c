"""The ``ripple`` command: ``main`` parses the arguments and runs the chosen command's module."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Coroutine
from typing import Any, cast

from ripple import tracing
from ripple._aio import run
from ripple.api.errors import ManifestError
from ripple.cli.logs import configure_root
from ripple.cli.parser import build_parser

__all__ = ["main"]

TRACED = frozenset({"dev", "ingress", "dispatcher", "function", "source"})
"""The commands that handle events, and so export spans when the ``OTEL_*`` variables ask for it."""
Command = Callable[[argparse.Namespace], Coroutine[Any, Any, int]]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_root(log_format=getattr(args, "log_format", "text"), component=args.command, verbose=args.verbose)
    if args.command in TRACED:
        tracing.configure(args.command)
    command = cast(Command, importlib.import_module(f"ripple.cli.{args.command}").run)
    try:
        return run(command(args))
    except ManifestError as exc:
        print(f"ripple: invalid manifest: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
