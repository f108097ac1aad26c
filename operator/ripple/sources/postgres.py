"""The PostgreSQL source: row changes read from the write-ahead log by logical replication.

Why logical replication (and not polling or LISTEN/NOTIFY): a replication slot keeps every change on the server
until the client confirms it, so changes made while the adapter is down, or while the sink is slow, wait for it.
Polling misses deletes and in-between updates; NOTIFY drops whatever arrives while nobody listens.

Why ``pgoutput`` over psycopg2's replication connection: ``pgoutput`` is built into PostgreSQL 10+ and offered by
the managed services (no extension to install, unlike wal2json), its messages are small and typed by the table's
relation message (``sources/pgoutput.py`` decodes them); psycopg2 is the mature client of the replication
protocol, used here in its asynchronous mode, so the event loop is never blocked on the socket.

The contract: the adapter creates (or uses the named) publication and slot, sends each change of a committed
transaction in order, and confirms the transaction's end LSN to the server only after the sink accepted every
change (or it was dead-lettered). A crash at any point replays from the last confirmed LSN; each change's id is
``<commit LSN>-<position in the transaction>``, the same on replay, so the broker stores it once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from dataclasses import dataclass
from typing import Any

import orjson
import psycopg2
import psycopg2.extensions
import psycopg2.extras
from psycopg2 import sql

from ripple.api.models import EventSource
from ripple.events.model import CloudEvent, EventError
from ripple.sources.delivery import SourceDelivery
from ripple.sources.pgoutput import Begin, Change, Commit, DecodeError, Relation, decode, format_lsn
from ripple.sources.webhook import source_path

__all__ = [
    "EVENT_TYPES",
    "FEEDBACK_EVERY",
    "PostgresStatus",
    "Transactions",
    "default_names",
    "drop_slot",
    "postgres_event",
    "run_postgres",
]

log = logging.getLogger(__name__)

EVENT_TYPES = {op: f"dev.ripple.sources.postgres.{op}" for op in ("insert", "update", "delete")}
FEEDBACK_EVERY = 10.0
"""Seconds between status updates to the server (it drops a replication client silent for wal_sender_timeout)."""
CONNECT_TIMEOUT = 10
STATEMENT_TIMEOUT_MS = 30_000


@dataclass
class PostgresStatus:
    """What status shows of a PostgreSQL source."""

    slot: str = ""
    confirmed_lsn: str | None = None
    lag_bytes: int | None = None
    """WAL the server keeps for the slot beyond what the adapter confirmed."""


def default_names(source: EventSource) -> tuple[str, str]:
    """(publication, slot) unless the spec names them: ``ripple_<namespace>_<name>``, as PostgreSQL allows."""
    spec = source.spec.postgres
    assert spec is not None
    base = re.sub(r"[^a-z0-9_]", "_", f"ripple_{source.namespace}_{source.name}".lower())[:63]
    return spec.publication or base, spec.slot or base


def postgres_event(source: EventSource, relation: Relation, change: Change, begin: Begin, position: int,
                   change_lsn: int) -> CloudEvent:
    data: dict[str, Any] = {
        "table": relation.qualified,
        "op": change.op,
        "new": change.new,
        "old": change.old,
        "lsn": format_lsn(change_lsn),
        "xid": begin.xid,
        "commitTime": begin.commit_time.isoformat().replace("+00:00", "Z"),
    }
    attributes: dict[str, Any] = {
        "specversion": "1.0",
        "id": f"{format_lsn(begin.final_lsn)}-{position}",
        "source": source_path(source.namespace, source.name),
        "type": EVENT_TYPES[change.op],
        "subject": relation.qualified,
        "time": data["commitTime"],
        "datacontenttype": "application/json",
    }
    overrides = source.spec.ce_overrides
    if overrides is not None:
        attributes.update(overrides.extensions)
    return CloudEvent.create(attributes, orjson.dumps(data))


def _table(name: str) -> sql.Composable:
    schema, _, table = name.rpartition(".")
    return sql.SQL(".").join([sql.Identifier(schema or "public"), sql.Identifier(table)])


def _prepare(dsn: str, source: EventSource) -> None:
    """Create or align the publication, and create the slot unless it exists (a plain connection, in a thread)."""
    spec = source.spec.postgres
    assert spec is not None
    publication, slot = default_names(source)
    publish = ", ".join(op.lower() for op in spec.operations)
    tables = sql.SQL(", ").join(_table(t) for t in spec.tables)
    with contextlib.closing(psycopg2.connect(dsn, connect_timeout=CONNECT_TIMEOUT,
                                             options=f"-c statement_timeout={STATEMENT_TIMEOUT_MS}")) as conn:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_publication WHERE pubname = %s", (publication,))
            if cur.fetchone() is None:
                cur.execute(sql.SQL("CREATE PUBLICATION {} FOR TABLE {} WITH (publish = {})").format(
                    sql.Identifier(publication), tables, sql.Literal(publish)))
            elif spec.publication is None:  # ours: keep it as the spec says
                cur.execute(sql.SQL("ALTER PUBLICATION {} SET TABLE {}").format(sql.Identifier(publication), tables))
                cur.execute(sql.SQL("ALTER PUBLICATION {} SET (publish = {})").format(
                    sql.Identifier(publication), sql.Literal(publish)))
            cur.execute("SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", (slot,))
            if cur.fetchone() is None:
                cur.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (slot,))


def _lag(dsn: str, slot: str) -> tuple[str | None, int | None]:
    with contextlib.closing(psycopg2.connect(dsn, connect_timeout=CONNECT_TIMEOUT)) as conn, conn.cursor() as cur:
        cur.execute("SELECT confirmed_flush_lsn::text, pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)"
                    " FROM pg_replication_slots WHERE slot_name = %s", (slot,))
        row = cur.fetchone()
    return (None, None) if row is None else (row[0], int(row[1]) if row[1] is not None else None)


def drop_slot(dsn: str, source: EventSource) -> bool:
    """Drop the slot (and publication) the source created, so that the server stops keeping WAL for it; ``False``
    when there was none. Blocking: run it in a thread."""
    spec = source.spec.postgres
    assert spec is not None
    publication, slot = default_names(source)
    with contextlib.closing(psycopg2.connect(dsn, connect_timeout=CONNECT_TIMEOUT)) as conn:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = %s",
                        (slot,))
            dropped = cur.rowcount > 0
            if spec.publication is None:
                cur.execute(sql.SQL("DROP PUBLICATION IF EXISTS {}").format(sql.Identifier(publication)))
    return dropped


async def _wait(conn: Any, timeout: float = CONNECT_TIMEOUT) -> None:
    """Drive an asynchronous psycopg2 connection until its pending operation completes."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        state = conn.poll()
        if state == psycopg2.extensions.POLL_OK:
            return
        if state not in (psycopg2.extensions.POLL_READ, psycopg2.extensions.POLL_WRITE):
            raise psycopg2.OperationalError(f"unexpected poll state {state}")
        write = state == psycopg2.extensions.POLL_WRITE
        if not await _io_ready(loop, conn.fileno(), max(0.0, deadline - loop.time()), write=write):
            raise TimeoutError(f"PostgreSQL did not answer within {timeout:g}s")


