"""A source's sink token: read from the projected file, sent as a bearer token, read again once renewed."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from ripple.sources import sink as sinks
from ripple.sources.sink import HttpSink, TokenFile
from tests.support import event, subscriber


async def test_the_adapter_sends_its_renewed_token_to_the_broker(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "token"
    path.write_text("first-token\n")
    token = TokenFile(path)
    async with subscriber() as broker, aiohttp.ClientSession() as session:
        sink = HttpSink(session, broker.url, timeout=5, authorization=token)
        assert (await sink.send(event("a"))).status == 202
        path.write_text("renewed-token\n")
        assert (await sink.send(event("b"))).status == 202  # within the re-read interval: the one read before
        monkeypatch.setattr(sinks, "TOKEN_REREAD", 0.0)
        assert (await sink.send(event("c"))).status == 202
        path.unlink()
        assert (await sink.send(event("d"))).status == 202  # no file: nothing sent (the broker may refuse it)
        (a, b, c, d) = await broker.wait_for(4)
    assert [r.headers.get("Authorization") for r in (a, b, c, d)] == [
        "Bearer first-token", "Bearer first-token", "Bearer renewed-token", None]


async def test_a_function_sink_s_token_is_exchanged_once_and_reused(tmp_path: Path) -> None:
    from aiohttp import web

    from ripple.sources.sink import ExchangedToken
    from tests.support import serve

    asked: list[str | None] = []

    async def exchange(request: web.Request) -> web.Response:
        asked.append(request.headers.get("Authorization"))
        if len(asked) == 1:
            return web.json_response({"error": "not yet"}, status=503)
        return web.json_response({"token": f"delivery-{len(asked)}", "expiresIn": 300})

    app = web.Application()
    app.router.add_post("/-/delivery-token", exchange)
    (tmp_path / "token").write_text("account-token")
    async with serve(app) as url, aiohttp.ClientSession() as session:
        token = ExchangedToken(session, f"{url}/-/delivery-token?function=shop/audit", TokenFile(tmp_path / "token"))
        assert await token() is None  # the exchange failed: nothing to send yet
        token._renew_at = 0.0  # as if the few seconds before asking again had passed
        assert await token() == "Bearer delivery-2"
        assert await token() == "Bearer delivery-2"  # reused for half its life: no third request
    assert asked == ["Bearer account-token", "Bearer account-token"]


async def test_a_malformed_exchange_answer_sends_no_token_and_raises_nothing(tmp_path: Path) -> None:
    from aiohttp import web

    from ripple.sources.sink import ExchangedToken
    from tests.support import serve

    answers = iter([{"token": "t", "expiresIn": "soon"}, {"token": 7, "expiresIn": 300}, ["not", "an", "object"]])

    async def exchange(request: web.Request) -> web.Response:
        return web.json_response(next(answers))

    app = web.Application()
    app.router.add_post("/-/delivery-token", exchange)
    (tmp_path / "token").write_text("account-token")
    async with serve(app) as url, aiohttp.ClientSession() as session:
        token = ExchangedToken(session, f"{url}/-/delivery-token", TokenFile(tmp_path / "token"))
        for _ in range(3):
            assert await token() is None
            token._renew_at = 0.0
