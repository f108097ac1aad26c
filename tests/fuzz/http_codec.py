"""Fuzz harness for the CloudEvents HTTP codec (``ripple.events.decode_request``), the ingress's first reader.

An input is an HTTP request written as text: ``Name: value`` header lines, a blank line, then the body (raw
bytes). Header bytes that are not UTF-8 reach the codec as surrogate escapes, as aiohttp hands them over.
:class:`EventError` (400) and :class:`UnsupportedFormat` (415) are refusals; anything else is a crash. An
accepted event must also survive being sent on: Ripple re-encodes what it took (structured, batch, binary)
and reads it back, and must get the same event.
"""

from __future__ import annotations

from typing import Any

from ripple.events import CloudEvent, EventError, UnsupportedFormat, decode_request
from ripple.events.http import decode_message, encode_batch, encode_binary, encode_structured
from ripple.events.model import attribute_text

from .invariants import FuzzFinding

REFUSALS: tuple[type[Exception], ...] = (EventError, UnsupportedFormat)


def request(data: bytes) -> tuple[list[tuple[str, str]], bytes]:
    """Header pairs and body of an input."""
    head, _, body = data.partition(b"\n\n")
    pairs = []
    for line in head.decode("utf-8", "surrogateescape").split("\n"):
        name, colon, value = line.removesuffix("\r").partition(":")
        if colon:
            pairs.append((name.strip(), value.strip(" \t")))
    return pairs, body


def write_request(headers: dict[str, str] | list[tuple[str, str]], body: bytes) -> bytes:
    """The input that :func:`request` reads back as these headers and body."""
    items = headers.items() if isinstance(headers, dict) else headers
    return "".join(f"{name}: {value}\n" for name, value in items).encode() + b"\n" + body


def fuzz_one(data: bytes, refusals: tuple[type[Exception], ...] = REFUSALS) -> None:
    pairs, body = request(data)
    try:
        events = decode_request(pairs, body)
    except refusals:
        return
    try:
        decode_message(dict(pairs), body)
    except refusals:
        pass
    for event in events:
        _check_resent(event)
    if events:
        headers, batch = encode_batch(events)
        again = decode_request(list(headers.items()), batch)
        if len(again) != len(events):
            raise FuzzFinding(f"a batch of {len(events)} events reads back as {len(again)}")
        for original, copy in zip(events, again, strict=True):
            _same(original, copy, "batch")


def _check_resent(event: CloudEvent) -> None:
    headers, body = encode_structured(event)
    [copy] = decode_request(list(headers.items()), body)
    _same(event, copy, "structured")
    headers, body = encode_binary(event)
    try:
        [copy] = decode_request(list(headers.items()), body)
    except EventError:
        return  # binary mode also refuses JSON data nested too deep, which structured mode takes as base64
    same_data = copy.data == (event.data or None) or copy.json_data() == event.json_data()
    if _texts(copy) != _texts(event) or not same_data:
        raise FuzzFinding(f"binary mode changed the event: {event!r} read back as {copy!r}")


def _texts(event: CloudEvent) -> dict[str, str]:
    """The attributes as binary mode carries them: integers and booleans become text."""
    return {name: attribute_text(value) for name, value in event.attributes.items()}


def _same(event: CloudEvent, copy: CloudEvent, mode: str) -> None:
    expected: dict[str, Any] = dict(event.attributes)
    if "datacontenttype" not in expected and "datacontenttype" in copy.attributes and event.data is not None:
        expected["datacontenttype"] = "application/json"  # inline JSON data implies it
    if dict(copy.attributes) != expected or copy.json_data() != event.json_data():
        raise FuzzFinding(f"{mode} mode changed the event: {event!r} read back as {copy!r}")
