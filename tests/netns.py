"""Network namespaces for partition tests: one namespace per server, each joined to a bridge in the test's own
namespace by a veth pair, so the test reaches every server and a partition can cut servers off from each other
while their clients still reach them (the case where a stale leader could answer)."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import pytest

__all__ = ["Namespaces", "namespaces", "namespaces_unavailable"]


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


def namespaces_unavailable() -> str | None:
    """Why this machine cannot make network namespaces, or None when it can."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "the ip command (iproute2) is not installed"
    probe = f"rpprobe{secrets.token_hex(3)}"
    try:
        _ip("netns", "add", probe)
        _ip("netns", "del", probe)
    except (subprocess.CalledProcessError, OSError) as exc:
        return f"ip netns add is refused here: {exc}"
    return None


class Namespaces:
    """``count`` namespaces ``<tag>n<i>`` at ``10.<net>.0.<10+i>``; the bridge holds ``10.<net>.0.1``."""

    def __init__(self, count: int) -> None:
        self.tag = f"rp{secrets.token_hex(2)}"
        self.net = 100 + secrets.randbelow(100)
        self.names = [f"{self.tag}n{i}" for i in range(count)]
        self.addresses = [f"10.{self.net}.0.{10 + i}" for i in range(count)]
        self.bridge = f"{self.tag}br"
        self._cut: set[tuple[int, int]] = set()

    def prefix(self, index: int) -> list[str]:
        """The command prefix that runs a program inside namespace ``index``."""
        return ["ip", "netns", "exec", self.names[index]]

    def create(self) -> None:
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"10.{self.net}.0.1/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        for i, (name, address) in enumerate(zip(self.names, self.addresses, strict=True)):
            outside, inside = f"{self.tag}v{i}", f"{self.tag}p{i}"
            _ip("netns", "add", name)
            _ip("link", "add", outside, "type", "veth", "peer", "name", inside)
            _ip("link", "set", inside, "netns", name)
            _ip("link", "set", outside, "master", self.bridge)
            _ip("link", "set", outside, "up")
            _ip("-n", name, "addr", "add", f"{address}/24", "dev", inside)
            _ip("-n", name, "link", "set", inside, "up")
            _ip("-n", name, "link", "set", "lo", "up")

    def destroy(self) -> None:
        for i, name in enumerate(self.names):
            for args in (("link", "del", f"{self.tag}v{i}"), ("netns", "del", name)):
                try:
                    _ip(*args)
                except (subprocess.CalledProcessError, OSError):
                    pass  # already gone with its namespace
        try:
            _ip("link", "del", self.bridge)
        except (subprocess.CalledProcessError, OSError):
            pass

    def isolate(self, index: int, others: Sequence[int] | None = None) -> None:
        """Cut namespace ``index`` off from the other namespaces, both ways, by routing their addresses into a
        blackhole; the bridge's address (the test, the clients) stays reachable."""
        peers = [i for i in range(len(self.names)) if i != index] if others is None else list(others)
        for peer in peers:
            for a, b in ((index, peer), (peer, index)):
                if (a, b) not in self._cut:
                    _ip("-n", self.names[a], "route", "add", "blackhole", f"{self.addresses[b]}/32")
                    self._cut.add((a, b))

    def heal(self) -> None:
        """Undo every cut."""
        for a, b in sorted(self._cut):
            _ip("-n", self.names[a], "route", "del", "blackhole", f"{self.addresses[b]}/32")
        self._cut.clear()


@contextmanager
def namespaces(count: int) -> Iterator[Namespaces]:
    """The namespaces for one test, removed afterwards; the test is skipped, saying why, where they cannot be
    made."""
    reason = namespaces_unavailable()
    if reason is not None:
        pytest.skip(f"partition tests need network namespaces: {reason}")
    made = Namespaces(count)
    try:
        made.create()
        yield made
    finally:
        made.destroy()
