"""``ripple ingress``: the broker ingress on its own, for brokers from manifests or the cluster's Brokers."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from ripple._aio import wait_for_signal
from ripple.api.loading import Manifests, load_manifests
from ripple.cli.logs import announce
from ripple.ingress.app import FlowLookup, IngressSettings, create_ingress_app
from ripple.ingress.policies import SenderCheck, manifest_policies
from ripple.serving import start_site
from ripple.store import EventStore
from ripple.store.flows import Entry, FlowKind
from ripple.supervision import Supervisor

__all__ = ["run", "run_ingress"]


async def run(args: argparse.Namespace) -> int:
    if not args.kubernetes and not args.paths:
        raise SystemExit("ripple ingress: give manifest paths or --kubernetes")
    manifests = None if args.kubernetes else load_manifests(args.paths)
    await run_ingress(args.nats, manifests, host=args.host, port=args.port, max_body=args.max_body)
    return 0


async def run_ingress(
    nats_url: str, manifests: Manifests | None, *, host: str, port: int, max_body: int
) -> None:
    """The ingress for the brokers in ``manifests``, or for the cluster's Brokers (watched) when it is None."""
    store = await EventStore.connect(nats_url, name="ripple-ingress")
    supervisor = Supervisor()
    brokers: Callable[[str, str], bool]
    flows: FlowLookup
    policies: SenderCheck | None
    if manifests is None:
        from ripple.cluster import ClusterBrokers, ClusterFlows
        from ripple.cluster.policies import ClusterPolicies
        from ripple.kube.client import load_kube_config

        api = await load_kube_config()
        cluster_brokers, cluster_flows, cluster_policies = ClusterBrokers(api), ClusterFlows(api), ClusterPolicies(api)
        supervisor.start("watch brokers", cluster_brokers.run, kind="watch")
        supervisor.start("watch sequences and parallels", cluster_flows.run, kind="watch")
        supervisor.start("watch event policies", cluster_policies.run, kind="watch")
        brokers, flows, policies = cluster_brokers, cluster_flows, cluster_policies
    else:
        await store.ensure_brokers(manifests.brokers)
        known, sequences, parallels = manifests.brokers, manifests.sequences, manifests.parallels
        brokers = lambda ns, b: (ns, b) in known  # noqa: E731
        try:
            policies = manifest_policies(manifests)
        except ValueError as exc:
            raise SystemExit(f"ripple: {exc}") from None

        def flows(kind: FlowKind, namespace: str, name: str) -> Entry | None:
            flow = (sequences if kind == "Sequence" else parallels).get((namespace, name))
            return None if flow is None else Entry(kind, namespace, name, flow.spec.broker)
    settings = IngressSettings(brokers=brokers, max_body=max_body, healthy=supervisor.healthy, flows=flows,
                               policies=policies)
    app = create_ingress_app(store, settings)
    runner = await start_site(app, host, port, name="ingress")
    announce(f"ingress listening on http://{host}:{port}")
    try:
        await wait_for_signal()
    finally:
        await supervisor.close()
        await runner.cleanup()
        await store.close()
