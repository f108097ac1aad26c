"""The function runtime as a dispatcher sees it: POST an event, get 202, a reply, or an error."""

from __future__ import annotations

import asyncio
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from ripple._aio import free_port
from ripple.events.http import decode_message, encode_binary, encode_structured
from ripple.runtime.loader import HandlerError, load_handler
from ripple.runtime.server import create_function_app
from tests.support import event, serve

HANDLERS = '''
import asyncio, time
from cloudevents.core.v1.event import CloudEvent as SdkEvent

seen = []

def record(event):
    seen.append((event["type"], event.get("missing"), event.get("color"), event.data))

def reply_dict(event):
    return {"type": "order.validated", "source": "/validator", "data": {"total": event.data["total"] * 2}}

async def reply_async(event):
    await asyncio.sleep(0)
    return {"type": "async.reply", "source": "/a", "data": "plain text"}

def reply_sdk(event):
    return SdkEvent({"type": "sdk.reply", "source": "/sdk", "id": "fixed", "specversion": "1.0"}, {"n": 1})

def boom(event):
    raise RuntimeError("no stock for " + event.data["sku"])

def slow(event):
    time.sleep(1)

async def slow_async(event):
    await asyncio.sleep(5)

def bad_reply(event):
    return 42
'''


@pytest.fixture(scope="module")
def handlers_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("handlers")
    (directory / "handlers_under_test.py").write_text(HANDLERS)
    return directory


@pytest.fixture
async def function(handlers_dir: Path, request: pytest.FixtureRequest) -> AsyncIterator[str]:
    handler = load_handler(f"handlers_under_test:{request.param}", handlers_dir)
    async with serve(create_function_app(handler, timeout=0.5)) as url:
        yield url + "/"


async def post(url: str, ev, structured: bool = False) -> tuple[int, dict[str, str], bytes]:
    headers, body = encode_structured(ev) if structured else encode_binary(ev)
    async with aiohttp.ClientSession() as session, session.post(url, data=body, headers=headers) as response:
        return response.status, dict(response.headers), await response.read()


@pytest.mark.parametrize("function", ["record"], indirect=True)
async def test_handler_reads_attributes_extensions_and_decoded_data(function, handlers_dir):
    import handlers_under_test  # the module the runtime loaded

    status, _, _ = await post(function, event("a", type="paint", color="blue", data={"n": 1}))
    assert status == 202
    status, _, _ = await post(function, event("b", type="paint", data={"n": 2}), structured=True)
    assert status == 202
    assert handlers_under_test.seen[-2:] == [("paint", None, "blue", {"n": 1}), ("paint", None, None, {"n": 2})]


@pytest.mark.parametrize("function", ["reply_dict"], indirect=True)
async def test_dict_reply_is_answered_200_as_a_cloudevent(function):
    status, headers, body = await post(function, event("a", data={"total": 21}))
    assert status == 200
    reply = decode_message(headers, body)
    assert reply is not None
    assert reply.type == "order.validated" and reply.source == "/validator"
    assert reply.json_data() == {"total": 42}
    assert reply.id  # filled by the runtime


@pytest.mark.parametrize("function", ["reply_async"], indirect=True)
async def test_async_handler_text_reply(function):
    status, headers, body = await post(function, event("a"))
    reply = decode_message(headers, body)
    assert status == 200 and reply is not None
    assert reply.json_data() == "plain text" and reply.datacontenttype.startswith("text/plain")


@pytest.mark.parametrize("function", ["reply_sdk"], indirect=True)
async def test_cloudevents_sdk_reply(function):
    status, headers, body = await post(function, event("a"))
    reply = decode_message(headers, body)
    assert status == 200 and reply is not None
    assert (reply.id, reply.type, reply.json_data()) == ("fixed", "sdk.reply", {"n": 1})


@pytest.mark.parametrize("function", ["boom"], indirect=True)
async def test_exception_answers_500_with_the_message(function):
    status, _, body = await post(function, event("a", data={"sku": "X1"}))
    assert status == 500 and b"no stock for X1" in body


@pytest.mark.parametrize("function", ["slow", "slow_async"], indirect=True)
async def test_timeout_answers_504(function):
    status, _, body = await post(function, event("a"))
    assert status == 504 and b"timed out" in body


@pytest.mark.parametrize("function", ["bad_reply"], indirect=True)
async def test_a_reply_that_is_not_an_event_is_a_500(function):
    status, _, body = await post(function, event("a"))
    assert status == 500 and b"invalid reply" in body


@pytest.mark.parametrize("function", ["record"], indirect=True)
async def test_invalid_event_is_400_and_health_is_200(function):
    async with aiohttp.ClientSession() as session:
        async with session.post(function, data=b"{}", headers={"ce-id": "1"}) as response:
            assert response.status == 400 and "source" in (await response.json())["error"]
        async with session.get(function + "health") as response:
            assert response.status == 200


def test_load_handler_errors(handlers_dir):
    with pytest.raises(HandlerError, match="module:function"):
        load_handler("nocolon", handlers_dir)
    with pytest.raises(HandlerError, match="cannot import"):
        load_handler("does_not_exist:handle", handlers_dir)
    with pytest.raises(HandlerError, match="no callable 'nope'"):
        load_handler("handlers_under_test:nope", handlers_dir)


async def test_ripple_function_serve_runs_a_handler_from_a_directory(tmp_path: Path):
    (tmp_path / "greet.py").write_text(textwrap.dedent('''
        import os
        def handle(event):
            return {"type": "greeting", "source": "/greet", "data": {"hello": event.data["name"],
                    "from": os.environ.get("GREETER", "?")}}
    '''))
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ripple", "function", "serve", "--handler", "greet:handle", "--path", str(tmp_path),
        "--host", "127.0.0.1", "--port", str(port), env={"GREETER": "ripple", "PATH": "/usr/bin:/bin"},
    )
    try:
        url = f"http://127.0.0.1:{port}/"
        async with aiohttp.ClientSession() as session:
            for _ in range(200):
                try:
                    async with session.get(url + "health") as response:
                        if response.status == 200:
                            break
                except aiohttp.ClientError:
                    await asyncio.sleep(0.05)
        status, headers, body = await post(url, event("a", data={"name": "ada"}))
        reply = decode_message(headers, body)
        assert status == 200 and reply is not None
        assert reply.json_data() == {"hello": "ada", "from": "ripple"}
    finally:
        process.terminate()
        assert await process.wait() == 0
