"""``ripple send``: post one CloudEvent to a broker (or any CloudEvents endpoint) and show the answer."""

from __future__ import annotations

import argparse
import json
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from ripple.dispatch.client import NO_AUTO_CONTENT_TYPE
from ripple.events.http import encode_binary, encode_structured
from ripple.events.model import CloudEvent

__all__ = ["SendOptions", "bearer", "build_event", "run", "send"]


@dataclass(frozen=True)
class SendOptions:
    to: str
    type: str
    source: str
    id: str | None = None
    subject: str | None = None
    data: str | None = None
    """JSON text, or ``@file`` to read it from a file."""
    mode: str = "binary"
    extensions: dict[str, str] = field(default_factory=dict)
    token: str | None = field(default=None, repr=False)
    """A bearer token for a broker an EventPolicy guards (``@file`` to read it from a file)."""


def build_event(options: SendOptions) -> CloudEvent:
    attributes: dict[str, str | None] = {
        "specversion": "1.0",
        "id": options.id or str(uuid.uuid4()),
        "source": options.source,
        "type": options.type,
        "subject": options.subject,
        **options.extensions,
    }
    data: bytes | None = None
    if options.data is not None:
        text = Path(options.data[1:]).read_text() if options.data.startswith("@") else options.data
        try:
            json.loads(text)
            attributes["datacontenttype"] = "application/json"
        except ValueError:
            attributes["datacontenttype"] = "text/plain; charset=utf-8"
        data = text.encode()
    return CloudEvent.create(attributes, data)


def bearer(token: str) -> str:
    """The token itself, or read from the file ``@path`` names."""
    return (Path(token[1:]).read_text() if token.startswith("@") else token).strip()


async def send(options: SendOptions) -> tuple[int, str]:
    """Post the event; return the HTTP status and the response body."""
    event = build_event(options)
    headers, body = encode_structured(event) if options.mode == "structured" else encode_binary(event)
    if options.token:
        headers["Authorization"] = f"Bearer {bearer(options.token)}"
    async with aiohttp.ClientSession() as session:
        post = session.post(options.to, data=body, headers=headers, skip_auto_headers=NO_AUTO_CONTENT_TYPE)
        async with post as response:
            return response.status, await response.text()


async def run(args: argparse.Namespace) -> int:
    options = SendOptions(args.to, args.type, args.source, args.id, args.subject, args.data, args.mode, dict(args.ext),
                          args.token or os.environ.get("RIPPLE_TOKEN"))
    status, body = await send(options)
    print(f"{status} {body}".rstrip())
    return 0 if 200 <= status < 300 else 1
