"""The PostgreSQL source against a real PostgreSQL 15 with logical replication: column types, replica
identities, the flush confirmed only after the sink accepted (kill -9 mid-stream loses and doubles nothing),
and the slot dropped with the source."""

from __future__ import annotations

import asyncio
import base64
import json
import signal
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest

from ripple.api.models import EventSource
from ripple.ingress.app import IngressSettings, create_ingress_app
from ripple.sources.postgres import default_names, drop_slot
from ripple.store import EventStore, subjects
from tests.postgres_server import PostgresServer, pg_bin_dir, postgres_server
from tests.processes import RippleProcess
from tests.support import eventually, serve

pytestmark = pytest.mark.skipif(pg_bin_dir() is None, reason="PostgreSQL is not installed")


@pytest.fixture(scope="module")
def pg() -> Iterator[PostgresServer]:
    with postgres_server() as server:
        yield server


def manifest(dsn: str, tables: str = "public.items", extra: str = "") -> str:
    # Slots are per server, not per database: each test's database names its own.
    extra += f", slot: {dsn.rsplit('=', 1)[-1]}"
    return (
        f"apiVersion: v1\nkind: Secret\nmetadata: {{name: db}}\nstringData: {{dsn: '{dsn}'}}\n---\n"
        "apiVersion: ripple.dev/v1alpha1\nkind: EventSource\nmetadata: {name: items}\nspec:\n"
        "  sink: {ref: {kind: Broker, name: default}}\n"
        f"  postgres: {{connectionSecretRef: {{name: db, key: dsn}}, tables: [{tables}]{extra}}}\n"
    )


async def _changes(served, count: int):  # type: ignore[no-untyped-def]
    events = await served.events()
    return events if len(events) >= count else None


def data(event) -> dict:  # type: ignore[no-untyped-def]
    return json.loads(event.data)


TYPES = """
CREATE TABLE items (
  id int PRIMARY KEY, small int2, big int8, flag bool, ratio float8, nan float8, price numeric(12, 4),
  name text, code varchar(8), doc json, tags jsonb, at timestamptz, local timestamp, day date, blob bytea,
  uid uuid, missing text
)"""


async def test_every_column_type_round_trips(serve_sources, pg: PostgresServer):
    database = pg.create_database()
    pg.execute(database, TYPES)
    async with serve_sources(manifest(pg.dsn(database))) as served:
        await eventually(lambda: served.sources.status()["default/items"].get("slot"), timeout=15)
        await asyncio.sleep(0.5)
        pg.execute(database, """INSERT INTO items VALUES (1, -7, 9007199254740993, true, 0.25, 'NaN', 12.3400,
            'naïve ☃', 'ab', '{"a": [1, 2]}', '{"b": null}', '2024-06-13 12:00:00.5+02', '2024-06-13 12:00:00',
            '2024-06-13', '\\x00ff10', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', NULL)""")
        (event,) = await eventually(lambda: _changes(served, 1), timeout=15)
    assert event.type == "dev.ripple.sources.postgres.insert" and event["subject"] == "public.items"
    body = data(event)
    assert body["table"] == "public.items" and body["op"] == "insert" and body["old"] is None
    assert body["new"] == {
        "id": 1, "small": -7, "big": 9007199254740993, "flag": True, "ratio": 0.25, "nan": "NaN", "price": "12.3400",
        "name": "naïve ☃", "code": "ab", "doc": {"a": [1, 2]}, "tags": {"b": None},
        "at": "2024-06-13T10:00:00.5+00:00", "local": "2024-06-13T12:00:00", "day": "2024-06-13",
        "blob": base64.b64encode(b"\x00\xff\x10").decode(), "uid": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
        "missing": None,
    }
    assert isinstance(body["xid"], int) and "/" in body["lsn"] and body["commitTime"].endswith("Z")


@pytest.mark.parametrize("identity", ["DEFAULT", "FULL"])
async def test_insert_update_delete_with_each_replica_identity(serve_sources, pg: PostgresServer, identity):
    database = pg.create_database()
    pg.execute(database, "CREATE TABLE items (id int PRIMARY KEY, name text, score int)",
               f"ALTER TABLE items REPLICA IDENTITY {identity}")
    async with serve_sources(manifest(pg.dsn(database))) as served:
        await eventually(lambda: served.sources.status()["default/items"].get("slot"), timeout=15)
        await asyncio.sleep(0.5)
        pg.execute(database, "INSERT INTO items VALUES (1, 'a', 10)")
        pg.execute(database, "UPDATE items SET score = 11 WHERE id = 1")
        pg.execute(database, "DELETE FROM items WHERE id = 1")
        events = await eventually(lambda: _changes(served, 3), timeout=15)
    _, update, delete = (data(e) for e in events)
    assert [e.type.rsplit(".", 1)[-1] for e in events] == ["insert", "update", "delete"]
    assert update["new"] == {"id": 1, "name": "a", "score": 11}
    if identity == "FULL":
        assert update["old"] == {"id": 1, "name": "a", "score": 10}
        assert delete["old"] == {"id": 1, "name": "a", "score": 11}
    else:
        assert update["old"] is None  # the key did not change: PostgreSQL sends no old tuple
        assert delete["old"] == {"id": 1}  # the replica identity: the primary key only
    assert len({e.id for e in events}) == 3


