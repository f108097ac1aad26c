"""Sources served as local mode serves them: manifests loaded from files, a real JetStream, the ingress's app."""

from __future__ import annotations

import textwrap
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from ripple.api.loading import Manifests, load_manifests
from ripple.api.models import Destination
from ripple.dispatch.resolve import Unresolvable
from ripple.events.model import CloudEvent
from ripple.ingress.app import IngressSettings, create_ingress_app
from ripple.local.sources import LocalSources
from ripple.store import EventStore, subjects
from tests.support import serve

SECRET = "s3cr3t-webhook-key-do-not-log"


async def no_functions(destination: Destination, namespace: str) -> str:
    if destination.uri is not None:
        return destination.uri
    raise Unresolvable("no functions in these tests")


@dataclass
class Served:
    url: str
    sources: LocalSources
    store: EventStore
    manifests: Manifests
    session: aiohttp.ClientSession

    async def stored(self, namespace: str = "default", broker: str = "default") -> int:
        info = await self.store.js.stream_info(subjects.stream_name(namespace, broker))
        return int(info.state.messages)

    async def events(self, namespace: str = "default", broker: str = "default") -> list[CloudEvent]:
        """Every stored event, oldest first."""
        stream = subjects.stream_name(namespace, broker)
        count = await self.stored(namespace, broker)
        return [CloudEvent.from_json_bytes((await self.store.js.get_msg(stream, seq)).data or b"")
                for seq in range(1, count + 1)]

    async def dead_letters(self, namespace: str = "default", broker: str = "default") -> int:
        info = await self.store.js.stream_info(subjects.dead_letter_stream_name(namespace, broker))
        return int(info.state.messages)


Serve = Callable[[str], "asynccontextmanager[Served]"]


@pytest.fixture
def serve_sources(store: EventStore, tmp_path: Path):  # type: ignore[no-untyped-def]
    @asynccontextmanager
    async def run(manifest: str, *, max_body: int = 1024 * 1024) -> AsyncIterator[Served]:
        path = tmp_path / "sources.yaml"
        path.write_text(textwrap.dedent(manifest))
        manifests = load_manifests([path])
        await store.ensure_brokers(manifests.brokers)
        async with aiohttp.ClientSession() as session:
            sources = LocalSources(manifests, store, session, no_functions, max_body=max_body,
                                   kubeconfig_available=False)
            settings = IngressSettings(brokers=lambda ns, b: (ns, b) in manifests.brokers, max_body=max_body)
            app = create_ingress_app(store, settings, sources.routes())
            async with serve(app) as url:
                sources.start()
                try:
                    yield Served(url, sources, store, manifests, session)
                finally:
                    await sources.close()

    return run


def secret_manifest(name: str = "hooks", key: str = "key", value: str = SECRET) -> str:
    return f"""
    apiVersion: v1
    kind: Secret
    metadata: {{name: {name}}}
    stringData: {{{key}: {value}}}
    ---
    """
