"""The official CloudEvents SDKs as real senders and receivers: Go and JavaScript programs run as subprocesses, the
Python SDK in-process, all behind one interface.

Every SDK reports an event in the same shape (see tests/interop/go/main.go): ``specversion``, ``id``, ``source``,
``type``, ``datacontenttype``, ``dataschema``, ``subject``, ``time`` (``None`` when absent), ``extensions`` (name to
text) and ``data`` (the data as the SDK holds it, as text: JSON re-serialized when the SDK parsed it) with
``data_base64`` (its bytes, base64). A sender prints ``{"status", "ack", "result", "event", "wire"}``, wire being the
request it made (``headers`` with lower-case names, ``body_base64``); a receiver prints
``{"listening": "host:port"}`` once, then ``{"event", "content_type"}`` per event received.

The Go program and the JS dependencies are built by ``hack/interop-tools.sh`` (``hack/test.sh`` runs it), which
hands their paths over in ``RIPPLE_INTEROP_GO`` and ``RIPPLE_INTEROP_JS_DIR``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from aiohttp import web
from cloudevents.core.bindings.http import HTTPMessage, from_http_event, to_binary_event, to_structured_event
from cloudevents.core.v1.event import CloudEvent as SdkEvent

from ripple._aio import free_port
from ripple.events.model import CloudEvent
from ripple.store import EventStore, subjects
from tests.support import serve

SDKS = ("go", "js", "python")
MODES = ("binary", "structured")
TOOLS_HINT = "hack/test.sh builds it with hack/interop-tools.sh and exports the path; or eval that script's output"
PROCESS_TIMEOUT = 20.0
ATTRIBUTES = ("specversion", "id", "source", "type", "datacontenttype", "dataschema", "subject", "time")


def go_program() -> str:
    path = os.environ.get("RIPPLE_INTEROP_GO", "")
    if not path:
        pytest.skip(f"the Go SDK program is not built: RIPPLE_INTEROP_GO is not set; {TOOLS_HINT}")
    if not os.access(path, os.X_OK):
        pytest.skip(f"RIPPLE_INTEROP_GO={path} is not an executable; {TOOLS_HINT}")
    return path


def js_program() -> list[str]:
    directory = os.environ.get("RIPPLE_INTEROP_JS_DIR", "")
    if not directory:
        pytest.skip(f"the JS SDK is not installed: RIPPLE_INTEROP_JS_DIR is not set; {TOOLS_HINT}")
    script = Path(directory) / "ce-js.js"
    if not script.is_file() or not (Path(directory) / "node_modules" / "cloudevents").is_dir():
        pytest.skip(f"RIPPLE_INTEROP_JS_DIR={directory} lacks ce-js.js or node_modules/cloudevents; {TOOLS_HINT}")
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed (the JS SDK interop tests need it)")
    return [node, str(script)]


def program(sdk: str) -> list[str]:
    return [go_program()] if sdk == "go" else js_program()


def spec_percent_encode(value: str) -> str:
    """A ``ce-`` header value as the HTTP binding says to write it: UTF-8, then percent-encode space, ``"``, ``%``
    and everything outside printable ASCII."""
    safe = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in '"%')
    return quote(value, safe=safe)


def parse_time(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


# --- sending ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outgoing:
    """An event for an SDK to build and send; ``data`` is text (JSON text for a JSON ``datacontenttype``)."""

    id: str
    type: str = "com.example.interop"
    source: str = "/interop"
    data: str | None = None
    datacontenttype: str | None = None
    subject: str | None = None
    extensions: dict[str, str] = field(default_factory=dict)

    def args(self) -> list[str]:
        args = ["--id", self.id, "--type", self.type, "--source", self.source]
        if self.data is not None:
            args += ["--data", self.data]
        if self.datacontenttype is not None:
            args += ["--datacontenttype", self.datacontenttype]
        if self.subject is not None:
            args += ["--subject", self.subject]
        for name, value in self.extensions.items():
            args += ["--ext", f"{name}={value}"]
        return args


async def send(sdk: str, url: str, mode: str, event: Outgoing) -> dict[str, Any]:
    """Have ``sdk`` send ``event`` to ``url`` in ``mode``; its report: status, ack, result and the event it sent."""
    if sdk == "python":
        return await _python_send(url, mode, event)
    process = await asyncio.create_subprocess_exec(
        *program(sdk), "send", "--url", url, "--mode", mode, *event.args(),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(PROCESS_TIMEOUT):
            out, err = await process.communicate()
    except TimeoutError:
        process.kill()
        await process.wait()
        raise AssertionError(f"{sdk} send did not finish within {PROCESS_TIMEOUT}s") from None
    if process.returncode != 0:
        raise AssertionError(f"{sdk} send exited with {process.returncode}: {err.decode(errors='replace')}")
    return json.loads(out.decode().strip().splitlines()[-1])


def _python_event(event: Outgoing) -> SdkEvent:
    attributes: dict[str, Any] = {"id": event.id, "type": event.type, "source": event.source, **event.extensions}
    data: Any = None
    if event.data is not None:
        attributes["datacontenttype"] = event.datacontenttype or "application/json"
        json_type = "json" in attributes["datacontenttype"]
        data = json.loads(event.data) if json_type else event.data
    elif event.datacontenttype is not None:
        attributes["datacontenttype"] = event.datacontenttype
    if event.subject is not None:
        attributes["subject"] = event.subject
    return SdkEvent(attributes, data)


async def _python_send(url: str, mode: str, event: Outgoing) -> dict[str, Any]:
    sdk_event = _python_event(event)
    message = to_binary_event(sdk_event) if mode == "binary" else to_structured_event(sdk_event)
    # aiohttp would add "Content-Type: application/octet-stream" to a body without one: send exactly the SDK's.
    async with aiohttp.ClientSession() as session:
        async with session.post(
            url, data=message.body or None, headers=message.headers, skip_auto_headers=("Content-Type",)
        ) as response:
            result = await response.text()
            status = response.status
    wire = {"headers": {k.lower(): v for k, v in message.headers.items()},
            "body_base64": base64.b64encode(message.body).decode()}
    return {"status": status, "ack": 200 <= status < 300, "result": result, "event": describe_python(sdk_event),
            "wire": wire}


def describe_python(event: SdkEvent) -> dict[str, Any]:
    attributes = event.get_attributes()
    out: dict[str, Any] = {name: attributes.get(name) for name in ATTRIBUTES}
    if isinstance(out["time"], datetime):
        out["time"] = out["time"].isoformat().replace("+00:00", "Z")
    out["extensions"] = {k: str(v) for k, v in attributes.items() if k not in ATTRIBUTES}
    data = event.get_data()
    raw: bytes | None
    if data is None:
        out["data"], raw = None, None
    elif isinstance(data, bytes):
        out["data"], raw = None, data
    elif isinstance(data, str):
        out["data"], raw = data, data.encode()
    else:
        out["data"] = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
        raw = out["data"].encode()
    out["data_base64"] = None if raw is None else base64.b64encode(raw).decode()
    return out


# --- receiving --------------------------------------------------------------------------------------------------


@dataclass
class Receiver:
    """An SDK receiver listening on ``url``; ``received`` holds each reported ``{"event", "content_type"}``."""

    sdk: str
    url: str = ""
    received: list[dict[str, Any]] = field(default_factory=list)
    log: list[str] = field(default_factory=list)
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def record(self, line: dict[str, Any]) -> None:
        self.received.append(line)
        async with self._changed:
            self._changed.notify_all()

    async def wait_for(self, count: int, timeout: float = 15.0) -> list[dict[str, Any]]:
        try:
            async with asyncio.timeout(timeout):
                async with self._changed:
                    await self._changed.wait_for(lambda: len(self.received) >= count)
        except TimeoutError:
            raise AssertionError(
                f"{self.sdk} receiver got {len(self.received)} of {count} events within {timeout}s: "
                f"{self.received!r}; its stderr: {''.join(self.log)!r}"
            ) from None
        return self.received

    def by_id(self) -> dict[str, dict[str, Any]]:
        return {line["event"]["id"]: line for line in self.received}


@contextlib.asynccontextmanager
async def receiver(sdk: str, reply_type: str | None = None) -> AsyncIterator[Receiver]:
    """Run ``sdk``'s HTTP receiver on a free loopback port (answering with a reply of ``reply_type`` if given)."""
    if sdk == "python":
        async with _python_receiver(reply_type) as rx:
            yield rx
        return
    command = [*program(sdk), "receive", "--host", "127.0.0.1", "--port", str(free_port())]
    if reply_type:
        command += ["--reply-type", reply_type]
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    rx = Receiver(sdk)
    listening: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    assert process.stdout is not None and process.stderr is not None

    async def read_stdout() -> None:
        assert process.stdout is not None
        async for raw in process.stdout:
            line = json.loads(raw)
            if "listening" in line:
                listening.set_result(line["listening"])
            else:
                await rx.record(line)
        if not listening.done():
            listening.set_exception(AssertionError(f"{sdk} receiver exited before listening"))

    async def read_stderr() -> None:
        assert process.stderr is not None
        async for raw in process.stderr:
            rx.log.append(raw.decode(errors="replace"))

    readers = [asyncio.create_task(read_stdout()), asyncio.create_task(read_stderr())]
    try:
        try:
            async with asyncio.timeout(PROCESS_TIMEOUT):
                address = await asyncio.shield(listening)
        except (TimeoutError, AssertionError) as exc:
            await asyncio.sleep(0.1)  # let stderr be read
            raise AssertionError(f"{sdk} receiver did not start ({exc!r}): {''.join(rx.log)!r}") from None
        rx.url = f"http://{address}/"
        yield rx
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                async with asyncio.timeout(5):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()
        for task in readers:
            task.cancel()
        await asyncio.gather(*readers, return_exceptions=True)


