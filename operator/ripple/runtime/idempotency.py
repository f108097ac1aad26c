"""``@idempotent``: a handler that runs once per event however often the event is delivered.

Delivery is at least once, so a handler sees an event again after a lost answer, a restarted dispatcher or a
producer's retry. Decorated, it runs for the first delivery of a key; its reply is stored, and a later delivery
of the same key returns that reply without running the handler. A delivery that arrives while the first is still
running gets :class:`~ripple.runtime.errors.RetryLater` (409: the dispatcher comes back after its backoff). A
handler that raises leaves no record, so the retry runs it afresh. The key is the event's ``(source, id)`` unless
``key`` names a path into its data (``"order.id"``); ``expires_after`` bounds how long a key is remembered.

Two ledgers:

* **JetStream KV** (the default): bucket ``ripple-idempotency`` on the NATS that Ripple gives every Function
  (``RIPPLE_NATS_URL``); the first delivery *creates* the key (an atomic create-if-absent), records carry their
  own TTL (``Nats-TTL``), and a record left ``running`` by a crashed process is taken over after
  ``in_progress_expiry``.
* **PostgreSQL** (:class:`PostgresLedger`): the ledger row is written in the same transaction as the handler's
  own writes, which the handler makes through the cursor it is given. Either both commit or neither does: the
  effect happens exactly once, which is what a database sink wants. A duplicate arriving meanwhile waits on the
  row's lock, then sees the committed reply.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import inspect
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson

from ripple.api.durations import seconds
from ripple.runtime.errors import RetryLater
from ripple.runtime.event import reply_event
from ripple.store.auth import NatsAuth
from ripple.store.jetstream import server_urls

__all__ = [
    "BUCKET",
    "NATS_URL_ENV",
    "IdempotencyError",
    "KvLedger",
    "PostgresLedger",
    "idempotency_key",
    "idempotent",
    "stable_reply",
]

BUCKET = "ripple-idempotency"
NATS_URL_ENV = "RIPPLE_NATS_URL"
FUNCTION_ENV = "RIPPLE_FUNCTION"
DEFAULT_EXPIRY = "PT24H"
DEFAULT_IN_PROGRESS_EXPIRY = 300.0
F = TypeVar("F", bound=Callable[..., Any])


class IdempotencyError(Exception):
    """The ledger cannot be used (no NATS URL, a key path missing from the event's data)."""


def stable_reply(result: Any, key: str) -> Any:
    """The reply as it is stored: with an ``id`` of its own derived from the key (a repeat must give the same
    reply, id included, or every redelivery would add a new event downstream), and checked to be a valid reply
    before anything is committed."""
    if isinstance(result, Mapping) and "id" not in result:
        result = {**result, "id": f"reply-{key[:32]}"}
    if result is not None:
        reply_event(result)  # raises for a reply the runtime could not send: nothing is committed then
    return result


def idempotency_key(event: Mapping[str, Any], key: str | None, scope: str) -> str:
    """A ledger key for ``event``: a hash of the function's name and ``(source, id)``, or of the value at ``key``."""
    if key is None:
        parts = [scope, str(event["source"]), str(event["id"])]
    else:
        value: Any = getattr(event, "data", None)
        for step in key.split("."):
            if not isinstance(value, Mapping) or step not in value:
                raise IdempotencyError(f"the event's data has no {key!r} to key on")
            value = value[step]
        parts = [scope, key, orjson.dumps(value).decode()]
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


@dataclass
class KvLedger:
    """The JetStream KV ledger; one connection per process, opened on first use."""

    url: str | None = None
    bucket: str = BUCKET
    in_progress_expiry: float = DEFAULT_IN_PROGRESS_EXPIRY
    _kv: Any = field(default=None, repr=False)
    _nc: Any = field(default=None, repr=False)
    _js: Any = field(default=None, repr=False)
    _lock: asyncio.Lock | None = field(default=None, repr=False)

    async def _bucket(self) -> Any:
        if self._kv is not None and self._nc is not None and self._nc.is_connected:
            return self._kv
        import nats  # imported on first use: a function that never uses the ledger does not pay for it
        import nats.js.errors

        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._kv is not None and self._nc is not None and self._nc.is_connected:
                return self._kv
            url = self.url or os.environ.get(NATS_URL_ENV)
            if not url:
                raise IdempotencyError(f"no NATS for the idempotency ledger: ${NATS_URL_ENV} is not set")
            try:
                secured = await asyncio.to_thread(NatsAuth.from_env().connect_options)
            except ValueError as exc:
                raise IdempotencyError(f"NATS settings for the idempotency ledger: {exc}") from None
            self._nc = await nats.connect(**secured, servers=server_urls(url), name="ripple-idempotency",
                                          connect_timeout=5, max_reconnect_attempts=-1)
            js = self._js = self._nc.jetstream(timeout=5)
            try:
                self._kv = await js.key_value(self.bucket)
            except nats.js.errors.BucketNotFoundError:
                self._kv = await js.create_key_value(bucket=self.bucket, history=1)
            return self._kv

    async def run(self, key: str, ttl: float, call: Callable[[], Any]) -> Any:
        import nats.js.errors

        kv = await self._bucket()
        running = orjson.dumps({"state": "running", "since": time.time()})
        try:
            revision = await kv.create(key, running, msg_ttl=ttl)
        except nats.js.errors.KeyWrongLastSequenceError:
            revision = await self._existing(kv, key, running)
            if not isinstance(revision, int):
                return revision.reply
        try:
            result = stable_reply(await call(), key)
        except BaseException:
            await kv.delete(key, last=revision)  # no record: the retry runs the handler afresh
            raise
        done = orjson.dumps({"state": "done", "reply": result})
        subject = f"$KV.{self.bucket}.{key}"
        await self._js.publish(subject, done, headers={"Nats-Expected-Last-Subject-Sequence": str(revision),
                                                     "Nats-TTL": f"{max(1, int(ttl))}s"})
        return result

    async def _existing(self, kv: Any, key: str, running: bytes) -> int | _Done:
        """The record a create found: its reply, a retry for a run in progress, or a takeover of an abandoned one."""
        import nats.js.errors

        try:
            entry = await kv.get(key)
        except nats.js.errors.KeyNotFoundError:  # expired or deleted in between: take it
            return int(await kv.create(key, running))
        record = orjson.loads(entry.value or b"{}")
        if record.get("state") == "done":
            return _Done(record.get("reply"))
        if time.time() - float(record.get("since", 0)) < self.in_progress_expiry:
            raise RetryLater("this event is being handled by another delivery")
        try:  # the run that wrote this record died without a word: take over, atomically
            return int(await kv.update(key, running, last=entry.revision))
        except nats.js.errors.KeyWrongLastSequenceError:
            raise RetryLater("this event is being handled by another delivery") from None


@dataclass(frozen=True)
class _Done:
    reply: Any


@dataclass
class PostgresLedger:
    """A ledger table in the handler's own database; the handler gets the transaction's cursor as its second
    argument and must not commit itself."""

    dsn: str | Callable[[], str]
    table: str = "ripple_idempotency"
    _ready: bool = field(default=False, repr=False)

    def _ensure(self, cur: Any) -> None:
        from psycopg2 import sql

        # Serialised: concurrent CREATE TABLE IF NOT EXISTS may still collide on the table's row type.
        cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (self.table,))
        cur.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {} (key text PRIMARY KEY, reply jsonb, "
                            "created_at timestamptz NOT NULL DEFAULT now())").format(sql.Identifier(self.table)))

    def run_sync(self, key: str, ttl: float, call: Callable[[Any], Any]) -> Any:
        import psycopg2
        from psycopg2 import sql

        dsn = self.dsn if isinstance(self.dsn, str) else self.dsn()
        conn = psycopg2.connect(dsn, connect_timeout=10)
        try:
            if not self._ready:
                with conn, conn.cursor() as cur:
                    self._ensure(cur)
                self._ready = True
            table = sql.Identifier(self.table)
            with conn, conn.cursor() as cur:
                cur.execute(sql.SQL("DELETE FROM {} WHERE key = %s AND created_at < now() - %s * interval '1 second'")
                            .format(table), (key, ttl))
                cur.execute(sql.SQL("INSERT INTO {} (key) VALUES (%s) ON CONFLICT DO NOTHING").format(table), (key,))
                if cur.rowcount == 0:  # a committed duplicate (we waited on its row lock if it was running)
                    cur.execute(sql.SQL("SELECT reply FROM {} WHERE key = %s").format(table), (key,))
                    row = cur.fetchone()
                    return None if row is None else row[0]
                result = stable_reply(call(cur), key)
                cur.execute(sql.SQL("UPDATE {} SET reply = %s WHERE key = %s").format(table),
                            (orjson.dumps(result).decode(), key))
                return result  # leaving the block commits the handler's writes and the ledger row together
        finally:
            conn.close()


