"""Harness variants that must crash on some inputs, so the tests can prove that a crash is caught and reported.

Each is a real harness with a narrower idea of what counts as a refusal, so the crash comes from the package's
own code through the same path a real finding would take, not from a harness that raises on its own.
"""

from __future__ import annotations

from ripple.events import EventError

from . import http_codec


def http_refusing_only_event_errors(data: bytes) -> None:
    """The HTTP harness, with :class:`UnsupportedFormat` (a structured format other than JSON) as a crash."""
    http_codec.fuzz_one(data, refusals=(EventError,))
