"""Decoding PostgreSQL's logical replication protocol (the built-in ``pgoutput`` plugin, protocol version 1).

Pure functions over the bytes of one message: no connection, no I/O. The message formats are PostgreSQL's
("Logical Replication Message Formats" in its documentation): ``B`` begin, ``C`` commit, ``R`` relation (a
table's columns and their type OIDs, sent before the first change of that table in a session), ``I``/``U``/``D``
the changes, whose tuples carry each column as null, unchanged TOAST, or text. Column text is turned into JSON
by type: integers and booleans as such, floats as numbers (NaN and infinities as strings), ``numeric`` as a
string (no precision lost), ``json``/``jsonb`` parsed, timestamps as RFC 3339, ``bytea`` as base64, the rest as
PostgreSQL's own text.
"""

from __future__ import annotations

import base64
import json
import math
import struct
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = [
    "Begin",
    "Change",
    "Column",
    "Commit",
    "DecodeError",
    "Relation",
    "column_value",
    "decode",
    "format_lsn",
    "parse_lsn",
]

PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
UNCHANGED = object()
"""A TOASTed value the change did not touch: PostgreSQL does not send it, so the event leaves the column out."""

BOOL, BYTEA, INT8, INT2, INT4, TEXT, JSON, FLOAT4, FLOAT8 = 16, 17, 20, 21, 23, 25, 114, 700, 701
TIMESTAMP, TIMESTAMPTZ, NUMERIC, JSONB = 1114, 1184, 1700, 3802


class DecodeError(ValueError):
    """A replication message that does not follow the protocol."""


@dataclass(frozen=True)
class Column:
    name: str
    type_oid: int
    key: bool


@dataclass(frozen=True)
class Relation:
    oid: int
    schema: str
    name: str
    replica_identity: str
    """``d`` default (primary key), ``n`` nothing, ``f`` full, ``i`` index."""
    columns: tuple[Column, ...]

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"


@dataclass(frozen=True)
class Begin:
    final_lsn: int
    """The LSN of the transaction's commit record: part of every change's id."""
    commit_time: datetime
    xid: int


@dataclass(frozen=True)
class Commit:
    commit_lsn: int
    end_lsn: int
    """What to confirm as flushed once every change of the transaction was accepted."""
    commit_time: datetime


@dataclass(frozen=True)
class Change:
    op: str
    """``insert``, ``update`` or ``delete``."""
    relation_oid: int
    new: dict[str, Any] | None = None
    old: dict[str, Any] | None = None
    old_is_key: bool = False
    """The old tuple holds only the replica identity's key columns (``K``), not the whole row (``O``)."""


Message = Begin | Commit | Relation | Change | None


@dataclass
class _Reader:
    data: bytes
    pos: int = 0

    def take(self, fmt: str) -> Any:
        packer = struct.Struct("!" + fmt)
        if self.pos + packer.size > len(self.data):
            raise DecodeError("message ends early")
        (value,) = packer.unpack_from(self.data, self.pos)
        self.pos += packer.size
        return value

    def byte(self) -> str:
        return chr(self.take("B"))

    def string(self) -> str:
        end = self.data.find(b"\0", self.pos)
        if end < 0:
            raise DecodeError("unterminated string")
        text = self.data[self.pos:end].decode()
        self.pos = end + 1
        return text

    def raw(self, length: int) -> bytes:
        if length < 0 or self.pos + length > len(self.data):
            raise DecodeError("column value ends early")
        chunk = self.data[self.pos:self.pos + length]
        self.pos += length
        return chunk


def _time(microseconds: int) -> datetime:
    return PG_EPOCH + timedelta(microseconds=microseconds)


def parse_lsn(text: str) -> int:
    high, _, low = text.partition("/")
    return (int(high, 16) << 32) | int(low, 16)


