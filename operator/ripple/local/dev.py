"""``ripple dev``: NATS, ingress, dispatcher and functions in one process tree, from manifest files."""

from __future__ import annotations

import contextlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from ripple._aio import wait_for_signal
from ripple.api.loading import Manifests, load_manifests
from ripple.api.models import Parallel, Sequence
from ripple.console import create_console_app
from ripple.defaults import DATA_DIR, MAX_BODY, SCALE_DOWN_DELAY
from ripple.dispatch import Dispatcher
from ripple.dispatch.hops import flow_hops
from ripple.dispatch.resolve import with_addresses
from ripple.ingress.app import IngressSettings, create_ingress_app
from ripple.ingress.policies import manifest_policies
from ripple.local.console import LocalConsoleSource
from ripple.local.functions import LocalModeError, launch_specs
from ripple.local.nats_server import NatsCluster, NatsServer
from ripple.local.sources import LocalSources
from ripple.local.status import collect_status
from ripple.scaling.activator import DEFAULT_ACTIVATION_TIMEOUT, Activator
from ripple.scaling.autoscaler import Autoscaler
from ripple.scaling.local import LocalProcessBackend
from ripple.serving import start_site
from ripple.store import EventStore
from ripple.store.flows import Entry, FlowKind
from ripple.store.records import RecordSettings

__all__ = ["DevOptions", "LocalRipple", "SourceRefused", "kubeconfig_found", "run_dev"]

log = logging.getLogger(__name__)
STATE_FILE = "state.json"


class SourceRefused(LocalModeError):
    """An EventSource of the manifests cannot run in local mode; the message says which and why."""


def kubeconfig_found() -> bool:
    """Whether a kubeconfig is set (``KUBECONFIG``) or in its usual place, for Kubernetes sources."""
    paths = os.environ.get("KUBECONFIG", "").split(os.pathsep) if os.environ.get("KUBECONFIG") else []
    candidates = [Path(p) for p in paths if p] or [Path.home() / ".kube" / "config"]
    return any(path.is_file() for path in candidates)


@dataclass(frozen=True)
class DevOptions:
    paths: list[Path]
    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: Path = DATA_DIR
    max_body: int = MAX_BODY
    pool_size: int = 1
    """Warm-pool processes kept ready to become any function (0 disables the pool)."""
    activation_timeout: float = DEFAULT_ACTIVATION_TIMEOUT
    scale_down_delay: float = SCALE_DOWN_DELAY
    nats_cluster: int = 1
    """nats-servers to run as one JetStream cluster (1: a single server)."""
    records: RecordSettings = field(default_factory=RecordSettings)
    """How much delivery history (``ripple events show``) is kept."""


