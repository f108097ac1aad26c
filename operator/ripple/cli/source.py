"""``ripple source run``: one EventSource's adapter."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path

import yaml

from ripple.api.loading import parse_resource
from ripple.api.models import EventSource
from ripple.cli.logs import configure_logging
from ripple.cli.parser import tls_files
from ripple.cluster.source import AdapterOptions, run_source_adapter
from ripple.sources.adapter import SecretMissing

__all__ = ["SINK_ENV", "SOURCE_ENV", "run"]

SOURCE_ENV = "RIPPLE_EVENTSOURCE"
SINK_ENV = "RIPPLE_SINK_URI"


async def run(args: argparse.Namespace) -> int:
    configure_logging(every_delivery=False)
    if args.source is not None:
        document = yaml.safe_load(await asyncio.to_thread(Path(args.source).read_text))
        where = args.source
    elif os.environ.get(SOURCE_ENV):
        document, where = json.loads(os.environ[SOURCE_ENV]), f"${SOURCE_ENV}"
    else:
        print(f"ripple: give the EventSource with --source FILE or ${SOURCE_ENV}", file=sys.stderr)
        return 2
    source = parse_resource(document, where)
    if not isinstance(source, EventSource):
        print(f"ripple: {where} is not an EventSource", file=sys.stderr)
        return 2
    sink = args.sink or os.environ.get(SINK_ENV)
    if not sink:
        print(f"ripple: give the sink's URL with --sink or ${SINK_ENV}", file=sys.stderr)
        return 2
    options = AdapterOptions(source, sink, args.dead_letter_sink, args.secrets_dir, args.nats, args.host,
                             args.port, args.max_body, args.report_progress, tls=tls_files(args))
    try:
        return await run_source_adapter(options)
    except SecretMissing as exc:
        print(f"ripple: {exc}", file=sys.stderr)
        return 2
