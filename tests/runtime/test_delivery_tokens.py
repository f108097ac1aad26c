"""The function runtime with delivery tokens on: only a request carrying a valid token for it runs the handler."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from ripple.events.http import encode_binary
from ripple.runtime.loader import load_handler
from ripple.runtime.server import create_function_app, runtime_verifier
from ripple.signing import DeliverySigner, function_audience, jwks_route, trigger_subject
from tests.support import event, serve

HANDLER = '''
calls = []

def handle(event):
    calls.append(event["id"])
'''


@pytest.fixture
async def keys() -> AsyncIterator[tuple[DeliverySigner, str]]:
    signer = DeliverySigner()

    async def jwks() -> dict[str, object]:
        return signer.ring.jwks()

    app = web.Application()
    app.router.add_routes([jwks_route(jwks)])
    async with serve(app) as url:
        yield signer, url + "/.well-known/jwks.json"


@pytest.fixture
def handler_dir(tmp_path: Path) -> Path:
    (tmp_path / "guarded_handler.py").write_text(HANDLER)
    return tmp_path


async def post(url: str, event_id: str, authorization: str | None = None) -> tuple[int, dict[str, object]]:
    headers, body = encode_binary(event(event_id))
    if authorization is not None:
        headers["Authorization"] = authorization
    async with aiohttp.ClientSession() as session, session.post(url, data=body, headers=headers) as response:
        text = await response.text()
        return response.status, json.loads(text) if text else {}


async def test_a_guarded_function_runs_only_for_its_own_delivery_tokens(keys, handler_dir: Path) -> None:
    signer, jwks_url = keys
    env = {"RIPPLE_FUNCTION": "shop/validate", "RIPPLE_DELIVERY_KEYS": jwks_url}
    verifier = runtime_verifier(env)
    assert verifier is not None and verifier.mode == "required"
    handler = load_handler("guarded_handler:handle", handler_dir)
    import guarded_handler

    async with serve(create_function_app(handler, verifier=verifier)) as url:
        status, body = await post(url + "/", "direct")
        assert status == 401 and "through a trigger" in str(body["error"])
        mine = signer.token(function_audience("shop", "validate"), trigger_subject("shop", "orders"))
        status, _ = await post(url + "/", "delivered", f"Bearer {mine}")
        assert status == 202
        theirs = signer.token(function_audience("shop", "refund"), trigger_subject("shop", "orders"))
        status, body = await post(url + "/", "replayed-elsewhere", f"Bearer {theirs}")
        assert status == 401 and "audience" in str(body["error"]).lower()
    assert guarded_handler.calls == ["delivered"]


def test_a_check_without_a_function_name_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="RIPPLE_FUNCTION"):
        runtime_verifier({"RIPPLE_DELIVERY_KEYS": "/keys.json"})
    assert runtime_verifier({"RIPPLE_FUNCTION": "shop/validate"}) is None  # no keys: not checked


async def test_a_warm_pool_runtime_takes_the_check_from_its_specialization(keys, handler_dir: Path) -> None:
    signer, jwks_url = keys
    saved = dict(os.environ)
    try:
        async with serve(create_function_app(None)) as url, aiohttp.ClientSession() as session:
            spec = {"handler": "guarded_handler:handle", "path": str(handler_dir), "name": "validate",
                    "env": {"RIPPLE_FUNCTION": "shop/validate", "RIPPLE_DELIVERY_KEYS": jwks_url,
                            "RIPPLE_DELIVERY_AUTH": "required"}}
            async with session.post(url + "/-/specialize", json=spec) as response:
                assert response.status == 200, await response.text()
            status, _ = await post(url + "/", "direct")
            assert status == 401
            token = signer.token(function_audience("shop", "validate"), trigger_subject("shop", "orders"))
            status, _ = await post(url + "/", "delivered", f"Bearer {token}")
            assert status == 202
    finally:
        os.environ.clear()
        os.environ.update(saved)
        sys.modules.pop("guarded_handler", None)


async def test_a_function_serve_process_refuses_an_unusable_setting(handler_dir: Path) -> None:
    env = {**os.environ, "RIPPLE_DELIVERY_KEYS": "/nowhere.json", "RIPPLE_DELIVERY_AUTH": "always",
           "RIPPLE_FUNCTION": "shop/validate"}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ripple", "function", "serve", "--handler", "guarded_handler:handle",
        "--path", str(handler_dir), "--port", "0", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 2
    assert b"RIPPLE_DELIVERY_AUTH: 'always'" in stderr
