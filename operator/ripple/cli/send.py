"""``ripple send``: post one CloudEvent to a broker (or any CloudEvents endpoint) and show the answer."""

from __future__ import annotations

import argparse
import json
import os
import ssl
import sys
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
    cacert: Path | None = None
    """Trust this CA for an ``https://`` ingress (``ripple dev --tls`` prints its throw-away CA), besides the
    system's."""


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
    trust: ssl.SSLContext | bool = True
    if options.cacert is not None:
        trust = ssl.create_default_context()
        trust.load_verify_locations(options.cacert)
    async with aiohttp.ClientSession() as session:
        post = session.post(options.to, data=body, headers=headers, skip_auto_headers=NO_AUTO_CONTENT_TYPE, ssl=trust)
        async with post as response:
            return response.status, await response.text()


async def run(args: argparse.Namespace) -> int:
    options = SendOptions(args.to, args.type, args.source, args.id, args.subject, args.data, args.mode, dict(args.ext),
                          args.token or os.environ.get("RIPPLE_TOKEN"), args.cacert)
    try:
        status, body = await send(options)
    except aiohttp.ClientConnectorCertificateError as exc:
        print(f"ripple: {options.to}: the server's certificate is not trusted ({exc.certificate_error}); "
              "give its CA with --cacert", file=sys.stderr)
        return 1
    except (aiohttp.ClientError, TimeoutError) as exc:
        print(f"ripple: cannot send to {options.to}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(f"{status} {body}".rstrip())
    return 0 if 200 <= status < 300 else 1
