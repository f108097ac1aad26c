"""Regression tests of the ingress's hardening: each malformed input found is a 4xx naming the problem, never a
500, and never something that breaks what comes after (the NATS connection, the dispatcher, /metrics)."""

from __future__ import annotations

import gzip
import json
import time
import zlib
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from ripple.events.extensions import MAX_PRODUCER_ATTRIBUTES
from ripple.events.model import MAX_JSON_DEPTH, CloudEvent
from ripple.ingress.app import UNKNOWN_BROKER, IngressSettings, create_ingress_app
from ripple.store import EventStore
from tests.ingress.conftest import default_broker_only
from tests.ingress.rawhttp import raw_post
from tests.ingress.test_ingress import BATCH, BINARY, STRUCTURED, post, stored
from tests.support import serve

LIMIT = 1024 * 1024


@pytest.fixture
async def app(store: EventStore) -> web.Application:
    return create_ingress_app(store, IngressSettings(brokers=default_broker_only, max_body=LIMIT))


@pytest.fixture
async def base(app: web.Application) -> AsyncIterator[str]:
    async with serve(app) as url:
        yield url


@pytest.fixture
def url(base: str) -> str:
    """The default broker on an ingress with the default 1 MiB body limit."""
    return base + "/default/default"


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def structured(**extra: object) -> bytes:
    return json.dumps({"specversion": "1.0", "id": "s1", "source": "/s", "type": "t", **extra}).encode()


# --- sizes: the NATS connection survives ------------------------------------------------------------------------


async def test_a_5000_character_type_is_refused_and_the_store_stays_connected(url, http, store):
    status, body = await post(http, url, **{**BINARY, "ce-type": "t" * 5000})
    assert status == 400
    assert body["error"] == "attribute 'type' is 5000 bytes long, over the limit of 256 bytes (UTF-8)"
    status, _ = await post(http, url, **{**BINARY, "ce-id": "right-after"})
    assert status == 202
    assert [e.id for e in await stored(store)] == ["right-after"]
    assert store.connected and store.connections == 1


async def test_a_type_at_the_limit_is_stored_though_its_subject_tokens_triple(url, http, store):
    longest = "é" * 63 + "." + "é" * 64  # 255 bytes of UTF-8, each byte percent-encoded in the subject
    assert (await post(http, url, **{**BINARY, "ce-type": "%C3%A9" * 63 + "." + "%C3%A9" * 64}))[0] == 202
    (event,) = await stored(store)
    assert event.type == longest
    assert store.connections == 1


# --- JSON nesting -----------------------------------------------------------------------------------------------


async def test_binary_json_data_nested_100000_deep_is_refused(url, http, store):
    status, body = await post(http, url, nested(100_000), **BINARY, **{"Content-Type": "application/json"})
    assert status == 400
    assert f"nesting deeper than {MAX_JSON_DEPTH}" in body["error"]
    assert await stored(store) == []


@pytest.mark.parametrize("depth", [1000, 100_000])
async def test_structured_and_batch_bodies_nested_1000_deep_or_more_are_refused(url, http, store, depth):
    for content_type in (STRUCTURED, BATCH):
        status, body = await post(http, url, nested(depth), **{"Content-Type": content_type})
        assert status == 400
        assert f"nesting deeper than {MAX_JSON_DEPTH}" in body["error"]
    data_too_deep = structured()[:-1] + b', "data": ' + nested(depth) + b"}"
    status, body = await post(http, url, data_too_deep, **{"Content-Type": STRUCTURED})
    assert status == 400 and f"nesting deeper than {MAX_JSON_DEPTH}" in body["error"]
    assert await stored(store) == []


# --- characters -------------------------------------------------------------------------------------------------


async def test_a_lone_surrogate_in_an_attribute_is_refused(url, http, store):
    status, body = await post(http, url, structured(subject="\ud800"), **{"Content-Type": STRUCTURED})
    assert status == 400
    assert body["error"] == "attribute 'subject' contains a lone surrogate (U+D800)"
    assert await stored(store) == []


