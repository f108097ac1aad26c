"""Smoke check of the Benthos peer (not a benchmark): ``python bench/peers/smoke.py [--events 100]``.

Builds the peer (``build.sh``: instant when warm), starts a real ``nats-server -js`` and an aiohttp receiver on
127.0.0.1, then:

1. ``benthos-peer all`` (stock transport): POST N binary-mode events, each must get the 202 that the peer gives
   only after the PubAck; the receiver must get each event once with its ce-* headers, the stream must hold N
   messages and the durable consumer must have nothing pending or unacked.
2. ``benthos-peer deliver -transport tuned`` on a second durable: the same N events again, all acked.
3. ack after 2xx: the receiver answers 503 to the first two POSTs of one event; with ``-retries 0`` each 503
   naks the message, JetStream redelivers it, and it is acked after the third POST.
4. ack after store: an ingest whose subject no stream binds must answer no 2xx.

Exits 1 on any failure; bounded (about 20 s when warm).
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import aiohttp
import nats
import nats.js.errors
from aiohttp import web

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from common import HOST, nats_server, serve  # noqa: E402

from ripple._aio import free_port  # noqa: E402

STREAM, SUBJECT = "PEER", "peer.events"
FLAKY_ID = "smoke-flaky"


def build() -> str:
    done = subprocess.run(["bash", str(HERE / "build.sh")], check=True, capture_output=True, text=True)
    return done.stdout.strip().splitlines()[-1]


class Receiver:
    def __init__(self) -> None:
        self.seen: Counter[str] = Counter()
        self.bad_headers = 0
        self.fail_first = 0
        self.ports: set[int] = set()

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        event_id = request.headers.get("ce-id", "")
        self.seen[event_id] += 1
        peer = request.transport.get_extra_info("peername") if request.transport else None
        if peer:
            self.ports.add(peer[1])
        if request.headers.get("ce-type") != "smoke.event" or not body.startswith(b'{"n":'):
            self.bad_headers += 1
        if event_id == FLAKY_ID and self.seen[event_id] <= self.fail_first:
            return web.Response(status=503)
        return web.Response(status=202)


async def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            _, writer = await asyncio.open_connection(HOST, port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.05)
    raise TimeoutError(f"peer not listening on {HOST}:{port}")


async def until(check, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return True
        await asyncio.sleep(0.1)
    return await check()


def start(binary: str, log: Path, *args: str) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen([binary, *args], stdout=out, stderr=subprocess.STDOUT)


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


async def post(session: aiohttp.ClientSession, url: str, n: int, prefix: str) -> Counter[int]:
    statuses: Counter[int] = Counter()

    async def one(i: int) -> None:
        headers = {"ce-specversion": "1.0", "ce-id": f"{prefix}-{i}", "ce-source": "/smoke", "ce-type": "smoke.event",
                   "Content-Type": "application/json"}
        async with session.post(url, data=b'{"n":%d}' % i, headers=headers) as response:
            statuses[response.status] += 1

    await asyncio.gather(*(one(i) for i in range(n)))
    return statuses


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=100)
    args = parser.parse_args()
    n = args.events
    binary = build()
    failures: list[str] = []

    def check(ok: bool, what: str) -> None:
        print(("ok   " if ok else "FAIL ") + what)
        if not ok:
            failures.append(what)

    receiver = Receiver()
    app = web.Application()
    app.router.add_post("/", receiver.handle)
    with tempfile.TemporaryDirectory(prefix="benthos-peer-smoke-") as tmp:
        log = Path(tmp) / "peer.log"
        async with nats_server(Path(tmp) / "nats") as server, serve(app) as receiver_url:
            nc = await nats.connect(server.url)
            js = nc.jetstream()
            port = free_port(HOST)
            common = ["-nats-url", server.url, "-stream", STREAM, "-subject", SUBJECT, "-concurrency", "16"]
            peer = start(binary, log, "all", *common, "-listen", f"{HOST}:{port}", "-receiver-url", receiver_url + "/")
            peers = [peer]
            try:
                await wait_port(port)
                url = f"http://{HOST}:{port}/default/smoke"
                async with aiohttp.ClientSession() as session:
                    statuses = await post(session, url, n, "smoke")
                    check(statuses == Counter({202: n}), f"{n} POSTs answered 202 after the PubAck: {dict(statuses)}")

                    async def delivered() -> bool:
                        return sum(1 for k in receiver.seen if k.startswith("smoke-")) >= n
                    await until(delivered, 15)
                    got = [k for k in receiver.seen if k.startswith("smoke-")]
                    check(len(got) == n and all(receiver.seen[k] == 1 for k in got),
                          f"receiver got {len(got)}/{n} events, each once (stock transport)")
                    stock_connections = len(receiver.ports)
                    check(receiver.bad_headers == 0, f"ce-* headers and body forwarded ({receiver.bad_headers} bad)")
                    info = await js.stream_info(STREAM)
                    check(info.state.messages == n, f"stream {STREAM} holds {info.state.messages}/{n} messages")

                    async def settled(durable: str) -> bool:
                        c = await js.consumer_info(STREAM, durable)
                        return c.num_pending == 0 and c.num_ack_pending == 0 and c.delivered.stream_seq >= n
                    check(await until(lambda: settled("benthos-peer"), 5), "consumer benthos-peer: all acked")

                    # 2. the tuned variant, on its own durable, re-delivers the whole stream.
                    before = Counter(receiver.seen)
                    receiver.ports.clear()
                    peers.append(start(binary, log, "deliver", *common, "-durable", "tuned", "-transport", "tuned",
                                       "-receiver-url", receiver_url + "/"))

                    async def redelivered() -> bool:
                        return all(receiver.seen[k] >= before[k] + 1 for k in got)
                    await until(redelivered, 15)
                    check(all(receiver.seen[k] == before[k] + 1 for k in got),
                          "receiver got every event once more (tuned transport)")
                    check(await until(lambda: settled("tuned"), 5), "consumer tuned: all acked")
                    check(len(receiver.ports) <= 16, f"TCP connections to the receiver: stock {stock_connections}, "
                          f"tuned {len(receiver.ports)} (at most the concurrency, 16)")
                    stop(peers.pop())

                    # 3. ack only after a 2xx: two 503s nak the message twice, it is acked after the third POST.
                    stop(peers.pop(0))  # the "all" peer: the flaky event is for the flaky consumer alone
                    receiver.fail_first = 2
                    peers.append(start(binary, log, "deliver", *common, "-durable", "flaky", "-deliver", "new",
                                       "-retries", "0", "-receiver-url", receiver_url + "/"))

                    async def consumer_exists() -> bool:
                        try:
                            await js.consumer_info(STREAM, "flaky")
                            return True
                        except nats.js.errors.NotFoundError:
                            return False
                    await until(consumer_exists, 10)
                    headers = {"ce-specversion": "1.0", "ce-id": FLAKY_ID, "ce-source": "/smoke",
                               "ce-type": "smoke.event", "content-type": "application/json"}
                    await js.publish(SUBJECT, b'{"n":-1}', headers=headers)

                    async def flaky_acked() -> bool:
                        c = await js.consumer_info(STREAM, "flaky")
                        return c.num_ack_pending == 0 and c.num_pending == 0 and c.delivered.consumer_seq >= 3
                    acked = await until(flaky_acked, 15)
                    c = await js.consumer_info(STREAM, "flaky")
                    check(acked and receiver.seen[FLAKY_ID] == 3 and c.delivered.consumer_seq == 3,
                          f"503 -> nak -> redelivered; acked after the 2xx ({receiver.seen[FLAKY_ID]} POSTs, "
                          f"{c.delivered.consumer_seq} deliveries, {c.num_ack_pending} unacked)")
                    stop(peers.pop())

                    # 4. no stream binds this subject: the publish fails, so no 2xx.
                    port2 = free_port(HOST)
                    peers.append(start(binary, log, "ingest", "-nats-url", server.url, "-subject", "unbound.events",
                                       "-ensure-stream=false", "-listen", f"{HOST}:{port2}"))
                    await wait_port(port2)
                    statuses = await post(session, f"http://{HOST}:{port2}/default/smoke", 3, "unbound")
                    check(not any(200 <= s < 300 for s in statuses), f"no stream: no 2xx ({dict(statuses)})")
                    info = await js.stream_info(STREAM)
                    check(info.state.messages == n + 1, f"stream still holds {info.state.messages}/{n + 1}")
            finally:
                for p in peers:
                    stop(p)
                await nc.close()
        if failures:
            print(log.read_text()[-4000:], file=sys.stderr)
    print(f"smoke: {'FAILED' if failures else 'passed'} ({len(failures)} failures)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
