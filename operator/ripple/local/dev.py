"""``ripple dev``: NATS, ingress, dispatcher and functions in one process tree, from manifest files."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from ripple._aio import wait_for_signal
from ripple.api.loading import Manifests, load_manifests
from ripple.api.models import Parallel, Sequence
from ripple.console import create_console_app
from ripple.defaults import DATA_DIR, MAX_BATCH, MAX_BODY, MAX_FANOUT, SCALE_DOWN_DELAY
from ripple.dispatch import Dispatcher
from ripple.dispatch.fanout import manifests_over_fanout
from ripple.dispatch.hops import flow_hops
from ripple.dispatch.resolve import with_addresses
from ripple.ingress.app import IngressSettings, create_ingress_app
from ripple.ingress.limits import RateLimiter, RateSettings, broker_rate
from ripple.ingress.policies import RippleHops, manifest_policies
from ripple.local.console import LocalConsoleSource
from ripple.local.functions import LocalModeError, launch_specs
from ripple.local.nats_server import NatsCluster, NatsServer
from ripple.local.sources import LocalSources
from ripple.local.status import collect_status
from ripple.scaling.activator import DEFAULT_ACTIVATION_TIMEOUT, Activator
from ripple.scaling.autoscaler import Autoscaler
from ripple.scaling.local import LocalProcessBackend
from ripple.serving import start_site
from ripple.signing import AUTH_ENV, KEYS_ENV, AuthMode, DeliverySigner, jwks_route
from ripple.store import EventStore
from ripple.store.auth import NatsAuth
from ripple.store.flows import Entry, FlowKind
from ripple.store.records import RecordSettings
from ripple.tls import ThrowawayCa, throwaway_ca

__all__ = ["DevOptions", "LocalRipple", "SourceRefused", "kubeconfig_found", "run_dev"]

log = logging.getLogger(__name__)
STATE_FILE = "state.json"
KEYS_FILE = "delivery-keys.json"
"""The public keys of the delivery tokens, for the Functions (in the data directory)."""


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
    max_batch: int = MAX_BATCH
    """Most events in one batched request to the ingress."""
    rates: RateSettings = field(default_factory=RateSettings)
    """The ingress's rate limits: none unless asked for (a Broker's ``spec.rateLimit`` applies regardless)."""
    max_fanout: int = MAX_FANOUT
    """Most triggers of one broker an event may reach: manifests whose triggers allow more are refused."""
    tls: bool = False
    """Serve the ingress over HTTPS with a throw-away CA made in ``data_dir/tls`` (``ripple dev --tls``)."""
    delivery_auth: AuthMode = "optional"
    """What the Functions do with delivery tokens (every delivery carries one): ``optional`` (the default here, so
    that a developer may call a Function directly) checks only tokens that are sent; ``required`` is the
    cluster's default."""


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
        over = manifests_over_fanout(manifests.triggers.values(), options.max_fanout)
        if over is not None:
            raise LocalModeError(over)
        self.signer = DeliverySigner()
        # The Functions read the keys from a file, rewritten as keys are made: nothing to trust or to reach.
        self.keys_file = (options.data_dir / KEYS_FILE).resolve()
        self._key_writes: set[asyncio.Task[None]] = set()
        self.signer.ring.on_new_key = lambda key: self._spawn_key_write()
        token_env = {} if options.delivery_auth == "off" else {
            KEYS_ENV: str(self.keys_file), AUTH_ENV: options.delivery_auth}
        self.tls: ThrowawayCa | None = None
        self.client_tls: ssl.SSLContext | None = None
        self.backend = LocalProcessBackend(
            launch_specs(manifests, options.data_dir, self.nats.url, token_env), host=options.host,
            pool_size=options.pool_size,
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
        return f"{'https' if self.options.tls else 'http'}://{self.options.host}:{self.options.port}"

    def _spawn_key_write(self) -> None:
        task = asyncio.get_running_loop().create_task(self._write_keys())
        self._key_writes.add(task)
        task.add_done_callback(self._key_writes.discard)

    async def _write_keys(self) -> None:
        await asyncio.to_thread(_write_whole, self.keys_file, json.dumps(self.signer.ring.jwks()))

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
        self.signer.ring.signing_key()  # the first key, written before any Function starts
        await asyncio.gather(*self._key_writes)
        if self.options.tls:
            hosts = list(dict.fromkeys([self.options.host, "localhost", "127.0.0.1"]))
            self.tls = await asyncio.to_thread(throwaway_ca, self.options.data_dir / "tls", hosts)
            # What Ripple itself sends to the ingress (a flow's entry, a source's sink) trusts the CA too.
            self.client_tls = ssl.create_default_context()
            await asyncio.to_thread(self.client_tls.load_verify_locations, self.tls.ca)
        await self.nats.start()
        self.store = store = await EventStore.connect(self.nats.url, name="ripple-dev", auth=NatsAuth())
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
        self.dispatcher = dispatcher = Dispatcher(store, resolve, records=self.options.records, signer=self.signer,
                                                  client_tls=self.client_tls)
        await dispatcher.apply(self.manifests.triggers.values(), flows)
        await autoscaler.start()
        self.session = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar(),
                                             connector=aiohttp.TCPConnector(ssl=self.client_tls or True))
        self.sources = sources = LocalSources(self.manifests, store, self.session, resolve,
                                              max_body=self.options.max_body, kubeconfig_available=kubeconfig_found(),
                                              signer=self.signer)
        refusals = sources.refusals()
        if refusals:
            raise SourceRefused("; ".join(refusals))
        brokers = self.manifests.brokers

        async def jwks() -> dict[str, Any]:
            return self.signer.ring.jwks()

        settings = IngressSettings(brokers=lambda ns, b: (ns, b) in brokers, max_body=self.options.max_body,
                                   healthy=lambda: dispatcher.healthy() and sources.supervisor.healthy(),
                                   flows=self.entry, policies=self.policies, max_batch=self.options.max_batch,
                                   rates=RateLimiter(self.options.rates,
                                                     broker_limits=lambda ns, b: broker_rate(brokers.get((ns, b)))),
                                   hops=RippleHops(jwks))

        async def full_status() -> dict[str, Any]:
            found = await collect_status(store, dispatcher, autoscaler, self.backend)
            return {**found, "sources": sources.status()}

        async def status(request: web.Request) -> web.Response:
            return web.json_response(await full_status())

        console = create_console_app(LocalConsoleSource(self.manifests, store, full_status))

        routes = [web.get("/-/status", status), jwks_route(jwks), *sources.routes()]
        app = create_ingress_app(store, settings, routes, subapps=[("/ui/", console)])
        self.runner = await start_site(app, self.options.host, self.options.port, name="ingress",
                                       tls=None if self.tls is None else self.tls.server)
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
        if local.tls is not None:
            print(f"tls: HTTPS with a throw-away CA: trust {local.tls.ca} "
                  f"(ripple send --cacert, curl --cacert)", flush=True)
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


def _write_whole(path: Path, text: str) -> None:
    """Write ``path`` through a temporary file renamed over it: a reader never sees half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(text)
    temporary.replace(path)