async def run_postgres(source: EventSource, delivery: SourceDelivery, dsn: str, status: PostgresStatus) -> None:
    """Stream changes until cancelled; a lost connection ends the run with an error (its supervisor restarts)."""
    spec = source.spec.postgres
    assert spec is not None, "run_postgres runs a PostgreSQL source"
    publication, slot = default_names(source)
    status.slot = slot
    await asyncio.to_thread(_prepare, dsn, source)
    conn = psycopg2.connect(dsn, connection_factory=psycopg2.extras.LogicalReplicationConnection,
                            connect_timeout=CONNECT_TIMEOUT, async_=True)
    try:
        await _wait(conn)
        cursor = conn.cursor()
        cursor.start_replication(slot_name=slot, decode=False, status_interval=int(FEEDBACK_EVERY),
                                 options={"proto_version": "1", "publication_names": publication})
        await _wait(conn)
        await _stream(source, delivery, conn, cursor, dsn, status)
    finally:
        conn.close()


class Transactions:
    """Turns the replication stream's messages into events, in order, and says which LSN may be confirmed.

    A message no event can be made of (a decoding failure, a change that breaks an event's limits) is kept as a
    dead letter with its bytes, and the stream goes on: one bad change never holds the slot back for ever.
    """

    def __init__(self, source: EventSource, delivery: SourceDelivery) -> None:
        self.source = source
        self.delivery = delivery
        self.relations: dict[int, Relation] = {}
        self.begin: Begin | None = None
        self.position = 0

    async def handle(self, payload: bytes, data_start: int) -> int | None:
        """Send what ``payload`` carries; the end LSN to confirm once it is a commit, else ``None``."""
        try:
            decoded = decode(payload, self.relations)
            if isinstance(decoded, Change):
                if self.begin is None:
                    raise DecodeError("a change outside a transaction")
                relation = self.relations[decoded.relation_oid]
                event = postgres_event(self.source, relation, decoded, self.begin, self.position, data_start)
        except (DecodeError, EventError, ValueError) as exc:
            ident = f"{format_lsn(self.begin.final_lsn) if self.begin else 'none'}-{self.position}-{data_start}"
            self.position += 1
            await self.delivery.keep_undecodable(payload, f"replication message at {format_lsn(data_start)}: {exc}",
                                                 ident=ident)
            return None
        if isinstance(decoded, Begin):
            self.begin, self.position = decoded, 0
        elif isinstance(decoded, Change):
            self.position += 1
            await self.delivery.deliver(event)  # in order: a row's changes must reach the sink as they were made
        elif isinstance(decoded, Commit):
            # Every change of the transaction is kept (accepted or dead-lettered): the server may forget it.
            self.begin = None
            return decoded.end_lsn
        return None