class LocalRipple:
    """The running local data plane; :meth:`start` brings it up, :meth:`stop` takes it down in reverse."""

    def __init__(self, manifests: Manifests, options: DevOptions) -> None:
        self.manifests = manifests
        self.options = options
        self.nats: NatsServer | NatsCluster = (
            NatsServer(options.data_dir / "nats") if options.nats_cluster == 1
            else NatsCluster(options.data_dir / "nats-cluster", options.nats_cluster))
        servers = options.nats_cluster
        too_many = [f"Broker '{ns}/{name}': spec.replicas is {b.spec.replicas}, more than the {servers} "
                    f"nats-server(s) of local mode (run ripple dev --nats-cluster {b.spec.replicas})"
                    for (ns, name), b in sorted(manifests.brokers.items()) if (b.spec.replicas or 1) > servers]
        if too_many:
            raise LocalModeError("; ".join(too_many))
        self.backend = LocalProcessBackend(
            launch_specs(manifests, options.data_dir, self.nats.url), host=options.host, pool_size=options.pool_size
        )
        try:  # a policy whose token cannot be read stops local mode before anything starts
            self.policies = manifest_policies(manifests)
        except ValueError as exc:
            raise LocalModeError(str(exc)) from None
        self.store: EventStore | None = None
        self.dispatcher: Dispatcher | None = None
        self.autoscaler: Autoscaler | None = None
        self.runner: web.AppRunner | None = None
        self.sources: LocalSources | None = None
        self.session: aiohttp.ClientSession | None = None

    @property
    def ingress_url(self) -> str:
        return f"http://{self.options.host}:{self.options.port}"

    def broker_urls(self) -> list[str]:
        return [f"{self.ingress_url}/{ns}/{name}" for ns, name in sorted(self.manifests.brokers)]

    def flows(self) -> list[Sequence | Parallel]:
        return [*self.manifests.sequences.values(), *self.manifests.parallels.values()]

    def entry(self, kind: FlowKind, namespace: str, name: str) -> Entry | None:
        """Where events sent to a Sequence or Parallel of the manifests are stored."""
        table = self.manifests.sequences if kind == "Sequence" else self.manifests.parallels
        flow = table.get((namespace, name))
        return None if flow is None else Entry(kind, namespace, name, flow.spec.broker)

    def address(self, kind: str, namespace: str, name: str) -> str | None:
        """The URL a Sequence or Parallel of the manifests is served at."""
        table = self.manifests.sequences if kind == "Sequence" else self.manifests.parallels
        if (namespace, name) not in table:
            return None
        return f"{self.ingress_url}/{namespace}/{kind.lower()}s/{name}"

    async def start(self) -> None:
        await self.nats.start()
        self.store = store = await EventStore.connect(self.nats.url, name="ripple-dev")
        await store.ensure_brokers(self.manifests.brokers)
        await self.backend.start()
        flows = self.flows()
        hops = [hop.trigger for hop in flow_hops(flows)]
        self.autoscaler = autoscaler = Autoscaler(
            store,
            self.backend,
            self.manifests.functions,
            [*self.manifests.triggers.values(), *hops],
            scale_down_delay=self.options.scale_down_delay,
        )
        activator = Activator(
            self.backend, autoscaler.activate, set(self.manifests.functions), timeout=self.options.activation_timeout
        )
        resolve = with_addresses(activator.resolve, self.address)
        self.dispatcher = dispatcher = Dispatcher(store, resolve, records=self.options.records)
        await dispatcher.apply(self.manifests.triggers.values(), flows)
        await autoscaler.start()
        self.session = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())
        self.sources = sources = LocalSources(self.manifests, store, self.session, resolve,
                                              max_body=self.options.max_body, kubeconfig_available=kubeconfig_found())
        refusals = sources.refusals()
        if refusals:
            raise SourceRefused("; ".join(refusals))
        brokers = self.manifests.brokers
        settings = IngressSettings(brokers=lambda ns, b: (ns, b) in brokers, max_body=self.options.max_body,
                                   healthy=lambda: dispatcher.healthy() and sources.supervisor.healthy(),
                                   flows=self.entry, policies=self.policies)

        async def full_status() -> dict[str, Any]:
            found = await collect_status(store, dispatcher, autoscaler, self.backend)
            return {**found, "sources": sources.status()}

        async def status(request: web.Request) -> web.Response:
            return web.json_response(await full_status())

        console = create_console_app(LocalConsoleSource(self.manifests, store, full_status))
        app = create_ingress_app(store, settings, [web.get("/-/status", status), *sources.routes()],
                                 subapps=[("/ui/", console)])
        self.runner = await start_site(app, self.options.host, self.options.port, name="ingress")
        state = {"nats": self.nats.url, "ingress": self.ingress_url, "brokers": self.broker_urls(),
                 "paths": [str(path.resolve()) for path in self.options.paths]}
        (self.options.data_dir / STATE_FILE).write_text(json.dumps(state, indent=2))
        sources.start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
        if self.sources is not None:
            await self.sources.close()
        if self.session is not None:
            await self.session.close()
        if self.autoscaler is not None:
            await self.autoscaler.stop()
        if self.dispatcher is not None:
            await self.dispatcher.close()
        await self.backend.close()
        if self.store is not None:
            with contextlib.suppress(Exception):
                await self.store.close()
        await self.nats.stop()
        with contextlib.suppress(FileNotFoundError):
            (self.options.data_dir / STATE_FILE).unlink()


async def run_dev(options: DevOptions) -> int:
    """Run until SIGINT/SIGTERM; the exit code is 0 after a clean stop."""
    manifests = load_manifests(options.paths)
    options.data_dir.mkdir(parents=True, exist_ok=True)
    local = LocalRipple(manifests, options)
    try:
        await local.start()
        print(f"ripple dev: {len(manifests.functions)} functions, {len(manifests.triggers)} triggers", flush=True)
        for url in local.broker_urls():
            print(f"broker ready: {url}", flush=True)
        assert local.sources is not None
        for line in local.sources.ready_lines(local.ingress_url):
            print(line, flush=True)
        for kind, table in (("Sequence", manifests.sequences), ("Parallel", manifests.parallels)):
            for namespace, name in sorted(table):
                print(f"{kind.lower()} ready: {local.address(kind, namespace, name)}", flush=True)
        await wait_for_signal()
        print("ripple dev: stopping", flush=True)
    finally:
        await local.stop()
    return 0
