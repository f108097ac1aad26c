"""``ripple source run``: one EventSource's adapter in its own Deployment, as the operator makes it.

The operator hands the adapter everything resolved: the EventSource itself (``RIPPLE_EVENTSOURCE``, JSON), the
sink's URL (``status.sinkUri``), the dead-letter sink's URL, the Secrets it names mounted as files
(``<secrets dir>/<secret name>/<key>``) and NATS, for the dead-letter stream of the broker the source feeds. The
adapter runs on its own ServiceAccount, which may do no more than the source needs.

It serves ``/-/health`` (503 while its reader keeps failing, so Kubernetes restarts it), ``/metrics`` and, for
a webhook source, the webhook at ``spec.webhook.path``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from kubernetes_asyncio import client

from ripple._aio import wait_for_signal
from ripple.api.durations import seconds
from ripple.api.models import GROUP, VERSION, EventSource, SecretKeyRef
from ripple.ingress.app import error
from ripple.kube.client import load_kube_config
from ripple.metrics import serve_metrics
from ripple.serving import start_site
from ripple.sources.adapter import Adapter, SecretLookup, SecretMissing, endpoint_path, stream_keeper
from ripple.sources.sink import (
    DEAD_LETTER_EXCHANGE_ENV,
    DEAD_LETTER_TOKEN_ENV,
    SINK_TOKEN_ENV,
    TOKEN_EXCHANGE_ENV,
    HttpSink,
    sink_authorization,
)
from ripple.sources.storage import checkpoint_bucket
from ripple.store import EventStore
from ripple.supervision import Supervisor
from ripple.tls import TlsFiles

__all__ = ["PROGRESS_EVERY", "READY", "SECRETS_DIR", "AdapterOptions", "file_secrets", "report_progress",
           "run_source_adapter"]

SECRETS_DIR = Path("/var/run/ripple/secrets")
READY = "source adapter listening on "


@dataclass(frozen=True)
class AdapterOptions:
    source: EventSource
    sink_url: str
    dead_letter_sink_url: str | None = None
    secrets_dir: Path = SECRETS_DIR
    nats_url: str | None = None
    host: str = "0.0.0.0"
    port: int = 8080
    max_body: int = 1024 * 1024
    report_progress: bool = False
    """Patch the EventSource's ``status.progress`` (what the operator's Deployment asks for)."""
    tls: TlsFiles | None = None
    """Serve the webhook (and health) over HTTPS with this certificate (``ripple source run --tls-cert``)."""


def file_secrets(directory: Path) -> SecretLookup:
    """Secret keys read from files, as Kubernetes mounts a Secret volume (one directory per Secret)."""

    def lookup(ref: SecretKeyRef) -> bytes:
        path = directory / ref.name / ref.key
        try:
            return path.read_bytes()
        except OSError:
            raise SecretMissing(f"no key '{ref.key}' in Secret '{ref.name}' (nothing mounted at {path})") from None

    return lookup


async def run_source_adapter(options: AdapterOptions) -> int:
    source = options.source
    delivery = source.spec.delivery
    timeout, structured = seconds(delivery.timeout), delivery.format == "json"
    stores: list[EventStore] = []
    """NATS, connected the first time a dead letter needs the stream (most adapters never do)."""
    supervisor = Supervisor()
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
        async def nats_store() -> EventStore:
            if options.nats_url is None:
                raise SecretMissing("this source needs NATS (--nats) for its checkpoint")
            if not stores:
                stores.append(await EventStore.connect(options.nats_url, name=f"ripple-source-{source.name}"))
            return stores[0]

        async def checkpoints() -> object:
            return await checkpoint_bucket((await nats_store()).js)

        dead_sink = None
        if options.dead_letter_sink_url is not None:
            dead_sink = HttpSink(session, options.dead_letter_sink_url, timeout=timeout, structured=structured)
            dead_sink.authorization = sink_authorization(
                session, os.environ.get(DEAD_LETTER_TOKEN_ENV), os.environ.get(DEAD_LETTER_EXCHANGE_ENV),
            ) or dead_sink.authorization
        sink = HttpSink(session, options.sink_url, timeout=timeout, structured=structured)
        sink.authorization = sink_authorization(
            session, os.environ.get(SINK_TOKEN_ENV), os.environ.get(TOKEN_EXCHANGE_ENV)) or sink.authorization
        adapter = Adapter(source, sink,
                          dead_letter_sink=dead_sink, keep=stream_keeper(source, nats_store),
                          secrets=file_secrets(options.secrets_dir),
                          kube_api=load_kube_config, checkpoints=checkpoints)

        async def health(request: web.Request) -> web.Response:
            healthy = supervisor.healthy()
            return web.json_response({"running": healthy, **adapter.status()}, status=200 if healthy else 503)

        app = web.Application(client_max_size=options.max_body, handler_args={"auto_decompress": False})
        app.router.add_get("/-/health", health)
        app.router.add_get("/metrics", serve_metrics)
        if adapter.serves_http:
            app.router.add_route("*", endpoint_path(source), adapter.endpoint(options.max_body).handle)
        app.router.add_route("*", "/{path:.*}", _not_found)
        runner = await start_site(app, options.host, options.port, name="source", tls=options.tls)
        print(f"{READY}{options.host}:{options.port} ({source.namespace}/{source.name} {adapter.kind})", flush=True)
        try:
            if not adapter.serves_http:
                supervisor.start(adapter.name, adapter.run, kind=f"source-{adapter.kind}")
            if options.report_progress and adapter.kind in ("postgres", "storage"):
                supervisor.start(f"{adapter.name} progress", lambda: report_progress(adapter), kind="source-status")
            await wait_for_signal()
        finally:
            await runner.cleanup()
            await supervisor.close()
            for store in stores:
                with contextlib.suppress(Exception):
                    await store.close()
    return 0


PROGRESS_EVERY = 5.0
"""Seconds between looks at a PostgreSQL or storage source's progress; its status is patched only on a change."""


# Any: the client's stubs do not declare _content_type, which its methods accept.
MERGE_PATCH: dict[str, Any] = {"_content_type": "application/merge-patch+json", "_request_timeout": 30}
PROGRESS_FIELDS = ("slot", "confirmedLsn", "lagBytes", "objects", "lastCheckpoint")


async def report_progress(adapter: Adapter, every: float = PROGRESS_EVERY) -> None:
    """Patch ``status.progress`` of the adapter's own EventSource (its Role allows that one object only)."""
    source = adapter.source
    api = await load_kube_config()
    try:
        custom = client.CustomObjectsApi(api)
        last: dict[str, object] | None = None
        while True:
            status = adapter.status()
            progress: dict[str, object] = {k: status[k] for k in PROGRESS_FIELDS if k in status}
            if progress != last:
                await custom.patch_namespaced_custom_object_status(
                    GROUP, VERSION, source.namespace, "eventsources", source.name, {"status": {"progress": progress}},
                    **MERGE_PATCH)
                last = progress
            await asyncio.sleep(every)
    finally:
        await api.close()


async def _not_found(request: web.Request) -> web.Response:
    return error(404, "Not Found")