def idempotent(handler: F | None = None, *, key: str | None = None, expires_after: str = DEFAULT_EXPIRY,
               ledger: KvLedger | PostgresLedger | None = None,
               in_progress_expiry: float = DEFAULT_IN_PROGRESS_EXPIRY) -> Any:
    """Decorate a handler (``@idempotent`` or ``@idempotent(key="order.id", expires_after="P7D")``)."""

    def decorate(fn: F) -> F:
        ttl = seconds(expires_after)
        store = ledger if ledger is not None else KvLedger(in_progress_expiry=in_progress_expiry)
        scope = os.environ.get(FUNCTION_ENV, fn.__module__ + "." + fn.__qualname__)

        if isinstance(store, PostgresLedger):
            pg = store

            @functools.wraps(fn)
            def run_in_transaction(event: Any) -> Any:
                return pg.run_sync(idempotency_key(event, key, scope), ttl, lambda cur: fn(event, cur))

            return run_in_transaction  # type: ignore[return-value]  # sync: the runtime runs it in a thread

        kv = store

        @functools.wraps(fn)
        async def run_once(event: Any) -> Any:
            async def call() -> Any:
                if inspect.iscoroutinefunction(fn):
                    return await fn(event)
                return await asyncio.to_thread(fn, event)  # a blocking handler runs in a thread, as the runtime's

            return await kv.run(idempotency_key(event, key, scope), ttl, call)

        return run_once  # type: ignore[return-value]

    return decorate(handler) if handler is not None else decorate
