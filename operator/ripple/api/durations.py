"""ISO-8601 durations as Knative uses them in delivery settings (``PT0.5S``, ``PT2M``, ``P1D``)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

import isodate
from pydantic import AfterValidator, Field

__all__ = ["DURATION_PATTERN", "Duration", "parse_duration", "seconds"]

# Days, hours, minutes and seconds only: months and years have no fixed length. No lookaheads: the API server
# checks this pattern with Go's RE2, which has none, and at least one component must follow P and T.
_NUMBER = r"[0-9]+(\.[0-9]+)?"
_TIME = rf"T({_NUMBER}H({_NUMBER}M)?({_NUMBER}S)?|{_NUMBER}M({_NUMBER}S)?|{_NUMBER}S)"
DURATION_PATTERN = rf"^P({_NUMBER}D({_TIME})?|{_TIME})$"


_DURATION = re.compile(DURATION_PATTERN.removeprefix("^").removesuffix("$"), re.ASCII)
_MONTHS_OR_YEARS = re.compile(r"P[^T]*[0-9][YM]")


def parse_duration(text: str) -> timedelta:
    """Parse ``text``; raise ``ValueError`` naming the expected form when it is not a fixed-length duration."""
    if isinstance(text, str) and text.startswith("-P"):
        raise ValueError(f"{text!r} is negative")
    if isinstance(text, str) and _MONTHS_OR_YEARS.match(text):
        raise ValueError(f"{text!r} uses months or years; use days, hours, minutes or seconds")
    if not isinstance(text, str) or not _DURATION.fullmatch(text):
        raise ValueError(f"{text!r} is not an ISO-8601 duration such as PT0.5S, PT30S or PT5M")
    try:
        value = isodate.parse_duration(text)
    except OverflowError:  # more days than timedelta holds (999999999), or digits no float can hold
        raise ValueError(f"{text!r} is longer than the longest duration (999999999 days)") from None
    assert isinstance(value, timedelta)  # the pattern admits days, hours, minutes and seconds only
    return value


def seconds(text: str) -> float:
    """Seconds of a duration (parsed where a setting is compiled, e.g. ``DeliveryPolicy.from_spec``)."""
    return parse_duration(text).total_seconds()


def _check(text: str) -> str:
    parse_duration(text)
    return text


Duration = Annotated[
    str,
    AfterValidator(_check),
    Field(json_schema_extra={"pattern": DURATION_PATTERN}, examples=["PT0.5S", "PT30S"]),
]
"""A field holding an ISO-8601 duration: kept as text (as written in the manifest), checked on load."""
