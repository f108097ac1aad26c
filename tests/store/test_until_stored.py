"""Holding a message while the store cannot take what settling it needs, instead of handing it back."""

from __future__ import annotations

import pytest

from ripple.store.jetstream import until_stored


async def test_it_retries_with_keep_alives_until_stored(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr("ripple.store.jetstream.STORE_RETRY_DELAY", 0.001)
    tries: list[int] = []
    keep_alives: list[int] = []

    async def store_once() -> bool:
        tries.append(1)
        return len(tries) == 4

    async def keep_alive() -> None:
        keep_alives.append(1)

    await until_stored(store_once, keep_alive)
    assert len(tries) == 4 and len(keep_alives) == 3


async def test_a_failing_keep_alive_does_not_stop_it(monkeypatch: pytest.MonkeyPatch):
    import nats.errors

    monkeypatch.setattr("ripple.store.jetstream.STORE_RETRY_DELAY", 0.001)
    tries: list[int] = []

    async def store_once() -> bool:
        tries.append(1)
        return len(tries) == 2

    async def keep_alive() -> None:
        raise nats.errors.ConnectionClosedError

    await until_stored(store_once, keep_alive)
    assert len(tries) == 2