async def test_only_the_listed_operations_become_events(serve_sources, pg: PostgresServer):
    database = pg.create_database()
    pg.execute(database, "CREATE TABLE items (id int PRIMARY KEY)")
    async with serve_sources(manifest(pg.dsn(database), extra=", operations: [DELETE]")) as served:
        await eventually(lambda: served.sources.status()["default/items"].get("slot"), timeout=15)
        await asyncio.sleep(0.5)
        pg.execute(database, "INSERT INTO items VALUES (1)", "INSERT INTO items VALUES (2)")
        pg.execute(database, "DELETE FROM items WHERE id = 2")
        (event,) = await eventually(lambda: _changes(served, 1), timeout=15)
        await asyncio.sleep(0.5)
        assert await served.stored() == 1
    assert event.type == "dev.ripple.sources.postgres.delete"


@pytest.mark.e2e
async def test_kill_9_while_rows_are_inserted_loses_and_doubles_nothing(pg: PostgresServer, store: EventStore,
                                                                          tmp_path: Path):
    database = pg.create_database()
    pg.execute(database, "CREATE TABLE items (id int PRIMARY KEY, name text)")
    (tmp_path / "secrets" / "db").mkdir(parents=True)
    (tmp_path / "secrets" / "db" / "dsn").write_text(pg.dsn(database))
    source_file = tmp_path / "source.yaml"
    source_file.write_text(manifest(pg.dsn(database)).split("---\n")[1])
    settings = IngressSettings(brokers=lambda ns, b: (ns, b) == ("default", "default"))
    total = 1000
    async with serve(create_ingress_app(store, settings)) as ingress:
        args = ("source", "run", "--source", str(source_file), "--sink", f"{ingress}/default/default",
                "--secrets-dir", str(tmp_path / "secrets"), "--host", "127.0.0.1", "--port", "0")

        async def stored() -> int:
            info = await store.js.stream_info(subjects.stream_name("default", "default"))
            return int(info.state.messages)

        first = await RippleProcess(*args).start()
        await first.wait_for_line("source adapter listening")
        await eventually(lambda: _slot_exists(pg, database, database), timeout=15)
        writer = asyncio.create_task(asyncio.to_thread(_insert_rows, pg, database, total))
        await eventually(lambda: _at_least(stored, 200), timeout=30)
        first.process.send_signal(signal.SIGKILL)  # type: ignore[union-attr]
        await first.stop()
        await writer
        second = await RippleProcess(*args).start()
        try:
            await eventually(lambda: _at_least(stored, total), timeout=60)
            await asyncio.sleep(1)  # anything stored twice would show up now
        finally:
            await second.stop()
        assert await stored() == total


def _insert_rows(pg: PostgresServer, database: str, total: int) -> None:
    with psycopg2.connect(pg.dsn(database)) as conn:
        conn.autocommit = True
        with conn.cursor() as cur:
            for n in range(total):
                cur.execute("INSERT INTO items VALUES (%s, %s)", (n, f"row {n}"))
    conn.close()


async def _at_least(count, target: int) -> bool:  # type: ignore[no-untyped-def]
    return await count() >= target


def _slot_exists(pg: PostgresServer, database: str, slot: str) -> bool:
    with psycopg2.connect(pg.dsn(database)) as conn, conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", (slot,))
        found = cur.fetchone() is not None
    conn.close()
    return found


async def test_drop_slot_removes_the_slot_and_publication(serve_sources, pg: PostgresServer):
    database = pg.create_database()
    pg.execute(database, "CREATE TABLE items (id int PRIMARY KEY)")
    async with serve_sources(manifest(pg.dsn(database))) as served:
        await eventually(lambda: served.sources.status()["default/items"].get("slot"), timeout=15)
        source: EventSource = served.manifests.event_sources[("default", "items")]
    assert _slot_exists(pg, database, default_names(source)[1])
    assert await asyncio.to_thread(drop_slot, pg.dsn(database), source)
    assert not _slot_exists(pg, database, default_names(source)[1])
    assert not await asyncio.to_thread(drop_slot, pg.dsn(database), source)