@contextlib.asynccontextmanager
async def _python_receiver(reply_type: str | None) -> AsyncIterator[Receiver]:
    rx = Receiver("python")

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        try:
            event = from_http_event(HTTPMessage(dict(request.headers), body))
        except Exception as exc:  # the SDK's own refusal, shown to the test as a 400 and in the log
            rx.log.append(f"not a CloudEvent: {exc!r}\n")
            return web.Response(status=400, text=str(exc))
        await rx.record({"event": describe_python(event), "content_type": request.headers.get("Content-Type", "")})
        if reply_type is None:
            return web.Response(status=202)
        reply = SdkEvent(
            {"id": f"reply-{event.get_id()}", "type": reply_type, "source": "/interop/python",
             "inreplyto": event.get_id(), "datacontenttype": "application/json"},
            {"replyTo": event.get_id(), "by": "python"},
        )
        message = to_binary_event(reply)
        return web.Response(status=200, headers=message.headers, body=message.body)

    app = web.Application()
    app.router.add_post("/{tail:.*}", handle)
    async with serve(app) as url:
        rx.url = url + "/"
        yield rx


# --- what the broker holds --------------------------------------------------------------------------------------


async def stored_events(store: EventStore) -> list[CloudEvent]:
    """Every event in the default broker's stream, in order."""
    stream = subjects.stream_name("default", "default")
    info = await store.js.stream_info(stream)
    if info.state.messages == 0:
        return []
    events = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        raw = await store.js.get_msg(stream, seq)
        events.append(CloudEvent.from_json_bytes(raw.data or b""))
    return events
