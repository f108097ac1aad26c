"""Running one data-plane component on its own (``ripple ingress``, ``ripple dispatcher``) until signalled."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from aiohttp import web

from ripple.api.loading import Manifests
from ripple.api.models import Destination
from ripple.dispatch import Dispatcher, Resolver, Unresolvable
from ripple.ingress.app import IngressSettings, create_ingress_app
from ripple.metrics import serve_metrics
from ripple.serving import start_site
from ripple.store import EventStore
from ripple.supervision import Supervisor


async def wait_for_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


async def ensure_brokers(store: EventStore, manifests: Manifests) -> None:
    for (namespace, name), broker in manifests.brokers.items():
        await store.ensure_broker(namespace, name, broker.spec)


async def run_ingress(
    nats_url: str, manifests: Manifests | None, *, host: str, port: int, max_body: int
) -> None:
    """The ingress for the brokers in ``manifests``, or for the cluster's Brokers (watched) when it is None."""
    store = await EventStore.connect(nats_url, name="ripple-ingress")
    supervisor = Supervisor()
    brokers: Callable[[str, str], bool]
    if manifests is None:
        from ripple.cluster import ClusterBrokers, load_kube_config

        cluster_brokers = ClusterBrokers(await load_kube_config())
        supervisor.start("watch brokers", cluster_brokers.run, kind="watch")
        brokers = cluster_brokers
    else:
        await ensure_brokers(store, manifests)
        known = manifests.brokers
        brokers = lambda ns, b: (ns, b) in known  # noqa: E731
    settings = IngressSettings(brokers=brokers, max_body=max_body, healthy=supervisor.healthy)
    app = create_ingress_app(store, settings)
    runner = await start_site(app, host, port, name="ingress")
    print(f"ingress listening on http://{host}:{port}", flush=True)
    try:
        await wait_for_signal()
    finally:
        await supervisor.close()
        await runner.cleanup()
        await store.close()


def static_resolver(function_urls: Mapping[tuple[str, str], str]) -> Resolver:
    """Resolve Function references from a fixed table (``--function-url ns/name=URL``)."""

    async def resolve(destination: Destination, namespace: str) -> str:
        if destination.uri is not None:
            return destination.uri
        assert destination.ref is not None
        key = (destination.ref.namespace or namespace, destination.ref.name)
        if key not in function_urls:
            raise Unresolvable(f"no URL known for Function '{key[0]}/{key[1]}'")
        return function_urls[key]

    return resolve


async def serve_health(store: EventStore, alive: Callable[[], bool], host: str, port: int) -> web.AppRunner:
    """``GET /-/health`` (200 while NATS is connected and the component's loops run, else 503) and ``/metrics``."""

    async def health(request: web.Request) -> web.Response:
        connected, running = store.connected, alive()
        return web.json_response({"nats": connected, "running": running}, status=200 if connected and running else 503)

    app = web.Application()
    app.router.add_get("/-/health", health)
    app.router.add_get("/metrics", serve_metrics)
    return await start_site(app, host, port, name="health")


async def run_cluster_dispatcher(
    nats_url: str, *, readiness: str, activation_timeout: float, health_port: int | None = None,
    autoscale: bool = True,
) -> None:
    from ripple.cluster import ClusterDispatcher, load_kube_config

    store = await EventStore.connect(nats_url, name="ripple-dispatcher")
    cluster = ClusterDispatcher(store, await load_kube_config(), readiness=readiness,
                                activation_timeout=activation_timeout, autoscale=autoscale)
    await _run_cluster_component(store, cluster.run(), "dispatcher watching the cluster's triggers and functions",
                                 health_port, cluster.healthy)


async def run_cluster_autoscaler(nats_url: str, *, health_port: int | None = None) -> None:
    from ripple.cluster import ClusterAutoscaler, load_kube_config

    store = await EventStore.connect(nats_url, name="ripple-autoscaler")
    cluster = ClusterAutoscaler(store, await load_kube_config())
    await _run_cluster_component(store, cluster.run(), "autoscaler watching the cluster's functions", health_port,
                                 cluster.healthy)


async def _run_cluster_component(
    store: EventStore, work: Coroutine[Any, Any, None], banner: str, health_port: int | None,
    healthy: Callable[[], bool],
) -> None:
    running = asyncio.create_task(work)
    health = None
    if health_port is not None:
        health = await serve_health(store, lambda: not running.done() and healthy(), "0.0.0.0", health_port)
    print(banner, flush=True)
    try:
        await wait_for_signal()
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        if health is not None:
            await health.cleanup()
        await store.close()


async def run_dispatcher(nats_url: str, manifests: Manifests, function_urls: Mapping[tuple[str, str], str]) -> None:
    store = await EventStore.connect(nats_url, name="ripple-dispatcher")
    await ensure_brokers(store, manifests)
    dispatcher = Dispatcher(store, static_resolver(function_urls))
    await dispatcher.apply(manifests.triggers.values())
    print(f"dispatcher running {len(dispatcher.workers)} triggers", flush=True)
    try:
        await wait_for_signal()
    finally:
        await dispatcher.close()
        await store.close()
