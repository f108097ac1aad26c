"""What local mode's flow page shows: the manifests' brokers, triggers, functions, Sequences and Parallels as a
graph, with the counts ``GET /-/status`` reports."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from ripple.api.loading import Manifests
from ripple.console.topology import broker_counts, trigger_node
from ripple.store import EventStore

__all__ = ["LocalConsoleSource"]

StatusReader = Callable[[], Awaitable[dict[str, Any]]]


class LocalConsoleSource:
    """The page's figures for ``ripple dev``: the topology from the manifests, the counts from its status."""

    def __init__(self, manifests: Manifests, store: EventStore, status: StatusReader) -> None:
        self.manifests = manifests
        self.store = store
        self.status = status

    def brokers(self) -> list[tuple[str, str]]:
        return sorted(self.manifests.brokers)

    async def snapshot(self) -> dict[str, Any]:
        status = await self.status()
        brokers = [{"id": f"{ns}/{name}", **await broker_counts(self.store, ns, name)} for ns, name in self.brokers()]
        triggers = [trigger_node(trigger, status["triggers"].get(f"{namespace}/{name}") or {})
                    for (namespace, name), trigger in sorted(self.manifests.triggers.items())]
        functions = [{"id": key, **fn} for key, fn in sorted(status["functions"].items())]
        flows = [{"id": key, **flow} for key, flow in sorted((status.get("flows") or {}).items())]
        return {"brokers": brokers, "triggers": triggers, "functions": functions, "flows": flows,
                "sources": status.get("sources") or {}}
