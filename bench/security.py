"""What security costs on the ingress path: TLS, and EventPolicies with static and OIDC tokens, against a plain HTTP
ingress to an open broker, in the same run; and the in-process cost of the checks and of delivery tokens.

Run with ``python bench/security.py`` (``--help`` for the sizes; the defaults, 3 rounds of 7 configurations, each
a 2 s throughput window and a 2 s window at a fixed rate after 0.5 s warm-ups, take about 2.5 minutes on a 2-core
machine); ``python bench/security.py --quick`` is a ~30 s smoke run of one short round. Everything listens on
127.0.0.1.

What runs where, each in its own process:

* a real ``nats-server -js``;
* four ``ripple ingress MANIFEST`` processes as deployed, each with its own broker: ``plain`` (open broker),
  ``tls`` (the same, serving HTTPS only with ``--tls-cert``/``--tls-key``, a server certificate for 127.0.0.1
  from :func:`ripple.tls.throwaway_ca`), ``token`` (an EventPolicy lets the holders of a static token from a
  Secret send to its broker) and ``oidc`` (an EventPolicy lets the holders of JWTs an OIDC issuer signed for an
  audience send to its broker);
* the OIDC issuer, in this process: a discovery document and a JWKS over HTTP for one RSA-2048 key; the load
  generator signs its RS256 tokens with that key (PyJWT), as an identity provider would;
* the load generator: this script in ``client`` mode, one process per phase, on the event loop Ripple's processes
  use (uvloop where installed); binary-mode CloudEvents of ``--data-bytes`` of JSON data, one per POST, as
  ``bench/ingress.py`` and ``bench/e2e.py`` send them. Over HTTPS it trusts the throw-away CA
  (``ssl.create_default_context(cafile=...)``).

The configurations (what the client does; which ingress it drives):

* ``plain``:         HTTP, keep-alive connections, no ``Authorization`` (the baseline);
* ``plain-newconn``: the same with a new TCP connection per request (the baseline of ``tls-newconn``);
* ``tls``:           HTTPS, keep-alive connections (the handshakes happen in the warm-up), as producers keep them;
* ``tls-newconn``:   HTTPS with a new connection per request: TCP, a full TLS handshake (no session resumption),
  one POST;
* ``token``:         HTTP, ``Authorization: Bearer <static token>`` on every request;
* ``oidc``:          HTTP, one RS256 token on every request: verified once, then answered from the ingress's cache
  of verified tokens;
* ``oidc-fresh``:    HTTP, a new token on every request (a distinct ``jti``), so every request is a signature
  check. The tokens are signed before the warm-up (``--fresh-tokens`` of them for a throughput phase): when they
  run out the window ends early and its events/s are counted over the time it lasted.

Each round runs, for every configuration (the order reversed every other round, so a drift of the machine does
not favour one side):

* ``throughput``: the closed-loop generator of ``bench/ingress.py``: ``--connections`` workers each POST, await
  the answer and POST again, for ``--warmup`` unmeasured seconds then ``--duration`` measured; the 202s answered
  inside the window per second. The CPU time of the configuration's ingress over the window per event accepted
  (the sum of its threads' ``/proc/<pid>/task/*/schedstat``, in ns) is the figure that does not depend on the
  client: on 2 cores the client, the ingress and nats-server share the machine, and TLS costs the client as much
  as the server (a configuration whose client spent more CPU per event than the ingress is named client-bound).
* ``latency``: the open-loop generator of ``bench/e2e.py``: event *i* is due at ``start + i / rate`` whatever
  the answers to the earlier ones, over at most 8 connections; latency = the 202's arrival - the event's due time
  (so a client that falls behind shows in the latency), p50 and p99 over the measured events. The rate is
  ``--rate`` over keep-alive connections and ``--newconn-rate`` with a new connection per request (a handshake
  per event on 2 cores cannot keep up with ``--rate``); relative latencies compare configurations at one rate.

Every answer that is not a 202 is counted, by status, and makes the script exit 1; so does a broker's stream
holding a different number of events from the 202s its ingress gave, or a guarded broker that does not refuse a
request without a token (401). The figures are medians over the rounds; relative figures are (side - baseline) /
baseline. "others" is the cores other processes on the machine used during a window (``/proc/stat``): well above
0, that window competed for the CPU.

Then, in this process, the in-process costs (the median of many calls, each timed, µs): ``PolicyBook.check`` for
a static token, a cached OIDC token and a first OIDC token (a signature check); ``DeliverySigner.token`` cached and
uncached (``_tokens`` cleared before each call: an Ed25519 signature); ``DeliveryVerifier.check`` for a cached
token and for a first check (a new verifier each time, its JWKS an in-memory source returning the signer's keys).

The last line of the output is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import inspect
import math
import os
import ssl
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import yaml
from aiohttp import web
from common import (
    HOST,
    MEASURE_END,
    MEASURE_START,
    CpuWindow,
    client_entry,
    emit_json,
    is_client_mode,
    json_data,
    load_average,
    machine,
    marker,
    nats_server,
    num,
    percentile,
    run_client,
    serve,
    table,
)
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from dispatch import Child
from ripple._aio import free_port, loop_factory
from ripple.api.models import API_VERSION
from ripple.tls import throwaway_ca

NAMESPACE = "bench"
SOURCE = "https://bench.example/security"
TYPE = "com.example.bench.order"
AUDIENCE = "ripple-bench"
SUBJECT = "bench-producer"
KID = "bench-k1"
STATIC_TOKEN = "bench-partner-token-7f3a9c2e1b8d4f60"
TOKEN_LIFETIME = 900
LATENCY_CONNECTIONS = 8
READY_TIMEOUT = 60.0
SAMPLES = 5
SERVERS = ("plain", "tls", "token", "oidc")


@dataclass(frozen=True)
class Config:
    name: str
    server: str
    auth: str
    new_connection: bool
    what: str

    def rate(self, args: argparse.Namespace) -> float:
        return float(args.newconn_rate if self.new_connection else args.rate)


CONFIGS = (
    Config("plain", "plain", "none", False, "HTTP, open broker, keep-alive (baseline)"),
    Config("plain-newconn", "plain", "none", True, "HTTP, a new TCP connection per request"),
    Config("tls", "tls", "none", False, "HTTPS, keep-alive"),
    Config("tls-newconn", "tls", "none", True, "HTTPS, a new connection and full TLS handshake per request"),
    Config("token", "token", "static", False, "HTTP, EventPolicy, static bearer token"),
    Config("oidc", "oidc", "oidc", False, "HTTP, EventPolicy, one OIDC token (verified once, then cached)"),
    Config("oidc-fresh", "oidc", "oidc-fresh", False, "HTTP, EventPolicy, a new OIDC token per request"),
)
COMPARISONS = (
    ("plain-newconn", "plain"),
    ("tls", "plain"),
    ("tls-newconn", "plain-newconn"),
    ("token", "plain"),
    ("oidc", "plain"),
    ("oidc-fresh", "plain"),
    ("oidc-fresh", "oidc"),
)
DEFAULTS: dict[str, Any] = {"rounds": 3, "duration": 2.0, "latency_duration": 2.0, "warmup": 0.5,
                            "fresh_tokens": 7000, "micro_calls": 20_000}
QUICK: dict[str, Any] = {"rounds": 1, "duration": 0.8, "latency_duration": 0.8, "warmup": 0.25,
                         "fresh_tokens": 3000, "micro_calls": 2000}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a ~30 s smoke run: 1 short round, fewer micro calls")
    parser.add_argument("--rounds", type=int, help="rounds of every phase and configuration (3; --quick 1)")
    parser.add_argument("--duration", "--seconds", type=float,
                        help="measured seconds of a throughput phase (2; --quick 0.8)")
    parser.add_argument("--latency-duration", type=float,
                        help="measured seconds of a latency phase (2; --quick 0.8)")
    parser.add_argument("--warmup", type=float, help="unmeasured seconds before each window (0.5; --quick 0.25)")
    parser.add_argument("--connections", type=int, default=16, help="connections of the throughput generator (16)")
    parser.add_argument("--rate", type=float, default=1000.0,
                        help="events/s of the latency phase over keep-alive connections (1000)")
    parser.add_argument("--newconn-rate", type=float, default=200.0,
                        help="events/s of the latency phase with a new connection per request (200)")
    parser.add_argument("--data-bytes", type=int, default=200, help="size of each event's JSON data (200)")
    parser.add_argument("--fresh-tokens", type=int,
                        help="tokens signed for an oidc-fresh throughput phase (7000; --quick 3000)")
    parser.add_argument("--micro-calls", type=int, help="calls timed per cached in-process cost (20000; --quick "
                                                        "2000; a tenth of that for the uncached ones)")
    args = parser.parse_args(argv)
    for key, value in (QUICK if args.quick else DEFAULTS).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if min(args.rounds, args.connections, args.fresh_tokens, args.micro_calls) < 1:
        parser.error("--rounds, --connections, --fresh-tokens and --micro-calls must be at least 1")
    if min(args.duration, args.latency_duration, args.rate, args.newconn_rate) <= 0 or args.warmup < 0:
        parser.error("--duration, --latency-duration and the rates must be positive, --warmup not negative")
    return args


# --- tokens and the OIDC issuer ---------------------------------------------------------------------------------


def oidc_token(key: rsa.RSAPrivateKey, issuer: str, jti: str) -> str:
    now = int(time.time())
    claims = {"iss": issuer, "aud": AUDIENCE, "sub": SUBJECT, "iat": now, "exp": now + TOKEN_LIFETIME, "jti": jti}
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": KID})


def load_key(path: str) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


@dataclass
class Issuer:
    """An OIDC issuer: ``/.well-known/openid-configuration`` and the JWKS it names, for one RSA key."""

    key: rsa.RSAPrivateKey = field(default_factory=lambda: rsa.generate_private_key(public_exponent=65537,
                                                                                    key_size=2048))
    url: str = ""
    reads: int = 0

    def app(self) -> web.Application:
        public = jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        jwks = {"keys": [{**public, "kid": KID, "use": "sig", "alg": "RS256"}]}

        async def discovery(request: web.Request) -> web.Response:
            return web.json_response({"issuer": self.url, "jwks_uri": f"{self.url}/keys"})

        async def keys(request: web.Request) -> web.Response:
            self.reads += 1
            return web.json_response(jwks)

        app = web.Application()
        app.router.add_get("/.well-known/openid-configuration", discovery)
        app.router.add_get("/keys", keys)
        return app

    def write_key(self, path: Path) -> Path:
        path.write_bytes(self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                serialization.NoEncryption()))
        return path

    def token(self, jti: str) -> str:
        return oidc_token(self.key, self.url, jti)


# --- the client process -----------------------------------------------------------------------------------------


@dataclass
class Answers:
    accepted: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    samples: list[str] = field(default_factory=list)

    def note(self, status: int, answer: bytes) -> None:
        if status == 202:
            self.accepted += 1
            return
        self.refused[str(status) if status else answer.decode(errors="replace").split(":")[0]] += 1
        if len(self.samples) < SAMPLES:
            self.samples.append(f"HTTP {status}: {answer[:200].decode(errors='replace')}")


class OutOfTokens(Exception):
    """Every fresh token was sent."""


class Authorizations:
    """The ``Authorization`` value of each request; ``next()`` raises :class:`OutOfTokens` when fresh tokens run
    out."""

    def __init__(self, config: dict[str, Any], count: int) -> None:
        self.auth = config["auth"]
        self.fixed: str | None = None
        self.pool: list[str] = []
        self.signing_s = 0.0
        if self.auth == "static":
            self.fixed = f"Bearer {config['token']}"
        elif self.auth.startswith("oidc"):
            key = load_key(config["key_path"])
            began = time.perf_counter()
            prefix = config["prefix"]
            self.pool = [f"Bearer {oidc_token(key, config['issuer'], f'{prefix}-{n}')}"
                         for n in range(1 if self.auth == "oidc" else count)]
            self.signing_s = time.perf_counter() - began
            if self.auth == "oidc":
                self.fixed = self.pool.pop()
        self.pool.reverse()
        self.exhausted = asyncio.Event()

    def next(self) -> str | None:
        if self.auth != "oidc-fresh":
            return self.fixed
        if not self.pool:
            self.exhausted.set()
            raise OutOfTokens
        return self.pool.pop()


def session_for(config: dict[str, Any], limit: int) -> aiohttp.ClientSession:
    context = ssl.create_default_context(cafile=config["cafile"]) if config.get("cafile") else None
    connector = aiohttp.TCPConnector(limit=limit, force_close=config["new_connection"], ssl=context or True)
    return aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30))


def headers_for(event_id: str, authorization: str | None) -> dict[str, str]:
    headers = {"ce-specversion": "1.0", "ce-id": event_id, "ce-source": SOURCE, "ce-type": TYPE,
               "Content-Type": "application/json"}
    if authorization is not None:
        headers["Authorization"] = authorization
    return headers


async def post(session: aiohttp.ClientSession, url: str, data: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    try:
        async with session.post(url, data=data, headers=headers) as response:
            return response.status, await response.read()
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        return 0, f"{type(exc).__name__}: {exc}".encode()


async def closed_loop(config: dict[str, Any]) -> dict[str, Any]:
    url, prefix, connections = config["url"], config["prefix"], config["connections"]
    data = json_data(config["data_bytes"])
    auth = Authorizations(config, config["tokens"])
    answers = Answers()
    stop = False

    async def worker(session: aiohttp.ClientSession, w: int) -> None:
        seq = 0
        while not stop:
            try:
                authorization = auth.next()
            except OutOfTokens:
                return
            status, answer = await post(session, url, data, headers_for(f"{prefix}-{w}-{seq}", authorization))
            seq += 1
            answers.note(status, answer)
            if status == 0:
                await asyncio.sleep(0.01)

    async with session_for(config, connections) as session:
        workers = [asyncio.create_task(worker(session, w)) for w in range(connections)]
        await asyncio.sleep(config["warmup"])
        cut_short = auth.exhausted.is_set()
        marker(MEASURE_START)
        t0, events0, cpu0 = time.perf_counter(), answers.accepted, time.process_time()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(auth.exhausted.wait(), config["duration"])
        t1, events1, cpu1 = time.perf_counter(), answers.accepted, time.process_time()
        marker(MEASURE_END)
        stop = True
        await asyncio.gather(*workers)
    return {"seconds": t1 - t0, "events": events1 - events0, "cpu_s": cpu1 - cpu0, "accepted_total": answers.accepted,
            "refused": dict(answers.refused), "samples": answers.samples, "tokens_ran_out": auth.exhausted.is_set(),
            "tokens_ran_out_in_warmup": cut_short, "signing_s": auth.signing_s}


async def open_loop(config: dict[str, Any]) -> dict[str, Any]:
    url, rate, prefix = config["url"], config["rate"], config["prefix"]
    warm, measured = round(config["warmup"] * rate), round(config["duration"] * rate)
    data = json_data(config["data_bytes"])
    auth = Authorizations(config, warm + measured)
    answers = Answers()
    latencies: list[float] = []
    lags: list[float] = []

    async def send(session: aiohttp.ClientSession, i: int, due: float, authorization: str | None) -> None:
        kind = "m" if i >= warm else "w"
        status, answer = await post(session, url, data, headers_for(f"{prefix}-{kind}-{i}", authorization))
        answers.note(status, answer)
        if status == 202 and i >= warm:
            latencies.append(time.perf_counter() - due)

    async with session_for(config, LATENCY_CONNECTIONS) as session:
        tasks: list[asyncio.Task[None]] = []
        start = time.perf_counter() + 0.05
        measure_start, cpu0 = start, time.process_time()
        for i in range(warm + measured):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            if i == warm:
                marker(MEASURE_START)
                measure_start, cpu0 = time.perf_counter(), time.process_time()
            lags.append(time.perf_counter() - due)
            tasks.append(asyncio.create_task(send(session, i, due, auth.next())))
        sent_for = time.perf_counter() - measure_start
        marker(MEASURE_END)
        cpu_s = time.process_time() - cpu0
        await asyncio.gather(*tasks)
    latencies.sort()
    lags.sort()
    return {"seconds": sent_for, "measured_sent": measured, "measured": len(latencies), "cpu_s": cpu_s,
            "accepted_total": answers.accepted, "refused": dict(answers.refused), "samples": answers.samples,
            "p50_ms": percentile(latencies, 50) * 1000, "p90_ms": percentile(latencies, 90) * 1000,
            "p99_ms": percentile(latencies, 99) * 1000, "max_ms": latencies[-1] * 1000 if latencies else math.nan,
            "lag_p99_ms": percentile(lags, 99) * 1000}


async def client(config: dict[str, Any]) -> dict[str, Any]:
    return await (closed_loop(config) if config["kind"] == "throughput" else open_loop(config))


# --- the ingresses ----------------------------------------------------------------------------------------------


def manifest(server: str, issuer: str) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = [{"apiVersion": API_VERSION, "kind": "Broker",
                                   "metadata": {"name": server, "namespace": NAMESPACE}, "spec": {}}]
    policy = {"apiVersion": API_VERSION, "kind": "EventPolicy", "metadata": {"name": server, "namespace": NAMESPACE}}
    if server == "token":
        docs += [{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "partner", "namespace": NAMESPACE},
                  "stringData": {"token": STATIC_TOKEN}},
                 {**policy, "spec": {"to": [{"broker": server}],
                                     "from": [{"token": {"secretRef": {"name": "partner", "key": "token"}}}]}}]
    elif server == "oidc":
        docs.append({**policy, "spec": {"to": [{"broker": server}],
                                        "from": [{"oidc": {"issuer": issuer, "audience": AUDIENCE}}]}})
    return docs


@dataclass
class Ingress:
    server: str
    child: Child
    url: str
    manifest: Path
    cafile: str | None

    @property
    def pid(self) -> int:
        return self.child.pid


def client_context(cafile: str | None) -> ssl.SSLContext | bool:
    return ssl.create_default_context(cafile=cafile) if cafile else True


async def wait_healthy(ingress: Ingress) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    health = ingress.url.rsplit("/", 2)[0] + "/-/health"
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            ingress.child.check_alive()
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with session.get(health, ssl=client_context(ingress.cafile)) as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{ingress.server} ingress not answering {health}:\n{ingress.child.log_tail()}")


@contextlib.asynccontextmanager
async def ingresses(tmp: Path, nats_url: str, issuer: str) -> AsyncIterator[dict[str, Ingress]]:
    tls = throwaway_ca(tmp / "tls", [HOST])
    started: dict[str, Ingress] = {}
    try:
        for server in SERVERS:
            path = tmp / f"{server}.yaml"
            path.write_text(yaml.safe_dump_all(manifest(server, issuer), sort_keys=False))
            port = free_port(HOST)
            argv = [sys.executable, "-m", "ripple", "ingress", str(path), "--nats", nats_url, "--host", HOST,
                    "--port", str(port)]
            if server == "tls":
                argv += ["--tls-cert", str(tls.server.cert), "--tls-key", str(tls.server.key)]
            child = Child(f"{server} ingress", argv, tmp / f"{server}.log")
            scheme = "https" if server == "tls" else "http"
            started[server] = Ingress(server, child, f"{scheme}://{HOST}:{port}/{NAMESPACE}/{server}", path,
                                      str(tls.ca) if server == "tls" else None)
            await child.start()
        await asyncio.gather(*(wait_healthy(ingress) for ingress in started.values()))
        yield started
    finally:
        for ingress in started.values():
            await ingress.child.stop()


async def guard_checks(servers: dict[str, Ingress], issuer: Issuer) -> dict[str, dict[str, int]]:
    """One event each ingress must take (202), and for the guarded ones what they must refuse (401)."""
    data = json_data(200)
    found: dict[str, dict[str, int]] = {}
    async with aiohttp.ClientSession() as session:
        for server, ingress in servers.items():
            good = {"token": f"Bearer {STATIC_TOKEN}", "oidc": f"Bearer {issuer.token('probe')}"}.get(server)
            cases: dict[str, str | None] = {"allowed": good}
            if good is not None:
                cases |= {"no_token": None, "wrong_token": "Bearer not-a-token-anyone-holds-0000"}
            found[server] = {}
            for case, authorization in cases.items():
                async with session.post(ingress.url, data=data, ssl=client_context(ingress.cafile),
                                        headers=headers_for(f"probe-{server}-{case}", authorization)) as response:
                    await response.read()
                    found[server][case] = response.status
    return found


def guards_ok(checks: dict[str, dict[str, int]]) -> bool:
    return all(status == (202 if case == "allowed" else 401) for cases in checks.values()
               for case, status in cases.items())


# --- the phases -------------------------------------------------------------------------------------------------


def run_time_ns(pid: int) -> int | None:
    """CPU time of every thread of ``pid`` so far, in ns (``/proc/<pid>/task/*/schedstat``; ``/proc/<pid>/stat``
    counts 10 ms ticks, too coarse for a few hundred events); None where the kernel does not keep it."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    total = 0
    for task in tasks:
        try:
            total += int(Path(f"/proc/{pid}/task/{task}/schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue
    return total or None


@dataclass
class RunTime:
    pid: int
    start: int | None = None
    seconds: float | None = None

    def mark(self, text: str) -> None:
        now = run_time_ns(self.pid)
        if text == MEASURE_START:
            self.start = now
        elif now is not None and self.start is not None:
            self.seconds = (now - self.start) / 1e9


@dataclass
class Bench:
    args: argparse.Namespace
    issuer: Issuer
    key_path: Path
    servers: dict[str, Ingress] = field(default_factory=dict)
    nats_pid: int | None = None
    runs: dict[str, dict[str, list[dict[str, Any]]]] = field(
        default_factory=lambda: {config.name: {"throughput": [], "latency": []} for config in CONFIGS})
    accepted: Counter[str] = field(default_factory=Counter)

    def client_config(self, config: Config, kind: str, prefix: str) -> dict[str, Any]:
        args, ingress = self.args, self.servers[config.server]
        return {"kind": kind, "url": ingress.url, "cafile": ingress.cafile, "new_connection": config.new_connection,
                "auth": config.auth, "token": STATIC_TOKEN, "issuer": self.issuer.url, "key_path": str(self.key_path),
                "prefix": prefix, "data_bytes": args.data_bytes, "warmup": args.warmup}

    async def phase(self, config: Config, kind: str, round_no: int) -> dict[str, Any]:
        args = self.args
        prefix = f"{kind[0]}{round_no}{config.name}"
        settings = self.client_config(config, kind, prefix)
        if kind == "throughput":
            settings |= {"connections": args.connections, "duration": args.duration, "tokens": args.fresh_tokens}
        else:
            settings |= {"rate": config.rate(args), "duration": args.latency_duration}
        ingress = self.servers[config.server]
        cpu = CpuWindow({"ingress": ingress.pid, "nats": self.nats_pid})
        exact = RunTime(ingress.pid)

        async def on_marker(text: str) -> None:
            exact.mark(text)
            await cpu.mark(text)

        result = await run_client(__file__, settings, on_marker)
        ingress.child.check_alive()
        if result.get("tokens_ran_out_in_warmup"):
            raise RuntimeError(f"{config.name}: the fresh tokens ran out in the warm-up: raise --fresh-tokens")
        self.accepted[config.server] += result["accepted_total"]
        events = result["events"] if kind == "throughput" else result["measured_sent"]
        wall = cpu.wall or math.nan

        def per_event(seconds: float | None) -> float | None:
            return None if seconds is None or not events else seconds / events * 1e6

        ingress_s = exact.seconds if exact.seconds is not None else cpu.process("ingress")
        figures = {**result, "ingress_us": per_event(ingress_s), "nats_us": per_event(cpu.process("nats")),
                   "client_us": per_event(result["cpu_s"]), "ingress_cores": (ingress_s or 0.0) / wall,
                   "others_cores": cpu.others(result["cpu_s"])}
        if kind == "throughput":
            figures["events_per_s"] = result["events"] / result["seconds"] if result["seconds"] else math.nan
        self.runs[config.name][kind].append(figures)
        return figures

    async def round(self, round_no: int) -> None:
        order = CONFIGS if round_no % 2 else tuple(reversed(CONFIGS))
        for config in order:
            t = await self.phase(config, "throughput", round_no)
            refused = f", NON-202: {t['refused']}" if t["refused"] else ""
            short = " (tokens ran out: window cut short)" if t["tokens_ran_out"] else ""
            print(f"round {round_no} {config.name:<13} throughput {t['events_per_s']:>8,.0f} ev/s, ingress "
                  f"{fmt(t['ingress_us'], 0)} µs/ev, {t['seconds']:.2f}s{short}{refused}", flush=True)
            lat = await self.phase(config, "latency", round_no)
            refused = f", NON-202: {lat['refused']}" if lat["refused"] else ""
            print(f"round {round_no} {config.name:<13} at {config.rate(self.args):g}/s    p50 {lat['p50_ms']:.2f} ms, "
                  f"p99 {lat['p99_ms']:.2f} ms, ingress {fmt(lat['ingress_us'], 0)} µs/ev{refused}", flush=True)


async def stream_counts(nats_url: str) -> dict[str, int]:
    from ripple.store import EventStore, subjects

    store = await EventStore.connect(nats_url, name="bench-security")
    try:
        return {server: (await store.js.stream_info(subjects.stream_name(NAMESPACE, server))).state.messages
                for server in SERVERS}
    finally:
        await store.close()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="ripple-security-") as directory:
        tmp = Path(directory)
        issuer = Issuer()
        async with serve(issuer.app()) as issuer_url, nats_server(tmp / "nats") as server:
            issuer.url = issuer_url
            bench = Bench(args, issuer, issuer.write_key(tmp / "issuer.pem"))
            bench.nats_pid = server.process.pid if server.process else None
            async with ingresses(tmp, server.url, issuer.url) as servers:
                bench.servers = servers
                print("ingresses: " + ", ".join(f"{name} pid {i.pid} {i.url}" for name, i in servers.items()) +
                      f"; nats pid {bench.nats_pid}; OIDC issuer {issuer.url}", flush=True)
                checks = await guard_checks(servers, issuer)
                bench.accepted.update({name: sum(s == 202 for s in cases.values()) for name, cases in checks.items()})
                print(f"guards: {checks}", flush=True)
                for round_no in range(1, args.rounds + 1):
                    await bench.round(round_no)
                stored = await stream_counts(server.url)
                jwks_reads = issuer.reads
                print("in-process costs", flush=True)
                micro = await micro_costs(issuer, servers, args.micro_calls)
    return {"runs": bench.runs, "checks": checks, "stored": stored, "accepted": dict(bench.accepted),
            "jwks_reads": jwks_reads, "micro": micro}


# --- in-process costs -------------------------------------------------------------------------------------------


async def timed(call: Callable[[], object], count: int, before: Callable[[], object] | None = None) -> dict[str, Any]:
    """``call()`` (awaited when it is a coroutine function) ``count`` times, each timed, ``before()`` untimed."""
    samples: list[float] = []
    for _ in range(count):
        if before is not None:
            before()
        began = time.perf_counter_ns()
        result = call()
        if inspect.isawaitable(result):
            await result
        samples.append((time.perf_counter_ns() - began) / 1000)
    samples.sort()
    return {"median_us": num(percentile(samples, 50), 2), "p90_us": num(percentile(samples, 90), 2), "calls": count}


async def micro_costs(issuer: Issuer, servers: dict[str, Ingress], calls: int) -> dict[str, dict[str, Any]]:
    from ripple.api.loading import load_manifests
    from ripple.events.model import CloudEvent
    from ripple.ingress.policies import PolicyBook, Sender, manifest_policies
    from ripple.signing import DeliverySigner, DeliveryVerifier, function_audience, trigger_subject

    few = max(1, calls // 10)
    event = CloudEvent.create({"specversion": "1.0", "id": "micro-1", "source": SOURCE, "type": TYPE,
                               "datacontenttype": "application/json"}, json_data(200))
    books: dict[str, PolicyBook] = {}
    for server in ("token", "oidc"):
        book = manifest_policies(load_manifests([servers[server].manifest]))
        assert book is not None
        books[server] = book

    def check(server: str, authorization: str) -> Callable[[], Awaitable[object]]:
        async def call() -> object:
            found = await books[server].check(NAMESPACE, server, authorization, [event])
            assert isinstance(found, Sender), found
            return found

        return call

    cached = f"Bearer {issuer.token('micro-cached')}"
    await check("oidc", cached)()
    fresh = iter([f"Bearer {issuer.token(f'micro-{n}')}" for n in range(few)])

    async def first_oidc() -> object:
        return await check("oidc", next(fresh))()

    signer = DeliverySigner()
    audience, subject = function_audience(NAMESPACE, "fn"), trigger_subject(NAMESPACE, "to-fn")
    token = signer.token(audience, subject)

    def sign() -> str:
        return signer.token(audience, subject)

    async def jwks() -> dict[str, Any]:
        return signer.ring.jwks()

    verifier = DeliveryVerifier(jwks, audience)
    delivery = f"Bearer {token}"
    fresh_verifiers: list[DeliveryVerifier] = []

    async def verify() -> object:
        found = await verifier.check(delivery)
        assert found is None, found
        return found

    async def first_verify() -> object:
        found = await fresh_verifiers.pop().check(delivery)
        assert found is None, found
        return found

    await verify()
    results = {
        "policy_static_token": await timed(check("token", f"Bearer {STATIC_TOKEN}"), calls),
        "policy_oidc_cached": await timed(check("oidc", cached), calls),
        "policy_oidc_first": await timed(first_oidc, few),
        "signer_token_cached": await timed(sign, calls),
        "signer_token_uncached": await timed(sign, few, before=signer._tokens.clear),
        "verifier_check_cached": await timed(verify, calls),
        "verifier_check_first": await timed(first_verify, few,
                                            before=lambda: fresh_verifiers.append(DeliveryVerifier(jwks, audience))),
    }
    return results


MICRO_LABELS = {
    "policy_static_token": "PolicyBook.check, static token",
    "policy_oidc_cached": "PolicyBook.check, OIDC token (cached)",
    "policy_oidc_first": "PolicyBook.check, OIDC token first seen (RS256 check)",
    "signer_token_cached": "DeliverySigner.token, cached",
    "signer_token_uncached": "DeliverySigner.token, uncached (Ed25519 sign)",
    "verifier_check_cached": "DeliveryVerifier.check, cached token",
    "verifier_check_first": "DeliveryVerifier.check, first (new verifier: JWKS + Ed25519 verify)",
}


# --- the summary ------------------------------------------------------------------------------------------------


def fmt(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "-"
    return f"{value:,.{digits}f}" if isinstance(value, float | int) else str(value)


def median_of(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in runs if r.get(key) is not None and r[key] == r[key]]
    return statistics.median(values) if values else None


def change(side: float | None, base: float | None) -> float | None:
    return None if side is None or not base else (side - base) / base * 100


def signed(value: float | None, unit: str = "%", digits: int = 1) -> str:
    return "-" if value is None else f"{value:+.{digits}f}{unit}"


def config_figures(config: Config, runs: dict[str, list[dict[str, Any]]], args: argparse.Namespace) -> dict[str, Any]:
    t, lat = runs["throughput"], runs["latency"]
    refused: Counter[str] = Counter()
    for r in t + lat:
        refused.update(r["refused"])
    return {
        "what": config.what,
        "events_per_s": num(median_of(t, "events_per_s"), 1),
        "per_round_events_per_s": [num(r["events_per_s"], 0) for r in t],
        "ingress_us_per_event": num(median_of(t, "ingress_us"), 1),
        "nats_us_per_event": num(median_of(t, "nats_us"), 1),
        "client_us_per_event": num(median_of(t, "client_us"), 1),
        "ingress_cores": num(median_of(t, "ingress_cores")),
        "others_cores": num(median_of(t, "others_cores")),
        "window_s": num(median_of(t, "seconds")),
        "tokens_ran_out": any(r["tokens_ran_out"] for r in t),
        "rate": config.rate(args),
        "p50_ms": num(median_of(lat, "p50_ms"), 3),
        "p90_ms": num(median_of(lat, "p90_ms"), 3),
        "p99_ms": num(median_of(lat, "p99_ms"), 3),
        "max_ms": num(median_of(lat, "max_ms"), 3),
        "generator_lag_p99_ms": num(median_of(lat, "lag_p99_ms"), 3),
        "ingress_us_per_event_at_rate": num(median_of(lat, "ingress_us"), 1),
        "others_cores_at_rate": num(median_of(lat, "others_cores")),
        "accepted": sum(r["accepted_total"] for r in t + lat),
        "non_202": dict(refused),
        "non_202_samples": [s for r in t + lat for s in r["samples"]][:SAMPLES],
    }


def delta(side: float | None, base: float | None) -> float | None:
    return None if side is None or base is None else side - base


def comparison(s: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """``s`` against ``b``; the fixed-rate figures only when both ran at the same rate."""
    same_rate = s["rate"] == b["rate"]
    return {
        "events_per_s_pct": num(change(s["events_per_s"], b["events_per_s"]), 1),
        "ingress_us_per_event_delta": num(delta(s["ingress_us_per_event"], b["ingress_us_per_event"]), 1),
        "ingress_us_per_event_pct": num(change(s["ingress_us_per_event"], b["ingress_us_per_event"]), 1),
        "ingress_us_per_event_at_rate_delta": num(delta(s["ingress_us_per_event_at_rate"],
                                                        b["ingress_us_per_event_at_rate"]), 1) if same_rate else None,
        "p50_pct": num(change(s["p50_ms"], b["p50_ms"]), 1) if same_rate else None,
        "p99_pct": num(change(s["p99_ms"], b["p99_ms"]), 1) if same_rate else None,
    }


def summarize(result: dict[str, Any], args: argparse.Namespace, wall: float,
              load_start: str) -> tuple[str, dict[str, Any]]:
    figures = {c.name: config_figures(c, result["runs"][c.name], args) for c in CONFIGS}
    rows = [[name, fmt(f["events_per_s"], 0), " / ".join(fmt(v, 0) for v in f["per_round_events_per_s"]),
             fmt(f["ingress_us_per_event"], 0), fmt(f["client_us_per_event"], 0), f"{f['rate']:g}",
             fmt(f["ingress_us_per_event_at_rate"], 0), fmt(f["p50_ms"]), fmt(f["p99_ms"]),
             sum(f["non_202"].values()), fmt(f["others_cores"])] for name, f in figures.items()]
    text = table(["config", "ev/s", "per round", "ingress µs/ev", "client µs/ev", "rate/s", "ingress µs/ev @rate",
                  "p50 ms", "p99 ms", "non-202", "others"], rows)
    relative = {f"{side}_vs_{base}": comparison(figures[side], figures[base]) for side, base in COMPARISONS}
    rel_rows = [[f"{side} vs {base}", signed(r["events_per_s_pct"]),
                 f"{signed(r['ingress_us_per_event_delta'], ' µs', 0)} ({signed(r['ingress_us_per_event_pct'])})",
                 signed(r["ingress_us_per_event_at_rate_delta"], " µs", 0), signed(r["p50_pct"]),
                 signed(r["p99_pct"])]
                for (side, base), r in zip(COMPARISONS, relative.values(), strict=True)]
    text += "\n\n" + table(["relative", "ev/s", "ingress µs/ev", "µs/ev @rate", "p50", "p99"], rel_rows)
    micro = result["micro"]
    text += "\n\n" + table(["in-process cost", "median µs", "p90 µs", "calls"],
                           [[MICRO_LABELS[k], fmt(v["median_us"]), fmt(v["p90_us"]), v["calls"]]
                            for k, v in micro.items()])
    stored_ok = all(result["stored"][s] == result["accepted"].get(s, 0) for s in SERVERS)
    non_202 = sum(sum(f["non_202"].values()) for f in figures.values())
    ran_out = [name for name, f in figures.items() if f["tokens_ran_out"]]
    client_bound = [name for name, f in figures.items()
                    if (f["client_us_per_event"] or 0) > (f["ingress_us_per_event"] or 0)]
    text += (
        f"\n\nev/s: closed loop, {args.connections} connections, median of {args.rounds} round(s) of "
        f"{args.duration:g}s; µs/ev: CPU time per event accepted, of the ingress and of the client process.\n"
        f"@rate: open loop at rate/s, {LATENCY_CONNECTIONS} connections, {args.latency_duration:g}s; latency = "
        f"202 - due time; the relative p50/p99 only between configurations run at the same rate.\n"
        f"others: cores used by other processes on the machine during the throughput windows (load {load_start} "
        f"-> {load_average()}); wall {wall:.0f}s."
        + (f"\nclient-bound (the client spent more CPU per event than the ingress, on a shared 2-core machine): "
           f"{', '.join(client_bound)}: their ev/s understate the ingress; its µs/ev is the figure."
           if client_bound else "")
        + f"\nguards: {result['checks']} ({'ok' if guards_ok(result['checks']) else 'WRONG'}); the OIDC issuer's "
        f"JWKS was read {result['jwks_reads']} time(s) by the ingress."
        f"\nstored: {result['stored']} against 202s counted {result['accepted']}: "
        f"{'MATCH' if stored_ok else 'MISMATCH'}; non-202 answers: {non_202}"
        + (f"\nfresh tokens ran out before the end of the window in {ran_out}: those windows are shorter "
           f"(--fresh-tokens)" if ran_out else "")
    )
    summary = {"bench": "security", "machine": machine(), "args": vars(args), "configs": figures,
               "relative": relative, "micro_us": micro, "guards": result["checks"],
               "guards_ok": guards_ok(result["checks"]), "stored": result["stored"], "accepted": result["accepted"],
               "stored_matches_accepted": stored_ok, "non_202": non_202, "client_bound": client_bound,
               "jwks_reads": result["jwks_reads"], "load_average": [load_start, load_average()],
               "wall_s": num(wall, 1)}
    return text, summary


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    load_start = load_average()
    began = time.perf_counter()
    print(f"Ripple ingress security costs: {args.rounds} round(s) x {len(CONFIGS)} configurations, "
          f"{args.warmup:g}s warm-up + {args.duration:g}s closed loop ({args.connections} connections) and "
          f"{args.warmup:g}s + {args.latency_duration:g}s at {args.rate:g} ev/s each; data {args.data_bytes} B",
          flush=True)
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        result = runner.run(run(args))
    text, summary = summarize(result, args, time.perf_counter() - began, load_start)
    print()
    print(text)
    emit_json(summary)
    ok = summary["non_202"] == 0 and summary["stored_matches_accepted"] and summary["guards_ok"]
    if not ok:
        print("BENCHMARK FAILED", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    if is_client_mode():
        client_entry(client, loop_factory())
    else:
        sys.exit(main())
