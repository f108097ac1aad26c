"""The cluster's flow page source: the topology from watch events (fed as the watch hands them over), a trigger's
backlog from real JetStream, and the delivery counts read from dispatchers' real ``/metrics`` pages."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, generate_latest

from ripple.cluster.console import ClusterConsoleSource, delivery_counts
from ripple.events.extensions import stamp_arrival
from ripple.store import EventStore
from tests.cluster.test_dataplane import obj
from tests.support import event, serve


def metrics_page(counts: dict[tuple[str, str], int]) -> str:
    """A dispatcher's page: the same series as ``ripple.metrics.DELIVERIES``, in a registry of its own."""
    registry = CollectorRegistry()
    deliveries = Counter("ripple_deliveries_total", "Delivery attempts", ["trigger", "outcome"], registry=registry)
    for (trigger, outcome), value in counts.items():
        deliveries.labels(trigger, outcome).inc(value)
    return generate_latest(registry).decode()


def test_delivery_counts_sum_every_dispatchers_page():
    first = metrics_page({("shop/orders", "ack"): 5, ("shop/orders", "retry"): 2})
    second = metrics_page({("shop/orders", "ack"): 3, ("shop/orders", "dead-letter"): 1, ("shop/audit", "ack"): 7})
    assert delivery_counts([first, second, ""]) == {
        "shop/orders": {"delivered": 8, "retried": 2, "deadLettered": 1},
        "shop/audit": {"delivered": 7, "retried": 0, "deadLettered": 0},
    }


async def test_a_snapshot_draws_the_watched_objects_with_their_counts(api, store: EventStore):
    page = metrics_page({("default/orders", "ack"): 4, ("default/orders", "dead-letter"): 1})

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(text=page, content_type="text/plain")

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    async with serve(app) as url:
        source = ClusterConsoleSource(store, api, dispatchers=url.split("://", 1)[1])
        await source.objects["Broker"]._event("ADDED", obj("Broker", "default", spec={}))
        await source.objects["Trigger"]._event("ADDED", obj("Trigger", "orders", spec={
            "filter": {"attributes": {"type": "order.placed"}},
            "subscriber": {"ref": {"kind": "Function", "name": "ship"}}}))
        await source.objects["Function"]._event("ADDED", obj("Function", "ship", spec={"handler": "ship:handle",
                                                                                         "source": {"path": "."}}))
        await store.ensure_trigger_consumer(next(iter(source.objects["Trigger"].items.values())))
        for n in range(3):
            await store.publish_event("default", "default", stamp_arrival(event(f"e{n}", type="order.placed")))
        snapshot = await source.snapshot()
    assert source.brokers() == [("default", "default")]
    assert snapshot["brokers"] == [{"id": "default/default", "stored": 3, "deadLetters": 0}]
    (trigger,) = snapshot["triggers"]
    assert trigger["subscriber"] == "Function default/ship" and trigger["filter"] == "type=order.placed"
    assert (trigger["pending"], trigger["delivered"], trigger["deadLettered"]) == (3, 4, 1)
    assert snapshot["functions"] == [{"id": "default/ship", "desired": None, "replicas": None, "ready": 0,
                                      "demand": None, "coldStarts": None, "lastColdStartSeconds": None}]
