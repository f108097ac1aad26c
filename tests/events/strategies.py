"""Hypothesis strategies for hostile CloudEvents HTTP requests: binary, structured and batch modes, odd headers,
odd bodies, content codings. Each request is a :class:`Request`: header lines as bytes, the body as sent, and the
body before its content coding (what the ingress decodes, when the coding is valid)."""

from __future__ import annotations

import base64
import gzip
import json
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from hypothesis import strategies as st

from ripple.events.http import BATCH_CONTENT_TYPE, STRUCTURED_CONTENT_TYPE


@dataclass(frozen=True)
class Request:
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes
    """As sent: content-coded when ``coding`` says so."""
    plain: bytes
    """Before the content coding: what the server decodes when the coding is valid."""
    coding: str
    chunked: bool = False

    def server_view(self) -> list[tuple[str, str]]:
        """The headers as aiohttp hands them to a handler: UTF-8 with surrogate escapes, values stripped."""
        return [
            (name.decode("utf-8", "surrogateescape"), value.decode("utf-8", "surrogateescape").strip(" \t"))
            for name, value in self.headers
        ]

    def __repr__(self) -> str:  # what hypothesis prints for a failing example: short, and the bytes that matter
        return f"Request(headers={self.headers!r}, body={self.body[:300]!r}..., coding={self.coding!r})"


# --- text ------------------------------------------------------------------------------------------------------

TRICKY = [
    "", "1.0", "0.3", "2024-05-01T10:00:00Z", "2024-02-30T10:00:00Z", "100%", "%zz", "%41", "%", "%C3%A9", "\ud800",
    "\udfff", "a\x00b", "a\tb", "a\r\nb", "\x7f", "é", "🚀", "\u0085", "\ufeff", "a" * 257, "é" * 129,
    "x" * 1025, "t" * 5000,
]


def texts(max_size: int = 30) -> st.SearchStrategy[str]:
    """Any text: control characters, non-ASCII, lone surrogates, percent signs, long runs (build it once: a new
    strategy per draw makes hypothesis validate it each time)."""
    return st.one_of(
        st.text(max_size=max_size),
        st.text(st.characters(codec="ascii"), max_size=max_size),
        st.text(st.characters(min_codepoint=0xD7F0, max_codepoint=0xE010, exclude_categories=()), max_size=4),
        st.sampled_from(TRICKY),
        st.builds(lambda c, n: c * n, st.sampled_from(["a", "é", "🚀", "%", ".", "\x00"]), st.integers(0, 3000)),
    )


def nested(depth: int, inner: bytes = b"1") -> bytes:
    return b"[" * depth + inner + b"]" * depth


TEXT = texts()
SHORT_TEXT = texts(12)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | SHORT_TEXT,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(texts(8), children, max_size=4),
    max_leaves=12,
)
attribute_values = st.one_of(
    TEXT, st.integers(-(2**40), 2**40), st.booleans(), st.none(), st.floats(), st.lists(st.integers(), max_size=2)
)
ATTRIBUTE_NAMES = [
    "id", "source", "type", "specversion", "subject", "time", "dataschema", "datacontenttype", "tenant",
    "ripplehops", "ripplearrivaltime", "data", "data_base64", "Upper", "bad_name", "", "n" * 70,
]
attribute_names = st.sampled_from(ATTRIBUTE_NAMES) | st.text(st.characters(codec="ascii"), max_size=10)
_IDS = SHORT_TEXT.filter(bool) | st.just("i")
_ATTRIBUTES = st.just({}) | st.dictionaries(attribute_names, attribute_values, max_size=3)
# Most events keep every required attribute, some lose one.
_DROPPED = st.sampled_from([(), (), (), (), (), ("source",), ("type",), ("specversion",), ("id",)])
_DATA_KINDS = st.sampled_from(["none", "json", "text", "base64", "bad-base64", "deep"])
_TEXT_TYPES = st.sampled_from(["text/plain", "application/json", "image/png"])
_SMALL_BINARY = st.binary(max_size=64)
_DEPTHS = st.integers(200, 3000)


