"""Turning a trigger's destination into the URL to deliver to."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from ripple.api.models import Destination

__all__ = ["Resolver", "Unresolvable", "static_resolver"]

Resolver = Callable[[Destination, str], Awaitable[str]]
"""Turns a trigger's destination (in its namespace) into a URL; raises :class:`Unresolvable` when it cannot."""


class Unresolvable(Exception):
    """A destination that names nothing deliverable (yet)."""


def static_resolver(function_urls: Mapping[tuple[str, str], str]) -> Resolver:
    """Resolve Function references from a fixed table (``--function-url ns/name=URL``)."""

    async def resolve(destination: Destination, namespace: str) -> str:
        key = destination.target(namespace)
        if isinstance(key, str):
            return key
        if key not in function_urls:
            raise Unresolvable(f"no URL known for Function '{key[0]}/{key[1]}'")
        return function_urls[key]

    return resolve