def format_lsn(lsn: int) -> str:
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def decode(payload: bytes, relations: dict[int, Relation]) -> Message:
    """One pgoutput message; ``R`` messages are also recorded in ``relations``. Types, origins, truncates and
    logical messages give ``None``."""
    if not payload:
        raise DecodeError("empty message")
    reader = _Reader(payload, 1)
    kind = chr(payload[0])
    if kind == "B":
        return Begin(reader.take("Q"), _time(reader.take("q")), reader.take("I"))
    if kind == "C":
        reader.take("B")
        return Commit(reader.take("Q"), reader.take("Q"), _time(reader.take("q")))
    if kind == "R":
        oid, schema, name, identity = reader.take("I"), reader.string(), reader.string(), reader.byte()
        columns = []
        for _ in range(reader.take("H")):
            flags, column, type_oid, _ = reader.take("B"), reader.string(), reader.take("I"), reader.take("i")
            columns.append(Column(column, type_oid, bool(flags & 1)))
        relation = Relation(oid, schema, name, identity, tuple(columns))
        relations[oid] = relation
        return relation
    if kind in "IUD":
        oid = reader.take("I")
        known = relations.get(oid)
        if known is None:
            raise DecodeError(f"a change of relation {oid} arrived before its relation message")
        return _change(kind, reader, known)
    return None


def _change(kind: str, reader: _Reader, relation: Relation) -> Change:
    if kind == "I":
        if reader.byte() != "N":
            raise DecodeError("an insert without its new tuple")
        return Change("insert", relation.oid, new=_tuple(reader, relation, key_only=False))
    marker = reader.byte()
    old, old_is_key = None, False
    if marker in "KO":
        old_is_key = marker == "K"
        old = _tuple(reader, relation, key_only=old_is_key)
        if kind == "U":
            marker = reader.byte()
    if kind == "D":
        return Change("delete", relation.oid, old=old, old_is_key=old_is_key)
    if marker != "N":
        raise DecodeError("an update without its new tuple")
    return Change("update", relation.oid, new=_tuple(reader, relation, key_only=False), old=old,
                  old_is_key=old_is_key)


def _tuple(reader: _Reader, relation: Relation, *, key_only: bool) -> dict[str, Any]:
    count = reader.take("H")
    if count != len(relation.columns):
        raise DecodeError(f"{relation.qualified}: a tuple of {count} columns, the relation has "
                          f"{len(relation.columns)}")
    row: dict[str, Any] = {}
    for column in relation.columns:
        kind = reader.byte()
        if kind == "n":
            value: Any = None
        elif kind == "u":
            value = UNCHANGED
        elif kind == "t":
            value = column_value(column.type_oid, reader.raw(reader.take("I")).decode())
        else:
            raise DecodeError(f"{relation.qualified}.{column.name}: unknown tuple value kind {kind!r}")
        if value is UNCHANGED or (key_only and not column.key):
            continue
        row[column.name] = value
    return row


def column_value(type_oid: int, text: str) -> Any:
    """A column's text as JSON, by its type."""
    if type_oid == BOOL:
        return text == "t"
    if type_oid in (INT2, INT4, INT8):
        return int(text)
    if type_oid in (FLOAT4, FLOAT8):
        number = float(text)
        return text if math.isnan(number) or math.isinf(number) else number
    if type_oid in (JSON, JSONB):
        return json.loads(text)
    if type_oid == BYTEA:
        return base64.b64encode(bytes.fromhex(text[2:]) if text.startswith("\\x") else text.encode()).decode()
    if type_oid in (TIMESTAMP, TIMESTAMPTZ):
        return _rfc3339(text)
    return text  # numeric (as a string: no precision lost), text, uuid, date, arrays, ...: PostgreSQL's text


def _rfc3339(text: str) -> str:
    """PostgreSQL's ISO timestamp text (``2024-01-02 03:04:05.5+01``) as RFC 3339 (``2024-01-02T03:04:05.5+01:00``)."""
    if text in ("infinity", "-infinity"):
        return text
    stamp = text.replace(" ", "T", 1)
    for sign in "+-":
        head, sep, zone = stamp.rpartition(sign)
        if sep and "T" in head and ":" not in zone and zone.isdigit():
            return f"{head}{sign}{zone}:00"
        if sep and "T" in head and zone.count(":") == 1 and zone.replace(":", "").isdigit():
            return stamp
    return stamp