# --- structured and batch ----------------------------------------------------------------------------------------


@st.composite
def documents(draw: st.DrawFn) -> dict[str, Any]:
    """A structured event as a JSON object: valid to start with, then changed at random."""
    doc: dict[str, Any] = {"specversion": "1.0", "id": draw(_IDS), "source": "/s", "type": "t"}
    doc.update(draw(_ATTRIBUTES))
    for name in draw(_DROPPED):
        doc.pop(name, None)
    data = draw(_DATA_KINDS)
    if data == "json":
        doc["data"] = draw(json_values)
    elif data == "text":
        doc["data"] = draw(TEXT)
        doc.setdefault("datacontenttype", draw(_TEXT_TYPES))
    elif data == "base64":
        doc["data_base64"] = base64.b64encode(draw(_SMALL_BINARY)).decode()
    elif data == "bad-base64":
        doc["data_base64"] = draw(SHORT_TEXT)
    elif data == "deep":
        doc["data"] = _Raw(nested(draw(_DEPTHS)))
    return doc


class _Raw:
    """JSON text to splice into a document as it is (too deep for :func:`json.dumps` to write)."""

    def __init__(self, text: bytes) -> None:
        self.text = text


def dump(value: Any, ascii_only: bool) -> bytes:
    """JSON text; ``_Raw`` parts spliced in; lone surrogates escaped (``ascii_only``) or raw (invalid UTF-8)."""
    raws: list[bytes] = []

    def default(obj: object) -> str:
        if isinstance(obj, _Raw):
            raws.append(obj.text)
            return f"\x00raw{len(raws) - 1}\x00"
        raise TypeError

    text = json.dumps(value, ensure_ascii=ascii_only, default=default)
    out = text.encode("utf-8", "surrogatepass")
    for i, raw in enumerate(raws):
        out = out.replace(json.dumps(f"\x00raw{i}\x00").encode(), raw)
    return out


JSON_TRICKS = [
    b"", b"{", b"[1]", b"null", b"{not json", b'"\\ud800"', b"NaN", b"[Infinity]", b"1e999", b"\xff\xfe",
    b'{"specversion":"1.0","id":"1","source":"/s","type":"t","data":NaN}',
    b'{"specversion":"1.0","id":"1","source":"/s","type":"t","data":1e999}',
    b'{"specversion":"1.0","id":"1","source":"/s","type":"t","data":"\\ud800"}',
    b'{"specversion":"1.0","id":"\\udc00","source":"/s","type":"t"}',
]


