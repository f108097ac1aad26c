"""``ripple autoscaler``: the cluster's Functions scaled with their triggers' backlog, as a component of its own."""

from __future__ import annotations

import argparse

from ripple.cli.health import run_component
from ripple.cli.logs import configure_logging
from ripple.store import EventStore

__all__ = ["run", "run_cluster_autoscaler"]


async def run(args: argparse.Namespace) -> int:
    configure_logging()
    await run_cluster_autoscaler(args.nats, health_port=args.health_port)
    return 0


async def run_cluster_autoscaler(nats_url: str, *, health_port: int | None = None) -> None:
    from ripple.cluster import ClusterAutoscaler
    from ripple.kube.client import load_kube_config

    store = await EventStore.connect(nats_url, name="ripple-autoscaler")
    cluster = ClusterAutoscaler(store, await load_kube_config())
    await run_component(store, cluster.run(), "autoscaler watching the cluster's functions", health_port,
                                 cluster.healthy)
