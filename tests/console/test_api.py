"""The flow page's API against a real nats-server: assets only from the package, bounded live streams, event
histories, dead letters, and a redrive that only the page's own origin may ask for."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import pytest
from yarl import URL

from ripple.api.loading import load_manifests
from ripple.console import app as console_app
from ripple.console import create_console_app
from ripple.events.extensions import ERROR_TRIGGER, stamp_arrival
from ripple.local.console import LocalConsoleSource
from ripple.store import EventStore, subjects
from tests.support import event, eventually, serve

MANIFEST = """
apiVersion: ripple.dev/v1alpha1
kind: Trigger
metadata: {name: audit}
spec:
  subscriber: {uri: "http://127.0.0.1:9/"}
"""


async def no_counts() -> dict:
    return {"triggers": {}, "functions": {}, "flows": {}}


@pytest.fixture
async def page(tmp_path: Path, store: EventStore):
    (tmp_path / "m.yaml").write_text(MANIFEST)
    source = LocalConsoleSource(load_manifests([tmp_path / "m.yaml"]), store, no_counts)
    from aiohttp import web

    root, console = web.Application(), create_console_app(source)
    root.add_subapp("/ui/", console)
    async with serve(root) as url, aiohttp.ClientSession() as http:
        # The feed takes only what is stored once it follows the broker: wait for that, as the page cannot.
        await eventually(lambda: ("default", "default") in console[console_app.FEED_KEY].followed)
        yield url + "/ui", http


async def test_the_page_and_its_assets_come_from_the_package(page):
    url, http = page
    async with http.get(f"{url}/") as answer:
        assert answer.status == 200 and answer.content_type == "text/html"
        assert "default-src 'self'" in answer.headers["Content-Security-Policy"]
        assert 'src="assets/app.js"' in await answer.text()
    async with http.get(f"{url}/assets/vendor/htm-preact.module.js") as answer:
        assert answer.status == 200 and answer.content_type == "text/javascript"
    for name in ("nothing.js", "..%2Fapp.py", "vendor%2F..%2F..%2Fapp.py", "index.html%00"):
        async with http.get(URL(f"{url}/assets/{name}", encoded=True)) as answer:
            assert answer.status == 404, name


async def test_a_snapshot_names_the_topology(page):
    url, http = page
    async with http.get(f"{url}/api/snapshot") as answer:
        snapshot = await answer.json()
    assert snapshot["brokers"] == [{"id": "default/default", "stored": 0, "deadLetters": 0}]
    (trigger,) = snapshot["triggers"]
    assert trigger["id"] == "default/audit" and trigger["subscriber"] == "http://127.0.0.1:9/"
    assert trigger["filter"] == "every event"


async def test_the_stream_sends_snapshots_and_new_events(page, store):
    url, http = page
    async with http.get(f"{url}/api/stream") as answer:
        assert answer.headers["Content-Type"] == "text/event-stream"
        kinds = []
        await store.publish_event("default", "default", stamp_arrival(event("e-1", type="order.placed")))
        async with asyncio.timeout(10):
            async for line in answer.content:
                text = line.decode().strip()
                if text.startswith("event: "):
                    kinds.append(text[7:])
                if text.startswith("data: ") and kinds[-1] == "events" and "e-1" in text:
                    (summary,) = json.loads(text[6:])
                    assert summary["broker"] == "default/default" and summary["type"] == "order.placed"
                    break
        assert kinds[:2] == ["events", "snapshot"]


async def test_live_streams_are_bounded(page, monkeypatch):
    url, http = page
    monkeypatch.setattr(console_app, "MAX_STREAMS", 1)
    async with http.get(f"{url}/api/stream") as first:
        await first.content.readline()
        async with http.get(f"{url}/api/stream") as second:
            assert second.status == 503 and "at most 1 live views" in (await second.json())["error"]


async def test_an_unknown_event_is_404_and_an_oversized_id_400(page):
    url, http = page
    async with http.get(f"{url}/api/events/never-sent") as answer:
        assert answer.status == 404
    async with http.get(f"{url}/api/events/{'x' * 1100}") as answer:
        assert answer.status == 400


async def test_a_redrive_needs_the_pages_origin_and_a_well_formed_body(page, store):
    url, http = page
    letter = event("lost-1", type="order.placed").with_attributes(**{ERROR_TRIGGER: "default/audit"})
    await store.store_dead_letter("default", "default", "audit", letter, delivery_id="1")
    host = url.split("://", 1)[1].split("/", 1)[0]
    body = {"broker": "default/default", "sequence": 1, "trigger": "audit"}
    async with http.post(f"{url}/api/dlq/redrive", json=body) as answer:
        assert answer.status == 403, "no Origin: not from the page"
    async with http.post(f"{url}/api/dlq/redrive", json=body, headers={"Origin": "http://evil.example"}) as answer:
        assert answer.status == 403
    same = {"Origin": f"http://{host}"}
    for bad in ({"broker": "default/default"}, {"broker": "x/../y", "sequence": 1},
                {"broker": "other/b", "sequence": 1},
                {"broker": "default/default", "sequence": 1, "trigger": "Not A Name"}):
        async with http.post(f"{url}/api/dlq/redrive", json=bad, headers=same) as answer:
            assert answer.status == 400, bad
    async with http.post(f"{url}/api/dlq/redrive", data="{}", headers={**same, "Content-Type": "text/plain"}) as answer:
        assert answer.status == 400
    async with http.get(f"{url}/api/dlq") as answer:
        (listed,) = (await answer.json())["deadLetters"]
    assert listed["id"] == "lost-1" and listed["trigger"] == "default/audit"
    async with http.post(f"{url}/api/dlq/redrive", json=body, headers=same) as answer:
        assert answer.status == 200 and (await answer.json()) == {"redriven": 1, "id": "lost-1"}
    async with http.post(f"{url}/api/dlq/redrive", json=body, headers=same) as answer:
        assert answer.status == 404, "a dead letter is redriven once"
    redriven = await store.js.get_msg(subjects.stream_name("default", "default"), 1)
    assert redriven.subject == subjects.redrive_subject("default", "default", "audit")


async def test_pages_share_one_snapshot_a_second(tmp_path: Path, store: EventStore):
    (tmp_path / "m.yaml").write_text(MANIFEST)
    taken = []

    async def counts() -> dict:
        taken.append(1)
        return await no_counts()

    from aiohttp import web

    root = web.Application()
    root.add_subapp("/ui/", create_console_app(LocalConsoleSource(load_manifests([tmp_path / "m.yaml"]), store,
                                                                  counts)))
    async with serve(root) as url, aiohttp.ClientSession() as http:
        for _ in range(5):
            async with http.get(f"{url}/ui/api/snapshot") as answer:
                assert answer.status == 200
    assert len(taken) == 1