def json_bodies(value: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    valid = st.builds(dump, value, st.just(True))
    return st.one_of(  # hypothesis picks a branch evenly: valid JSON is most of them
        valid,
        valid,
        valid,
        st.builds(dump, value, st.booleans()),
        st.builds(nested, st.integers(0, 3000)),
        st.builds(lambda n: b"[" * n, st.integers(250, 5000)),
        st.binary(max_size=200),
        st.sampled_from(JSON_TRICKS),
    )


CONTENT_TYPES = [b"application/json", b"text/plain", b"application/octet-stream", b"application/vnd.x+json",
                 b"text/json; charset=utf-8", b"text/plain; charset=\xc3\xa9", b"application/json\xff", b"\xe2\x9c\x93",
                 b"application/cloudevents+xml", b"application/cloudevents-batch+xml", b"application/cloudevents"]


_STRUCTURED_TYPES = st.sampled_from([STRUCTURED_CONTENT_TYPE, "Application/CloudEvents+JSON; charset=utf-8"])
_STRUCTURED_BODIES = json_bodies(documents())
_BATCH_BODIES = json_bodies(st.lists(documents(), max_size=4) | documents())


@st.composite
def structured_requests(draw: st.DrawFn) -> tuple[list[tuple[bytes, bytes]], bytes]:
    return [(b"Content-Type", draw(_STRUCTURED_TYPES).encode())], draw(_STRUCTURED_BODIES)


@st.composite
def batch_requests(draw: st.DrawFn) -> tuple[list[tuple[bytes, bytes]], bytes]:
    return [(b"Content-Type", BATCH_CONTENT_TYPE.encode())], draw(_BATCH_BODIES)


# --- binary --------------------------------------------------------------------------------------------------------


def _percent(text: str) -> bytes:
    return quote(text, safe="", errors="surrogatepass").encode()


header_values = st.one_of(
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=30).map(str.encode),
    TEXT.map(_percent),
    TEXT.map(lambda text: text.encode("utf-8", "surrogatepass").replace(b"\r", b"").replace(b"\n", b"")),
    st.sampled_from([b"100%", b"%zz", b"%", b"%4", b"%G1", b"%FF", b"%C3%28", b"%00", b"%0D%0A", b"%ED%A0%80", b"%41"]),
    st.builds(lambda c, n: c * n, st.sampled_from([b"a", b"%41", b"\xc3\xa9", b"%C3%A9", b"."]), st.integers(0, 3000)),
    st.binary(max_size=20).map(lambda raw: raw.replace(b"\r", b"").replace(b"\n", b"")),
)
BINARY = [(b"ce-specversion", b"1.0"), (b"ce-id", b"1"), (b"ce-source", b"/s"), (b"ce-type", b"t")]
header_names = st.one_of(
    st.sampled_from([f"ce-{name}".encode() for name in ATTRIBUTE_NAMES if name]),
    st.sampled_from([b"CE-ID", b"Ce-Type", b"ce-", b"ce-datacontenttype"]),
    st.from_regex(rb"\Ace-[A-Za-z0-9_-]{0,12}\Z"),
)


_HEADERS = st.just([]) | st.lists(st.tuples(header_names, header_values), max_size=3)
_DROPPED_HEADERS = st.sampled_from([(), (), (), (), (), *((name,) for name, _ in BINARY)])
_CONTENT_TYPES = st.none() | st.sampled_from(CONTENT_TYPES) | header_values
_BINARY_BODIES = json_bodies(json_values)


@st.composite
def binary_requests(draw: st.DrawFn) -> tuple[list[tuple[bytes, bytes]], bytes]:
    headers = dict(BINARY)
    for name, value in draw(_HEADERS):
        headers[name] = value
    for name in draw(_DROPPED_HEADERS):
        headers.pop(name, None)
    lines = list(headers.items())
    content_type = draw(_CONTENT_TYPES)
    if content_type is not None:
        lines.append((b"Content-Type", content_type))
    return lines, draw(_BINARY_BODIES)


# --- content codings -------------------------------------------------------------------------------------------

_BOMB = gzip.compress(b"\0" * (4 * 1024 * 1024), compresslevel=9)
CODINGS: dict[str, Callable[[bytes], bytes]] = {
    "": lambda body: body,
    "identity": lambda body: body,
    "gzip": gzip.compress,
    "deflate": zlib.compress,
    "gzip-not-compressed": lambda body: body,
    "gzip-truncated": lambda body: gzip.compress(body)[: max(1, len(gzip.compress(body)) // 2)],
    "gzip-trailing": lambda body: gzip.compress(body) + b"\x00junk",
    "gzip-bomb": lambda body: _BOMB,
    "compress": lambda body: body,
    "gzip, gzip": lambda body: gzip.compress(gzip.compress(body)),
    "br": lambda body: body,
}
VALID_CODINGS = ("", "identity", "gzip", "deflate")


_MODES = st.one_of(binary_requests(), structured_requests(), batch_requests())
_CODING_NAMES = st.sampled_from(["", "", "", "", "", "gzip", "gzip", "deflate", *CODINGS])


@st.composite
def requests(draw: st.DrawFn) -> Request:
    """Any request: binary, structured or batch, in any content coding, sized or chunked."""
    headers, plain = draw(_MODES)
    coding = draw(_CODING_NAMES)
    body = CODINGS[coding](plain)
    if coding:
        headers = [*headers, (b"Content-Encoding", coding.split("-", 1)[0].encode())]
    return Request(tuple(headers), body, plain, coding, chunked=draw(st.booleans()))
