"""Every Ripple process runs on uvloop where it is installed, unless told to use the standard loop."""

from __future__ import annotations

import asyncio

import pytest
import uvloop

from ripple._aio import EVENT_LOOP_ENV, loop_factory, run


async def loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_uvloop_by_default(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv(EVENT_LOOP_ENV, raising=False)
    assert loop_factory() is uvloop.new_event_loop
    assert run(loop_module()).startswith("uvloop")


def test_the_standard_loop_on_request(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(EVENT_LOOP_ENV, "asyncio")
    assert loop_factory() is None
    assert run(loop_module()).startswith("asyncio")


def test_an_unknown_loop_is_refused_naming_the_variable(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(EVENT_LOOP_ENV, "trio")
    with pytest.raises(ValueError, match=EVENT_LOOP_ENV):
        loop_factory()


def test_start_up_objects_are_frozen_out_of_collections(monkeypatch: pytest.MonkeyPatch):
    import gc

    from ripple import _aio

    monkeypatch.setattr(_aio, "FREEZE_AFTER", 0.05)

    async def live_a_little() -> int:
        await asyncio.sleep(0.2)
        return gc.get_freeze_count()

    gc.unfreeze()
    try:
        assert run(live_a_little()) > 1000
    finally:
        gc.unfreeze()
