"""``ripple operator``: the Kopf operator for Brokers, Functions, Triggers and EventSources."""

from __future__ import annotations

import argparse

from ripple.controller.config import DEFAULT_RUNTIME_IMAGE
from ripple.controller.operator import OperatorOptions, run_operator

__all__ = ["run"]


async def run(args: argparse.Namespace) -> int:
    await run_operator(OperatorOptions(
        args.nats, args.ingress_url, args.runtime_image or DEFAULT_RUNTIME_IMAGE, tuple(args.namespace),
        args.webhook_host, args.webhook_port, args.webhook_cert, args.webhook_key, args.webhook_service,
        args.liveness, args.broker_replicas,
    ))  # fmt: skip
    return 0