async def _stream(source: EventSource, delivery: SourceDelivery, conn: Any, cursor: Any, dsn: str,
                  status: PostgresStatus) -> None:
    loop = asyncio.get_running_loop()
    transactions = Transactions(source, delivery)
    confirmed = [0]
    """The end LSN of the last transaction whose every change was kept."""

    async def keep_alive() -> None:
        # Also while a delivery is being retried: the server drops a client silent for wal_sender_timeout.
        while True:
            await asyncio.sleep(FEEDBACK_EVERY)
            cursor.send_feedback(flush_lsn=confirmed[0], reply=True)
            status.confirmed_lsn, status.lag_bytes = await asyncio.to_thread(_lag, dsn, status.slot)

    reporter = asyncio.create_task(keep_alive(), name=f"postgres feedback {delivery.name}")
    try:
        while True:
            if reporter.done():
                reporter.result()  # its failure (a lost connection) ends the run
            message = cursor.read_message()
            if message is None:
                await _io_ready(loop, conn.fileno(), FEEDBACK_EVERY)
                continue
            end_lsn = await transactions.handle(message.payload, message.data_start)
            if end_lsn is not None:
                confirmed[0] = end_lsn
                cursor.send_feedback(flush_lsn=end_lsn)
    finally:
        reporter.cancel()
        await asyncio.gather(reporter, return_exceptions=True)


async def _io_ready(loop: asyncio.AbstractEventLoop, fd: int, timeout: float, *, write: bool = False) -> bool:
    """Wait until ``fd`` can be read (or written); ``False`` when ``timeout`` passed first."""
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    (loop.add_writer if write else loop.add_reader)(fd, wake)
    try:
        await asyncio.wait_for(ready, timeout)
    except TimeoutError:
        return False
    finally:
        (loop.remove_writer if write else loop.remove_reader)(fd)
    return True
