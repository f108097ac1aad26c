"""Local mode's EventSources: every source of the manifests, on the ingress's server and under supervision.

Sinks are resolved as local mode resolves a trigger's subscriber: a Broker is this process's JetStream (an
event is accepted once stored), a Function its ready replica (woken from zero if need be), a URI itself. A
source's dead letters go to its ``deadLetterSink``, else to the dead-letter stream of its sink broker (the
namespace's ``default`` broker when the sink is not a broker), as ``_source-<name>``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import aiohttp
from aiohttp import web

from ripple.api.durations import seconds
from ripple.api.loading import Manifests
from ripple.api.models import Destination, EventSource, SecretKeyRef
from ripple.api.models import Sink as SinkSpec
from ripple.dispatch.resolve import Resolver
from ripple.kube.client import load_kube_config
from ripple.signing import DeliverySigner, function_audience, source_subject
from ripple.sources.adapter import Adapter, SecretLookup, SecretMissing, endpoint_path, stream_keeper
from ripple.sources.sink import HttpSink, Sink, StoreSink
from ripple.sources.storage import checkpoint_bucket
from ripple.store import EventStore
from ripple.supervision import Supervisor

__all__ = ["LocalSources", "webhook_path"]



def webhook_path(source: EventSource) -> str:
    """Where local mode serves a webhook (or storage notifications): ``/sources/<namespace>/<name>``, plus
    ``spec.webhook.path``."""
    path = endpoint_path(source)
    suffix = "" if path == "/" else path
    return f"/sources/{source.namespace}/{source.name}{suffix}"


class LocalSources:
    def __init__(self, manifests: Manifests, store: EventStore, session: aiohttp.ClientSession, resolve: Resolver,
                 *, max_body: int, kubeconfig_available: bool, signer: DeliverySigner | None = None) -> None:
        self.signer = signer
        """Signs what a source sends to a Function, as a trigger's deliveries are (:mod:`ripple.signing`)."""
        self.manifests = manifests
        self.store = store
        self.session = session
        self.resolve = resolve
        self.max_body = max_body
        self.supervisor = Supervisor()
        self.adapters: dict[tuple[str, str], Adapter] = {}
        self.kubeconfig_available = kubeconfig_available
        for key, source in sorted(manifests.event_sources.items()):
            self.adapters[key] = self._adapter(source)

    def _secret(self, namespace: str) -> SecretLookup:
        def lookup(ref: SecretKeyRef) -> bytes:
            secret = self.manifests.secrets.get((namespace, ref.name))
            if secret is None or ref.key not in secret.data:
                raise SecretMissing(f"no key '{ref.key}' in Secret '{namespace}/{ref.name}'")
            return secret.data[ref.key]
        return lookup

    def _sink(self, destination: SinkSpec | Destination, namespace: str, timeout: float, structured: bool,
              source: str) -> Sink:
        if isinstance(destination, SinkSpec) and destination.ref is not None and destination.ref.kind == "Broker":
            broker_namespace, broker = destination.ref.key(namespace)
            return StoreSink(self.store, broker_namespace, broker)
        ref = destination.ref
        if destination.uri is not None:
            return HttpSink(self.session, destination.uri, timeout=timeout, structured=structured)
        assert ref is not None
        target = ref.key(namespace)

        async def url() -> str:
            return await self.resolve(destination, namespace)

        signer = self.signer

        async def authorization() -> str | None:
            if signer is None:
                return None
            return "Bearer " + signer.token(function_audience(*target), source_subject(namespace, source))

        return HttpSink(self.session, url, timeout=timeout, structured=structured,
                        name=f"function {target[0]}/{target[1]}", authorization=authorization)

    def _adapter(self, source: EventSource) -> Adapter:
        delivery = source.spec.delivery
        timeout, structured = seconds(delivery.timeout), delivery.format == "json"
        sink = self._sink(source.spec.sink, source.namespace, timeout, structured, source.name)
        dead = delivery.dead_letter_sink
        dead_sink = None if dead is None else self._sink(dead, source.namespace, timeout, structured, source.name)
        async def store() -> EventStore:
            return self.store

        async def checkpoints() -> object:
            return await checkpoint_bucket(self.store.js)

        return Adapter(source, sink, dead_letter_sink=dead_sink, keep=stream_keeper(source, store),
                       secrets=self._secret(source.namespace), kube_api=load_kube_config, checkpoints=checkpoints)

    def routes(self) -> list[web.RouteDef]:
        """The webhook endpoints, for the ingress's server (a missing Secret refuses the start, naming it)."""
        routes = []
        for adapter in self.adapters.values():
            if adapter.serves_http:
                routes.append(web.route("*", webhook_path(adapter.source), adapter.endpoint(self.max_body).handle))
        return routes

    def refusals(self) -> list[str]:
        """Why some sources cannot run here; ``ripple dev`` refuses to start while there are any."""
        problems = []
        for adapter in self.adapters.values():
            if adapter.kind == "kubernetes" and not self.kubeconfig_available:
                problems.append(f"EventSource '{adapter.name}': a Kubernetes source needs a kubeconfig "
                                f"(set KUBECONFIG or create ~/.kube/config); local mode has none")
        return problems

    def start(self) -> None:
        for adapter in self.adapters.values():
            if not adapter.serves_http:
                self.supervisor.start(adapter.name, adapter.run, kind=f"source-{adapter.kind}")

    def ready_lines(self, base_url: str) -> Iterable[str]:
        """``source ready: <namespace>/<name> <kind> [<url>]``, one per source that runs."""
        for adapter in self.adapters.values():
            if adapter.serves_http:
                yield f"source ready: {adapter.name} {adapter.kind} {base_url}{webhook_path(adapter.source)}"
                webhook = adapter.source.spec.webhook
                if webhook is not None and webhook.signature is None:
                    yield f"source {adapter.name}: the webhook is open (no spec.webhook.signature): anyone can send"
            else:
                yield f"source ready: {adapter.name} {adapter.kind}"

    def status(self) -> dict[str, Any]:
        states = {state.name: state for state in self.supervisor.states()}
        result = {}
        for adapter in self.adapters.values():
            entry = adapter.status()
            state = states.get(adapter.name)
            if state is not None and state.last_error and not entry["lastError"]:
                entry["lastError"] = state.last_error
            result[adapter.name] = entry
        return result

    async def close(self) -> None:
        await self.supervisor.close()