async def test_a_lone_surrogate_in_structured_data_is_refused(url, http, store):
    status, body = await post(http, url, structured(data={"k": "\udfff"}), **{"Content-Type": STRUCTURED})
    assert status == 400
    assert body["error"].startswith("'data' contains a lone surrogate (U+DFFF)")
    assert await stored(store) == []


@pytest.mark.parametrize("content_type", [b"text/plain; charset=\xc3\xa9", b"application/json\xff", b"\xe2\x9c\x93"])
async def test_a_raw_non_ascii_content_type_is_refused_naming_it(url, store, content_type):
    response = await raw_post(url, [*BINARY.items(), (b"Content-Type", content_type)], b"x")
    assert response.status == 400
    assert response.error.startswith("header 'Content-Type' must be printable ASCII")
    assert await stored(store) == []


async def test_control_characters_in_a_header_value_are_refused_naming_the_attribute(url, store):
    response = await raw_post(url, [*BINARY.items(), ("ce-note", "a\tb")])
    assert response.status == 400
    assert response.error == "attribute 'note' contains a control character (U+0009)"


@pytest.mark.parametrize(("sent", "kept"), [("100%", "100%"), ("%zz", "%zz"), ("%41", "A"), ("50%+%41%", "50%+A%")])
async def test_percent_signs_that_start_no_escape_are_kept_literally(url, http, store, sent, kept):
    assert (await post(http, url, **{**BINARY, "ce-note": sent}))[0] == 202
    (event,) = await stored(store)
    assert event["note"] == kept


# --- bodies: content coding and size ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("coding", "compress"),
    [
        ("gzip", gzip.compress),
        ("GZip", gzip.compress),
        ("x-gzip", gzip.compress),
        ("gzip", lambda body: gzip.compress(body[:10]) + gzip.compress(body[10:])),  # two members
        ("deflate", zlib.compress),
        ("deflate", lambda body: zlib.compress(body, wbits=-15)),  # raw deflate, as some clients send it
        ("identity", lambda body: body),
    ],
    ids=["gzip", "case", "x-gzip", "gzip-members", "deflate", "raw-deflate", "identity"],
)
async def test_a_compressed_body_is_decoded(url, store, coding, compress):
    body = structured(data={"a": 1})
    response = await raw_post(url, [("Content-Type", STRUCTURED), ("Content-Encoding", coding)], compress(body))
    assert response.status == 202
    (event,) = await stored(store)
    assert event.json_data() == {"a": 1}


@pytest.mark.parametrize(
    ("coding", "body"),
    [
        ("gzip", b"this is not gzip"),
        ("gzip", gzip.compress(b"x" * 1000)[:20] + b"garbage"),
        ("gzip", gzip.compress(b"x" * 1000)[:-6]),
        ("gzip", gzip.compress(b"{}") + b"trailing"),
        ("deflate", b"nope!"),
        ("deflate", zlib.compress(b"{}") + b"x"),
    ],
    ids=["not-gzip", "corrupt-gzip", "truncated-gzip", "trailing-garbage", "not-deflate", "deflate-trailing"],
)
async def test_a_body_not_valid_in_its_content_coding_is_400(url, store, coding, body):
    response = await raw_post(url, [*BINARY.items(), ("Content-Encoding", coding)], body)
    assert response.status == 400
    assert response.error.startswith(f"request body is not valid {coding}")
    assert await stored(store) == []


@pytest.mark.parametrize("coding", ["compress", "br", "zstd", "gzip, gzip", "\xff"])
async def test_an_unsupported_content_coding_is_415_naming_it(url, store, coding):
    response = await raw_post(url, [*BINARY.items(), ("Content-Encoding", coding)], b"x")
    assert response.status == 415
    assert "Content-Encoding" in response.error
    assert await stored(store) == []


