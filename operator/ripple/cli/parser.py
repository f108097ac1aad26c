"""The ``ripple`` command line: its arguments only. Each command runs in its own module, ``ripple.cli.<command>``,
imported when chosen, so that ``ripple function serve`` (a Function's cold start) loads only what it needs."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from ripple.defaults import (
    ACTIVATION_TIMEOUT,
    DATA_DIR,
    DEFAULT_POLICIES,
    DELIVERY_AUTH_MODES,
    MAX_BATCH,
    MAX_BODY,
    MAX_FANOUT,
    OPERATOR_METRICS_PORT,
    WEBHOOK_CONFIGURATION,
)

if TYPE_CHECKING:
    from ripple.ingress.limits import RateLimit
    from ripple.tls import TlsFiles

__all__ = [
    "DEFAULT_DATA_DIR",
    "NATS_HELP",
    "add_tls",
    "build_parser",
    "duration",
    "key_value",
    "namespaced",
    "rate_limit",
    "tls_files",
]

DEFAULT_DATA_DIR = DATA_DIR


def key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    return key, value


def duration(text: str) -> float:
    """Seconds, from an ISO-8601 duration (``PT6H``) or a number of seconds."""
    from ripple.api.durations import seconds

    try:
        return float(text) if text.replace(".", "", 1).isdigit() else seconds(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration (PT6H, P7D, or seconds)") from exc


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def rate_limit(text: str) -> RateLimit:
    """A rate limit from ``RATE[:BURST]``: events per second, and the burst (default: one second's worth)."""
    from ripple.ingress.limits import parse_rate

    try:
        return parse_rate(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_ingress_limits(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--max-batch", type=_positive, default=MAX_BATCH, metavar="N",
                        help="most events in one batched request; more is 413 (default %(default)s)")
    parser.add_argument("--rate-limit-broker", type=rate_limit, metavar="RATE[:BURST]",
                        help="each broker takes at most RATE events per second, BURST at once (default: one "
                             "second's worth), per ingress process; more is 429 with Retry-After (default: off)")
    parser.add_argument("--rate-limit-sender", type=rate_limit, metavar="RATE[:BURST]",
                        help="each sender (the identity an EventPolicy proved, else the client address) sends at "
                             "most RATE events per second over all brokers; more is 429 (default: off)")


def add_tls(parser: argparse.ArgumentParser) -> None:
    tls = parser.add_argument_group("TLS", "serve HTTPS (only) with this certificate, reloaded when its files change")
    tls.add_argument("--tls-cert", type=Path, metavar="PEM", help="certificate (chain), e.g. a Secret's tls.crt")
    tls.add_argument("--tls-key", type=Path, metavar="PEM", help="its private key, e.g. a Secret's tls.key")
    tls.add_argument("--tls-client-ca", type=Path, metavar="PEM",
                     help="also require client certificates signed by this CA (mutual TLS)")


def tls_files(args: argparse.Namespace) -> TlsFiles | None:
    """The ``--tls-*`` options as :class:`~ripple.tls.TlsFiles`; ``SystemExit`` naming what is missing."""
    from ripple.tls import TlsFiles

    if args.tls_cert is None and args.tls_key is None:
        if args.tls_client_ca is not None:
            raise SystemExit("ripple: --tls-client-ca needs --tls-cert and --tls-key")
        return None
    if args.tls_cert is None or args.tls_key is None:
        raise SystemExit("ripple: give both --tls-cert and --tls-key")
    return TlsFiles(args.tls_cert, args.tls_key, args.tls_client_ca)


def _add_max_fanout(parser: argparse.ArgumentParser, where: str) -> None:
    parser.add_argument("--max-fanout", type=_positive, default=MAX_FANOUT, metavar="N",
                        help=f"most triggers of one broker one event may be delivered to: {where} "
                             "(default %(default)s)")


def _add_records(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--records-max-age", type=duration, metavar="DURATION",
                        help="how long the delivery history (`ripple events show`) keeps a record (default: P1D)")
    parser.add_argument("--records-max-bytes", type=int, metavar="BYTES",
                        help="the most bytes of delivery history kept, the oldest going first (default: 256 MiB)")


def namespaced(text: str) -> tuple[str, str]:
    namespace, sep, name = text.rpartition("/")
    return (namespace if sep else "default"), name


NATS_HELP = "NATS URL, or a cluster's URLs separated by commas (the client fails over between them)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ripple", description="Kubernetes-native CloudEvents on NATS JetStream")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    commands = parser.add_subparsers(dest="command", required=True)
    _add_dev(commands)
    _add_send(commands)
    _add_function(commands)
    _add_ingress(commands)
    _add_dispatcher(commands)
    _add_autoscaler(commands)
    _add_operator(commands)
    _add_crds(commands)
    _add_status(commands)
    _add_dlq(commands)
    _add_events(commands)
    _add_replay(commands)
    _add_console(commands)
    _add_source(commands)
    for command in _leaves(commands):
        command.add_argument("--log-format", choices=("text", "json"), default="text",
                             help="log lines as text (the default) or one JSON object per line")
    return parser


def _leaves(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> list[argparse.ArgumentParser]:
    """The parsers that run something (``source run``, not ``source``): an option given to a parent would be
    overwritten by its subcommand's default."""
    found = []
    for command in commands.choices.values():
        nested = [a for a in command._actions if isinstance(a, argparse._SubParsersAction)]
        found += [leaf for action in nested for leaf in _leaves(action)] if nested else [command]
    return found


def _add_dev(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    dev = commands.add_parser("dev", help="run brokers, triggers and functions locally from manifests")
    dev.add_argument("paths", nargs="+", type=Path, help="manifest files or directories")
    dev.add_argument("--host", default="127.0.0.1")
    dev.add_argument("--port", type=int, default=8080)
    dev.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    dev.add_argument("--max-body", type=int, default=MAX_BODY, help="largest accepted request, in bytes")
    _add_ingress_limits(dev)
    _add_max_fanout(dev, "manifests whose triggers would let an event reach more are refused")
    dev.add_argument("--pool-size", type=int, default=1, help="warm-pool runtime processes (0: none)")
    _add_records(dev)
    dev.add_argument("--activation-timeout", type=float, default=ACTIVATION_TIMEOUT,
                     help="seconds a delivery waits for a function to wake before it counts as failed")
    dev.add_argument("--nats-cluster", type=int, default=1, choices=(1, 3, 5), metavar="N",
                     help="run N nats-servers as one JetStream cluster (1, 3 or 5), so that brokers with "
                          "replicas: 3 survive a server's loss")
    dev.add_argument("--tls", action="store_true",
                     help="serve the ingress over HTTPS with a throw-away CA made in the data directory "
                          "(tls/ca.crt: trust it with ripple send --cacert or curl --cacert)")
    dev.add_argument("--delivery-auth", choices=DELIVERY_AUTH_MODES, default="optional",
                     help="what Functions do with the delivery token every delivery carries: optional (default: a "
                          "token sent must be valid, none is needed, so you may call a Function directly), required "
                          "(as in a cluster: only deliveries invoke it), off")



def _add_send(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    send = commands.add_parser("send", help="send one CloudEvent and print the response")
    send.add_argument("--to", required=True, help="URL, e.g. http://127.0.0.1:8080/default/default")
    send.add_argument("--type", required=True)
    send.add_argument("--source", required=True)
    send.add_argument("--id")
    send.add_argument("--subject")
    send.add_argument("--data", help="JSON text, or @file")
    send.add_argument("--mode", choices=["binary", "structured"], default="binary")
    send.add_argument("--ext", action="append", type=key_value, default=[], metavar="NAME=VALUE")
    send.add_argument("--token", metavar="TOKEN|@FILE",
                      help="bearer token for a broker an EventPolicy guards (default: $RIPPLE_TOKEN)")
    send.add_argument("--cacert", type=Path, metavar="PEM",
                      help="trust this CA for an https:// ingress (ripple dev --tls prints its throw-away CA)")



def _add_function(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    function = commands.add_parser("function", help="function runtime")
    function_commands = function.add_subparsers(dest="function_command", required=True)
    serve = function_commands.add_parser("serve", help="serve a Python handler over HTTP")
    serve_code = serve.add_mutually_exclusive_group(required=True)
    serve_code.add_argument("--handler", help="module:function")
    serve_code.add_argument("--pool", action="store_true", help="start empty, as a warm-pool process")
    serve.add_argument("--path", type=Path, help="directory put first on the import path")
    serve.add_argument("--host", default="0.0.0.0")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--timeout", type=float, default=30.0, help="seconds one call may take")



def _add_ingress(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ingress = commands.add_parser("ingress", help="run the broker ingress")
    ingress.add_argument("paths", nargs="*", type=Path, help="manifest files or directories (brokers)")
    ingress.add_argument("--kubernetes", action="store_true", help="learn brokers from the API server")
    ingress.add_argument("--nats", required=True, help=NATS_HELP)
    ingress.add_argument("--host", default="0.0.0.0")
    ingress.add_argument("--port", type=int, default=8080)
    ingress.add_argument("--max-body", type=int, default=MAX_BODY)
    add_tls(ingress)
    ingress.add_argument("--tls-port", type=int, metavar="PORT",
                         help="serve HTTPS on this port and keep plain HTTP on --port (default: HTTPS on --port only)")
    ingress.add_argument("--default-policy", choices=DEFAULT_POLICIES, default="open",
                         help="with --kubernetes, what guards a broker no EventPolicy names: open (default), or "
                              "namespace: only its namespace's own ServiceAccounts (bearer tokens for the audience "
                              "ripple/<namespace>/<broker>, checked by TokenReview) may send")
    ingress.add_argument("--delivery-keys-url", metavar="URL",
                         help="the dispatchers' JWKS: a dispatcher's delivery to a Sequence's or Parallel's address, "
                              "signed for it, is let in whatever guards the flow's broker")
    _add_ingress_limits(ingress)



def _add_dispatcher(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    dispatcher = commands.add_parser("dispatcher", help="run the dispatcher for the triggers in manifests")
    dispatcher.add_argument("paths", nargs="*", type=Path, help="manifest files or directories")
    dispatcher.add_argument("--kubernetes", action="store_true",
                            help="learn triggers and functions from the API server")
    dispatcher.add_argument("--readiness", choices=["endpointslices", "pods"], default="endpointslices",
                            help="where function readiness comes from in a cluster")
    dispatcher.add_argument("--activation-timeout", type=float, default=ACTIVATION_TIMEOUT)
    dispatcher.add_argument("--log-deliveries", action="store_true",
                            help="log every successful delivery too, not only retries and dead letters")
    dispatcher.add_argument("--health-port", type=int,
                            help="serve GET /-/health, /metrics and the delivery tokens' JWKS (/.well-known/jwks.json) "
                                 "on this port (all interfaces in cluster mode, else 127.0.0.1)")
    dispatcher.add_argument("--no-autoscaler", action="store_true",
                            help="cluster mode: leave scaling to a separate `ripple autoscaler` (wake from zero only)")
    dispatcher.add_argument("--nats", required=True, help=NATS_HELP)
    _add_records(dispatcher)
    _add_max_fanout(dispatcher, "manifests whose triggers would let an event reach more are refused (in a "
                                "cluster the operator's --max-fanout decides, by Trigger readiness)")
    dispatcher.add_argument("--function-url", action="append", type=key_value, default=[],
                            metavar="NS/NAME=URL", help="where a referenced Function listens")


def _add_autoscaler(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    autoscaler = commands.add_parser("autoscaler", help="scale Functions' Deployments with their triggers' backlog")
    autoscaler.add_argument("--kubernetes", action="store_true", required=True, help="the cluster's functions")
    autoscaler.add_argument("--nats", required=True, help=NATS_HELP)
    autoscaler.add_argument("--health-port", type=int, help="serve GET /-/health and /metrics on this port")


def _add_operator(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    operator = commands.add_parser("operator", help="run the Kubernetes operator")
    operator.add_argument("--nats", required=True, help=NATS_HELP + " (where the brokers' streams live)")
    operator.add_argument("--ingress-url", required=True, help="base URL of the ingress, for Broker addresses")
    operator.add_argument("--runtime-image", default=None, help="image of Functions without spec.image")
    operator.add_argument("--namespace", action="append", default=[], help="watch only these (default: all)")
    operator.add_argument("--webhook-host", help="host/IP the API server calls the admission webhook at")
    operator.add_argument("--webhook-port", type=int, default=9443)
    operator.add_argument("--webhook-cert", type=Path, help="TLS certificate (default: self-signed)")
    operator.add_argument("--webhook-key", type=Path)
    operator.add_argument("--webhook-service", metavar="NAMESPACE/NAME",
                          help="register the webhook by this Service (in a cluster) instead of by --webhook-host URL")
    operator.add_argument("--webhook-configuration", metavar="NAME", default=WEBHOOK_CONFIGURATION,
                          help="the webhook configuration Kopf registers into (default %(default)s)")
    operator.add_argument("--liveness", metavar="URL", help="serve Kopf's liveness probe, e.g. http://0.0.0.0:8081/healthz")
    operator.add_argument("--broker-replicas", type=int, choices=(1, 3, 5), default=1,
                          help="stream replicas of a Broker whose spec.replicas is unset (3 on a NATS cluster)")
    operator.add_argument("--leader-election", action="store_true",
                          help="reconcile only while holding the Lease ripple-operator in $POD_NAMESPACE, so that "
                               "several replicas can run (the others wait as standbys)")
    _add_max_fanout(operator, "a Trigger that would let an event reach more is not Ready, so no dispatcher "
                              "runs it")
    operator.add_argument("--delivery-auth", choices=DELIVERY_AUTH_MODES, default="required",
                          help="what Functions do with delivery tokens: required (default: only a trigger's delivery "
                               "invokes a Function), optional (a token sent must be valid), off")
    operator.add_argument("--delivery-keys-url", metavar="URL",
                          help="the dispatchers' JWKS, http://<dispatcher Service>:8081/.well-known/jwks.json; "
                               "without it Functions check no delivery tokens")
    operator.add_argument("--metrics-port", type=int, default=OPERATOR_METRICS_PORT,
                          help="serve GET /metrics on this port, standbys too (default %(default)s; 0: none)")
    operator.add_argument("--webhook-ca", type=Path,
                          help="CA certificate that signed --webhook-cert, registered as the webhooks' caBundle "
                               "(default: --webhook-cert itself)")
    operator.add_argument("--function-network-policy", action="store_true",
                          help="give each Function a NetworkPolicy admitting only the dispatcher and EventSource "
                               "adapters (without it, such policies made before are removed)")
    operator.add_argument("--dispatcher-namespace", metavar="NAMESPACE",
                          help="the dispatcher's namespace, for --function-network-policy (default: $POD_NAMESPACE)")
    operator.add_argument("--dispatcher-label", action="append", type=key_value, default=[], metavar="KEY=VALUE",
                          help="a label of the dispatcher's pods, for --function-network-policy; repeatable "
                               "(default: Ripple's component and part-of labels of a dispatcher)")



def _add_crds(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    crds = commands.add_parser("crds", help="write the CustomResourceDefinitions generated from the models")
    crds.add_argument("--output", type=Path, default=Path("crds"), help="directory (default: crds)")



def _add_status(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    status = commands.add_parser("status", help="functions and triggers of a running `ripple dev`")
    status.add_argument("--url", help="the ingress URL (default: from --data-dir)")
    status.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    status.add_argument("--json", action="store_true", help="print the raw JSON")



def _add_console(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    console = commands.add_parser("console", help="serve the flow page (/ui/) for a cluster")
    console.add_argument("--kubernetes", action="store_true", required=True, help="the cluster's brokers and triggers")
    console.add_argument("--nats", required=True, help=NATS_HELP)
    console.add_argument("--host", default="0.0.0.0")
    console.add_argument("--port", type=int, default=8080)
    console.add_argument("--dispatchers", metavar="HOST:PORT",
                         help="the dispatchers' metrics (a headless Service, so every replica is read), for the "
                              "delivery counts")


def _add_replay(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from ripple.defaults import MAX_REPLAY_RATE, REPLAY_RATE

    replay = commands.add_parser("replay", help="re-deliver a broker's stored events to one trigger")
    replay.add_argument("--trigger", required=True, metavar="[NS/]NAME", help="the trigger to replay to")
    start = replay.add_mutually_exclusive_group(required=True)
    start.add_argument("--from", dest="from_time", metavar="TIME",
                       help="the first stored time to replay: RFC 3339, or a duration before now (PT1H)")
    start.add_argument("--from-seq", type=int, metavar="N", help="the first stream sequence to replay")
    end = replay.add_mutually_exclusive_group()
    end.add_argument("--to", dest="to_time", metavar="TIME", help="the last stored time to replay (RFC 3339)")
    end.add_argument("--to-seq", type=int, metavar="N", help="the last stream sequence to replay")
    replay.add_argument("--rate", type=float, default=REPLAY_RATE, metavar="N",
                        help=f"events per second at most (default %(default)s, up to {MAX_REPLAY_RATE})")
    replay.add_argument("--dry-run", action="store_true", help="count what would be replayed, store nothing")
    replay.add_argument("--name", help="the replay's name, in each event's ripplereplay (default: trigger-time)")
    replay.add_argument("-f", "--manifests", nargs="+", type=Path, metavar="PATH",
                        help="where the trigger is declared (default: the manifests `ripple dev` runs)")
    replay.add_argument("--kubernetes", action="store_true", help="read the trigger from the cluster")
    replay.add_argument("--json", action="store_true", help="print the outcome as JSON")
    replay.add_argument("--nats", help="NATS URL (default: the one `ripple dev` runs, from --data-dir)")
    replay.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)


def _add_events(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    events = commands.add_parser("events", help="an event's history, a broker's events live, flows' hops")
    actions = events.add_subparsers(dest="events_command", required=True)
    show = actions.add_parser("show", help="an event and every delivery attempt, reply, retry and dead letter it "
                                           "caused, with its trace id")
    show.add_argument("id", help="the event's id")
    show.add_argument("--json", action="store_true", help="print the event and its records as JSON")
    tail = actions.add_parser("tail", help="follow brokers' events as they are stored")
    tail.add_argument("--broker", metavar="[NS/]NAME", help="only this broker (default: every broker)")
    tail.add_argument("--type", help="only events of this type")
    tail.add_argument("--count", type=int, default=0, metavar="N", help="stop after N events (default: never)")
    tail.add_argument("--json", action="store_true", help="print each event as structured JSON")
    trace = actions.add_parser("trace", help="every hop an event and what it caused went through, with attempts")
    trace.add_argument("id", help="the id of the event that entered the first Sequence or Parallel")
    trace.add_argument("--json", action="store_true", help="print the records as JSON")
    for action in (show, tail, trace):
        action.add_argument("--nats", help="NATS URL (default: the one `ripple dev` runs, from --data-dir)")
        action.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)


def _add_dlq(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    dlq = commands.add_parser("dlq", help="inspect and redrive a broker's dead letters")
    dlq.add_argument("--nats", help="NATS URL (default: the one `ripple dev` runs, from --data-dir)")
    dlq.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    dlq.add_argument("--broker", default="default/default", help="namespace/name")
    dlq_commands = dlq.add_subparsers(dest="dlq_command", required=True)
    dlq_list = dlq_commands.add_parser("list", help="one line per dead letter")
    dlq_list.add_argument("--limit", type=int, default=100)
    dlq_show = dlq_commands.add_parser("show", help="one dead letter in full")
    dlq_show.add_argument("sequence", type=int)
    dlq_redrive = dlq_commands.add_parser("redrive", help="send dead letters back to the broker or one trigger")
    dlq_redrive.add_argument("sequences", type=int, nargs="*", help="which ones (default: all)")
    dlq_redrive.add_argument("--trigger", help="deliver to this trigger only (name in the broker's namespace)")


def _add_source(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    source = commands.add_parser("source", help="run one EventSource's adapter (what the operator deploys)")
    actions = source.add_subparsers(dest="action", required=True)
    run = actions.add_parser("run", help="read the source's upstream and send its events to the sink")
    run.add_argument("--source", default=None,
                     help="the EventSource as a JSON or YAML file (default: $RIPPLE_EVENTSOURCE, as JSON)")
    run.add_argument("--sink", default=None, help="URL of the sink (default: $RIPPLE_SINK_URI)")
    run.add_argument("--dead-letter-sink", default=None, help="URL of the dead-letter sink, if any")
    run.add_argument("--secrets-dir", type=Path, default=Path("/var/run/ripple/secrets"),
                     help="where the source's Secrets are mounted, one directory per Secret")
    run.add_argument("--nats", default=None, help="NATS URL, for the broker's dead-letter stream")
    run.add_argument("--host", default="0.0.0.0")
    run.add_argument("--port", type=int, default=8080)
    run.add_argument("--max-body", type=int, default=MAX_BODY, help="largest accepted webhook request, in bytes")
    add_tls(run)
    run.add_argument("--report-progress", action="store_true",
                     help="patch the EventSource's status.progress (PostgreSQL lag, storage checkpoint)")
