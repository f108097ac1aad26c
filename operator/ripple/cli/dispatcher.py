"""``ripple dispatcher``: the triggers of manifests (with fixed Function URLs), or of the cluster."""

from __future__ import annotations

import argparse
from collections.abc import Mapping

from ripple._aio import wait_for_signal
from ripple.api.loading import Manifests, load_manifests
from ripple.api.models import Parallel, Sequence
from ripple.cli.health import run_component, serve_health
from ripple.cli.logs import announce, configure_logging
from ripple.cli.parser import namespaced
from ripple.dispatch import Dispatcher
from ripple.dispatch.fanout import manifests_over_fanout
from ripple.dispatch.resolve import static_resolver
from ripple.signing import DeliverySigner, KeyRing, jwks_route
from ripple.store import EventStore
from ripple.store.keys import SharedKeys, sharing_secret
from ripple.store.records import RecordSettings

__all__ = ["record_settings", "run", "run_cluster_dispatcher", "run_dispatcher", "signing_keys"]


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
    manifests = load_manifests(args.paths)
    over = manifests_over_fanout(manifests.triggers.values(), args.max_fanout)
    if over is not None:
        raise SystemExit(f"ripple dispatcher: {over}")
    await run_dispatcher(args.nats, manifests, urls, records=records, health_port=args.health_port)
    return 0


async def run_cluster_dispatcher(
    nats_url: str, *, readiness: str, activation_timeout: float, health_port: int | None = None,
    autoscale: bool = True, records: RecordSettings | None = None,
) -> None:
    from ripple.cluster import ClusterDispatcher
    from ripple.cluster.exchange import TokenExchange
    from ripple.kube.client import Kube, load_kube_config
    from ripple.kube.tokens import KubeTokenReviewer

    store = await EventStore.connect(nats_url, name="ripple-dispatcher")
    keys = await signing_keys(store)
    api = await load_kube_config()
    signer = DeliverySigner(keys.ring)
    cluster = ClusterDispatcher(store, api, readiness=readiness, activation_timeout=activation_timeout,
                                autoscale=autoscale, records=records, signer=signer)
    exchange = TokenExchange(Kube(api), signer, KubeTokenReviewer(api))
    try:
        await run_component(store, cluster.run(), "dispatcher watching the cluster's triggers and functions",
                            health_port, cluster.healthy, [jwks_route(keys.jwks), exchange.route()])
    finally:
        await keys.close()


async def signing_keys(store: EventStore) -> SharedKeys:
    """This dispatcher's delivery-token keys, its first one published before anything is delivered."""
    try:
        secret = sharing_secret()
    except ValueError as exc:
        raise SystemExit(f"ripple: {exc}") from None
    keys = SharedKeys(store, KeyRing(), secret)
    await keys.start()
    return keys


async def run_dispatcher(nats_url: str, manifests: Manifests, function_urls: Mapping[tuple[str, str], str], *,
                         records: RecordSettings | None = None, health_port: int | None = None) -> None:
    store = await EventStore.connect(nats_url, name="ripple-dispatcher")
    await store.ensure_brokers(manifests.brokers)
    keys = await signing_keys(store)
    dispatcher = Dispatcher(store, static_resolver(function_urls), records=records,
                            signer=DeliverySigner(keys.ring))
    flows: list[Sequence | Parallel] = [*manifests.sequences.values(), *manifests.parallels.values()]
    await dispatcher.apply(manifests.triggers.values(), flows)
    health = None if health_port is None else await serve_health(
        store, dispatcher.healthy, "127.0.0.1", health_port, [jwks_route(keys.jwks)])
    announce(f"dispatcher running {len(dispatcher.stats())} triggers and {len(flows)} sequences and parallels")
    try:
        await wait_for_signal()
    finally:
        if health is not None:
            await health.cleanup()
        await dispatcher.close()
        await keys.close()
        await store.close()