async def test_two_content_encoding_headers_are_415(url):
    response = await raw_post(url, [*BINARY.items(), ("Content-Encoding", "gzip"), ("Content-Encoding", "gzip")])
    assert response.status == 415


async def test_a_gzip_bomb_is_413_without_inflating_it(url, store):
    bomb = gzip.compress(b"\0" * (64 * LIMIT), compresslevel=9)  # 64 MiB of zeros in about 64 KiB
    assert len(bomb) < LIMIT
    started = time.monotonic()
    response = await raw_post(url, [*BINARY.items(), ("Content-Encoding", "gzip")], bomb)
    assert response.status == 413
    assert response.error == f"request body is larger than the limit of {LIMIT} bytes once decoded"
    assert time.monotonic() - started < 5  # answered once past the limit, not after inflating 64 MiB
    assert await stored(store) == []


async def test_a_chunked_body_over_the_limit_is_413(url, store):
    response = await raw_post(url, list(BINARY.items()), b"x" * (LIMIT + 1), chunked=True)
    assert response.status == 413
    assert response.error == f"request body is larger than the limit of {LIMIT} bytes"
    assert await stored(store) == []


async def test_a_chunked_body_at_the_limit_is_stored(url, store):
    body = b"x" * LIMIT
    response = await raw_post(url, [*BINARY.items(), ("Content-Type", "application/octet-stream")], body, chunked=True)
    assert response.status == 202
    (event,) = await stored(store)
    assert event.data == body


async def test_paths_and_methods_the_ingress_does_not_serve_are_answered_in_json(base, http):
    for method, path, status in [("POST", "/a/b/c", 404), ("GET", "/nothing", 404), ("DELETE", "/default/default", 405),
                                 ("GET", "/default/default", 405)]:
        async with http.request(method, base + path) as response:
            assert response.status == status, (method, path)
            assert "error" in await response.json(), (method, path)
            if status == 405:
                assert response.headers["Allow"] == "POST, OPTIONS"


# --- metrics ----------------------------------------------------------------------------------------------------


async def test_requests_to_unknown_brokers_do_not_grow_the_metrics(base, http):
    async def metrics() -> list[str]:
        async with http.get(base + "/metrics") as response:
            return (await response.text()).splitlines()

    await post(http, base + "/warm/up", **BINARY)
    before = await metrics()
    for i in range(2000):
        async with http.post(f"{base}/ns{i}/broker{i}", headers=BINARY) as response:
            assert response.status == 404
    after = await metrics()
    assert len(after) - len(before) <= 3
    unknown = f'ripple_ingress_requests_total{{broker="{UNKNOWN_BROKER}",code="404",namespace="{UNKNOWN_BROKER}"}}'
    assert any(line.startswith(unknown) for line in after)
    assert not any("broker1999" in line for line in after)


# --- what was stored is readable --------------------------------------------------------------------------------


async def test_every_accepted_event_reads_back_and_re_encodes(url, http, store):
    assert (await post(http, url, nested(MAX_JSON_DEPTH), **BINARY, **{"Content-Type": "application/json"}))[0] == 202
    (event,) = await stored(store)
    restored = CloudEvent.from_json_bytes(event.to_json_bytes())
    assert restored.json_data() == json.loads(nested(MAX_JSON_DEPTH))


async def test_an_event_leaving_no_room_for_ripple_s_extensions_is_refused(url, http, store):
    # Four required attributes and datacontenttype, from the Content-Type.
    many = {f"ce-x{i}": "v" for i in range(MAX_PRODUCER_ATTRIBUTES - 5 + 1)}
    status, body = await post(http, url, b"{}", **BINARY, **many, **{"Content-Type": "application/json"})
    assert status == 400 and "kept for Ripple's extensions" in body["error"]
    many.popitem()
    status, body = await post(http, url, b"{}", **BINARY, **many, **{"Content-Type": "application/json"})
    assert status == 202, body
