"""``ripple dispatcher``: the triggers of manifests (with fixed Function URLs), or of the cluster."""

from __future__ import annotations

import argparse
from collections.abc import Mapping

from ripple._aio import wait_for_signal
from ripple.api.loading import Manifests, load_manifests
from ripple.api.models import Parallel, Sequence
from ripple.cli.health import run_component
from ripple.cli.logs import announce, configure_logging
from ripple.cli.parser import namespaced
from ripple.dispatch import Dispatcher
from ripple.dispatch.resolve import static_resolver
from ripple.store import EventStore
from ripple.store.records import RecordSettings

__all__ = ["record_settings", "run", "run_cluster_dispatcher", "run_dispatcher"]


def record_settings(args: argparse.Namespace) -> RecordSettings:
    """The delivery history's retention from ``--records-max-age`` and ``--records-max-bytes``."""
    defaults = RecordSettings()
    try:
        return RecordSettings(max_age=args.records_max_age or defaults.max_age,
                              max_bytes=args.records_max_bytes or defaults.max_bytes)
    except ValueError as exc:
        raise SystemExit(f"ripple: {exc}") from None


async def run(args: argparse.Namespace) -> int:
    configure_logging(every_delivery=args.log_deliveries)
    records = record_settings(args)
    if args.kubernetes:
        await run_cluster_dispatcher(args.nats, readiness=args.readiness, activation_timeout=args.activation_timeout,
                                     health_port=args.health_port, autoscale=not args.no_autoscaler, records=records)
        return 0
    if not args.paths:
        raise SystemExit("ripple dispatcher: give manifest paths or --kubernetes")
    urls = {namespaced(key): url for key, url in args.function_url}
    await run_dispatcher(args.nats, load_manifests(args.paths), urls, records=records)
    return 0


async def run_cluster_dispatcher(
    nats_url: str, *, readiness: str, activation_timeout: float, health_port: int | None = None,
    autoscale: bool = True, records: RecordSettings | None = None,
) -> None:
    from ripple.cluster import ClusterDispatcher
    from ripple.kube.client import load_kube_config

    store = await EventStore.connect(nats_url, name="ripple-dispatcher")
    cluster = ClusterDispatcher(store, await load_kube_config(), readiness=readiness,
                                activation_timeout=activation_timeout, autoscale=autoscale, records=records)
    await run_component(store, cluster.run(), "dispatcher watching the cluster's triggers and functions",
                                 health_port, cluster.healthy)


async def run_dispatcher(nats_url: str, manifests: Manifests, function_urls: Mapping[tuple[str, str], str], *,
                         records: RecordSettings | None = None) -> None:
    store = await EventStore.connect(nats_url, name="ripple-dispatcher")
    await store.ensure_brokers(manifests.brokers)
    dispatcher = Dispatcher(store, static_resolver(function_urls), records=records)
    flows: list[Sequence | Parallel] = [*manifests.sequences.values(), *manifests.parallels.values()]
    await dispatcher.apply(manifests.triggers.values(), flows)
    announce(f"dispatcher running {len(dispatcher.stats())} triggers and {len(flows)} sequences and parallels")
    try:
        await wait_for_signal()
    finally:
        await dispatcher.close()
        await store.close()
