"""``ripple ingress``: the broker ingress on its own, for brokers from manifests or the cluster's Brokers."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from ripple._aio import wait_for_signal
from ripple.api.loading import Manifests, load_manifests
from ripple.cli.logs import announce
from ripple.cli.parser import tls_files
from ripple.defaults import MAX_BATCH
from ripple.ingress.app import FlowLookup, IngressSettings, create_ingress_app
from ripple.ingress.limits import BrokerLimits, RateLimiter, RateSettings, broker_rate
from ripple.ingress.policies import RippleHops, SenderCheck, manifest_policies
from ripple.serving import start_site
from ripple.signing import jwks_source
from ripple.store import EventStore
from ripple.store.flows import Entry, FlowKind
from ripple.supervision import Supervisor
from ripple.tls import TlsFiles

__all__ = ["run", "run_ingress"]


async def run(args: argparse.Namespace) -> int:
    if not args.kubernetes and not args.paths:
        raise SystemExit("ripple ingress: give manifest paths or --kubernetes")
    if args.default_policy != "open" and not args.kubernetes:
        raise SystemExit("ripple ingress: --default-policy namespace checks ServiceAccount tokens: needs --kubernetes")
    tls = tls_files(args)
    if args.tls_port is not None and tls is None:
        raise SystemExit("ripple ingress: --tls-port needs --tls-cert and --tls-key")
    manifests = None if args.kubernetes else load_manifests(args.paths)
    rates = RateSettings(broker=args.rate_limit_broker, sender=args.rate_limit_sender)
    await run_ingress(args.nats, manifests, host=args.host, port=args.port, max_body=args.max_body,
                      max_batch=args.max_batch, rates=rates, tls=tls, default_policy=args.default_policy,
                      delivery_keys=args.delivery_keys_url, tls_port=args.tls_port)
    return 0


async def run_ingress(
    nats_url: str, manifests: Manifests | None, *, host: str, port: int, max_body: int,
    max_batch: int = MAX_BATCH, rates: RateSettings | None = None, tls: TlsFiles | None = None,
    default_policy: str = "open", delivery_keys: str | None = None, tls_port: int | None = None,
) -> None:
    """The ingress for the brokers in ``manifests``, or for the cluster's Brokers (watched) when it is None.
    ``rates`` are the installation's rate limits; a Broker's ``spec.rateLimit`` applies with or without them."""
    store = await EventStore.connect(nats_url, name="ripple-ingress")
    supervisor = Supervisor()
    brokers: Callable[[str, str], bool]
    flows: FlowLookup
    policies: SenderCheck | None
    broker_limits: BrokerLimits
    if manifests is None:
        from ripple.cluster import ClusterBrokers, ClusterFlows
        from ripple.cluster.policies import ClusterPolicies
        from ripple.kube.client import load_kube_config

        api = await load_kube_config()
        cluster_brokers, cluster_flows, cluster_policies = (
            ClusterBrokers(api), ClusterFlows(api), ClusterPolicies(api, default=default_policy))
        supervisor.start("watch brokers", cluster_brokers.run, kind="watch")
        supervisor.start("watch sequences and parallels", cluster_flows.run, kind="watch")
        supervisor.start("watch event policies", cluster_policies.run, kind="watch")
        brokers, flows, policies = cluster_brokers, cluster_flows, cluster_policies
        broker_limits = lambda ns, b: broker_rate(cluster_brokers.objects.items.get((ns, b)))  # noqa: E731
    else:
        await store.ensure_brokers(manifests.brokers)
        known, sequences, parallels = manifests.brokers, manifests.sequences, manifests.parallels
        brokers = lambda ns, b: (ns, b) in known  # noqa: E731
        broker_limits = lambda ns, b: broker_rate(known.get((ns, b)))  # noqa: E731
        try:
            policies = manifest_policies(manifests)
        except ValueError as exc:
            raise SystemExit(f"ripple: {exc}") from None

        def flows(kind: FlowKind, namespace: str, name: str) -> Entry | None:
            flow = (sequences if kind == "Sequence" else parallels).get((namespace, name))
            return None if flow is None else Entry(kind, namespace, name, flow.spec.broker)
    limiter = RateLimiter(rates or RateSettings(), broker_limits=broker_limits)
    settings = IngressSettings(brokers=brokers, max_body=max_body, healthy=supervisor.healthy, flows=flows,
                               policies=policies, max_batch=max_batch, rates=limiter,
                               hops=None if delivery_keys is None else RippleHops(jwks_source(delivery_keys)))
    app = create_ingress_app(store, settings)
    runner = await start_site(app, host, port, name="ingress", tls=tls, tls_port=tls_port)
    if tls is None or tls_port is not None:
        announce(f"ingress listening on http://{host}:{port}")
    if tls is not None:
        announce(f"ingress listening on https://{host}:{port if tls_port is None else tls_port}")
    try:
        await wait_for_signal()
    finally:
        await supervisor.close()
        await runner.cleanup()
        await store.close()
