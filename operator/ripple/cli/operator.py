"""``ripple operator``: the Kopf operator for Brokers, Functions, Triggers and EventSources."""

from __future__ import annotations

import argparse
import logging
import os

from ripple.controller.config import DEFAULT_RUNTIME_IMAGE
from ripple.controller.leader import LeadershipLost
from ripple.controller.operator import OperatorOptions, run_operator
from ripple.controller.resources.function import DispatcherPods
from ripple.defaults import DISPATCHER_LABELS

__all__ = ["dispatcher_pods", "run"]

log = logging.getLogger(__name__)


def dispatcher_pods(args: argparse.Namespace) -> DispatcherPods | None:
    """What ``--function-network-policy`` admits, or None without it. Its namespace is never guessed: a policy
    naming the wrong one would cut every delivery off."""
    if not args.function_network_policy:
        return None
    namespace = args.dispatcher_namespace or os.environ.get("POD_NAMESPACE")
    if not namespace:
        raise ValueError("--function-network-policy needs --dispatcher-namespace (or $POD_NAMESPACE)")
    return DispatcherPods(namespace, dict(args.dispatcher_label) or dict(DISPATCHER_LABELS))


async def run(args: argparse.Namespace) -> int:
    logging.getLogger("ripple.controller.leader").setLevel(logging.INFO)  # who leads is worth a line
    try:
        dispatcher = dispatcher_pods(args)
    except ValueError as exc:
        log.error("%s", exc)
        return 2
    try:
        await run_operator(OperatorOptions(
            args.nats, args.ingress_url, args.runtime_image or DEFAULT_RUNTIME_IMAGE, tuple(args.namespace),
            args.webhook_host, args.webhook_port, args.webhook_cert, args.webhook_key, args.webhook_service,
            args.liveness, args.broker_replicas, args.leader_election, args.webhook_configuration,
            args.log_format, args.metrics_port, dispatcher, args.webhook_ca, args.max_fanout,
            delivery_auth=args.delivery_auth, delivery_keys_url=args.delivery_keys_url,
        ))  # fmt: skip
    except LeadershipLost as exc:
        log.error("%s; exiting so that this pod starts again as a standby", exc)
        return 1
    return 0
