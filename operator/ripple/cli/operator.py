"""``ripple operator``: the Kopf operator for Brokers, Functions, Triggers and EventSources."""

from __future__ import annotations

import argparse
import logging

from ripple.controller.config import DEFAULT_RUNTIME_IMAGE
from ripple.controller.leader import LeadershipLost
from ripple.controller.operator import OperatorOptions, run_operator

__all__ = ["run"]

log = logging.getLogger(__name__)


async def run(args: argparse.Namespace) -> int:
    logging.getLogger("ripple.controller.leader").setLevel(logging.INFO)  # who leads is worth a line
    try:
        await run_operator(OperatorOptions(
            args.nats, args.ingress_url, args.runtime_image or DEFAULT_RUNTIME_IMAGE, tuple(args.namespace),
            args.webhook_host, args.webhook_port, args.webhook_cert, args.webhook_key, args.webhook_service,
            args.liveness, args.broker_replicas, args.leader_election, args.webhook_configuration,
            args.log_format,
        ))  # fmt: skip
    except LeadershipLost as exc:
        log.error("%s; exiting so that this pod starts again as a standby", exc)
        return 1
    return 0
