"""``ripple dev``: NATS, ingress, dispatcher and functions on this machine, from manifest files."""

from __future__ import annotations

import argparse
import sys

from ripple.cli.dispatcher import record_settings
from ripple.cli.logs import configure_logging
from ripple.ingress.limits import RateSettings
from ripple.local.dev import DevOptions, run_dev
from ripple.local.functions import LocalModeError

__all__ = ["run"]


async def run(args: argparse.Namespace) -> int:
    configure_logging(every_delivery=True)
    options = DevOptions(args.paths, args.host, args.port, args.data_dir, args.max_body, args.pool_size,
                         args.activation_timeout, nats_cluster=args.nats_cluster, records=record_settings(args),
                         delivery_auth=args.delivery_auth, tls=args.tls, max_batch=args.max_batch,
                         max_fanout=args.max_fanout,
                         rates=RateSettings(broker=args.rate_limit_broker, sender=args.rate_limit_sender))
    try:
        return await run_dev(options)
    except LocalModeError as exc:
        print(f"ripple: {exc}", file=sys.stderr)
        return 2
