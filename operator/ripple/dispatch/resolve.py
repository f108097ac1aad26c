"""Turning a trigger's destination into the URL to deliver to."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from ripple.api.models import ADDRESSABLE_KINDS, Destination

__all__ = ["AddressLookup", "Resolver", "Unresolvable", "static_resolver", "with_addresses"]

Resolver = Callable[[Destination, str], Awaitable[str]]
"""Turns a trigger's destination (in its namespace) into a URL; raises :class:`Unresolvable` when it cannot."""


AddressLookup = Callable[[str, str, str], str | None]
"""(kind, namespace, name) of a Sequence or Parallel → the URL it is served at, ``None`` while it is not ready."""


class Unresolvable(Exception):
    """A destination that names nothing deliverable (yet)."""


def with_addresses(resolve: Resolver, address: AddressLookup) -> Resolver:
    """``resolve``, and Sequences and Parallels resolved to their addresses (delivering there stores the event on
    the flow's first hop: its 202 acknowledges the delivery)."""

    async def resolved(destination: Destination, namespace: str) -> str:
        ref = destination.ref
        if ref is None or ref.kind not in ADDRESSABLE_KINDS:
            return await resolve(destination, namespace)
        ref_namespace, name = ref.key(namespace)
        url = address(ref.kind, ref_namespace, name)
        if url is None:
            raise Unresolvable(f"no {ref.kind} '{ref_namespace}/{name}' is ready")
        return url

    return resolved


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
