"""``@idempotent`` on a real JetStream KV and a real PostgreSQL: one run per key under concurrent duplicates, the
in-progress answer, no record after a failure, expiry, takeover of an abandoned run, and the PostgreSQL ledger
committing with the handler's own writes."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import time
from collections.abc import Iterator

import psycopg2
import pytest

from ripple.events.model import CloudEvent
from ripple.functions import KvLedger, PostgresLedger, Reject, RetryLater, idempotent
from ripple.local.nats_server import NatsServer
from ripple.runtime.event import FunctionEvent
from ripple.runtime.server import create_function_app
from tests.postgres_server import PostgresServer, pg_bin_dir, postgres_server
from tests.support import serve


def event(id: str = "e1", data: bytes | None = None) -> FunctionEvent:
    attributes = {"specversion": "1.0", "id": id, "source": "/tests", "type": "t"}
    if data is not None:
        attributes["datacontenttype"] = "application/json"
    return FunctionEvent(CloudEvent.create(attributes, data))


async def test_concurrent_duplicates_run_once_and_repeats_get_the_stored_reply(nats_server: NatsServer):
    runs: list[str] = []

    @idempotent(ledger=KvLedger(nats_server.url))
    async def handle(e):  # type: ignore[no-untyped-def]
        runs.append(e["id"])
        await asyncio.sleep(0.3)
        return {"type": "done", "source": "/t", "data": {"n": len(runs)}}

    results = await asyncio.gather(*(handle(event()) for _ in range(10)), return_exceptions=True)
    assert runs == ["e1"]
    replies = [r for r in results if not isinstance(r, BaseException)]
    assert len(replies) == 1 and replies[0]["data"] == {"n": 1}
    assert replies[0]["id"].startswith("reply-")  # a stable id: a repeat adds no new event downstream
    assert all(isinstance(r, RetryLater) for r in results if isinstance(r, BaseException))
    assert await handle(event()) == replies[0]  # a repeat: the stored reply, id and all, without a run
    assert runs == ["e1"]
    await handle(event("e2"))
    assert runs == ["e1", "e2"]


async def test_a_failure_leaves_no_record(nats_server: NatsServer):
    attempts = 0

    @idempotent(ledger=KvLedger(nats_server.url))
    def handle(e):  # type: ignore[no-untyped-def]
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise ValueError("first try fails")
        return None

    with pytest.raises(ValueError):
        await handle(event())
    assert await handle(event()) is None and attempts == 2
    assert await handle(event()) is None and attempts == 2


async def test_keys_expire_and_can_come_from_the_data(nats_server: NatsServer):
    runs = 0

    @idempotent(key="order.id", expires_after="PT1S", ledger=KvLedger(nats_server.url))
    async def handle(e):  # type: ignore[no-untyped-def]
        nonlocal runs
        runs += 1

    await handle(event("a", b'{"order": {"id": 7}}'))
    await handle(event("b", b'{"order": {"id": 7}}'))  # another event id, the same order: the same key
    assert runs == 1
    await asyncio.sleep(2.5)
    await handle(event("c", b'{"order": {"id": 7}}'))
    assert runs == 2


async def test_an_abandoned_run_is_taken_over(nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("RIPPLE_FUNCTION", "shop/orders")  # both handlers are the one function, as after a restart
    ledger = KvLedger(nats_server.url, in_progress_expiry=0.5)
    started = asyncio.Event()

    @idempotent(ledger=ledger)
    async def stuck(e):  # type: ignore[no-untyped-def]
        started.set()
        await asyncio.sleep(3600)

    task = asyncio.create_task(stuck(event()))
    await started.wait()
    # A process that dies mid-run cannot delete its record: simulate it by closing its connection first.
    await ledger._nc.close()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)

    @idempotent(ledger=KvLedger(nats_server.url, in_progress_expiry=0.5))
    async def second(e):  # type: ignore[no-untyped-def]
        return {"type": "ran", "source": "/t"}

    with pytest.raises(RetryLater):
        await second(event())
    await asyncio.sleep(0.6)
    assert (await second(event()))["type"] == "ran"


async def test_the_runtime_answers_reject_422_and_retry_later_409():
    def handle(e):  # type: ignore[no-untyped-def]
        if e["id"] == "bad":
            raise Reject("not a CSV file")
        raise RetryLater("busy")

    import aiohttp

    async with serve(create_function_app(handle, timeout=5)) as url, aiohttp.ClientSession() as session:
        headers = {"ce-specversion": "1.0", "ce-source": "/t", "ce-type": "t"}
        async with session.post(url, headers={**headers, "ce-id": "bad"}) as rejected:
            assert rejected.status == 422 and (await rejected.json())["error"] == "not a CSV file"
        async with session.post(url, headers={**headers, "ce-id": "later"}) as later:
            assert later.status == 409


# --- the PostgreSQL ledger -----------------------------------------------------------------------------------

pg_only = pytest.mark.skipif(pg_bin_dir() is None, reason="PostgreSQL is not installed")


@pytest.fixture(scope="module")
def pg() -> Iterator[PostgresServer]:
    if pg_bin_dir() is None:
        pytest.skip("PostgreSQL is not installed")
    with postgres_server() as server:
        yield server


@pg_only
def test_the_postgres_ledger_commits_with_the_handlers_writes(pg: PostgresServer):
    database = pg.create_database()
    pg.execute(database, "CREATE TABLE scores (id int PRIMARY KEY, score int)")
    calls = 0

    @idempotent(ledger=PostgresLedger(pg.dsn(database)))
    def handle(e, db):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        db.execute("INSERT INTO scores VALUES (1, 10) ON CONFLICT (id) DO UPDATE SET score = scores.score + 10")
        if e["id"] == "boom":
            raise ValueError("fails after writing")
        time.sleep(0.2)
        return {"type": "scored", "source": "/t"}

    with concurrent.futures.ThreadPoolExecutor(8) as pool:  # concurrent duplicates: one run, the rest wait
        replies = list(pool.map(lambda _: handle(event("e1")), range(8)))
    assert calls == 1 and len({json.dumps(r, sort_keys=True) for r in replies}) == 1  # the same reply, id and all
    with pytest.raises(ValueError):
        handle(event("boom"))
    with psycopg2.connect(pg.dsn(database)) as conn, conn.cursor() as cur:
        cur.execute("SELECT score FROM scores")
        assert cur.fetchall() == [(10,)]  # the failed run's write was rolled back with its ledger row
        cur.execute("SELECT count(*) FROM ripple_idempotency")
        assert cur.fetchone() == (1,)
    conn.close()
