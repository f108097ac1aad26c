"""HTTPS from ``start_site``: served with the given certificate, renewed in place without a restart, a bad
renewal ignored, and a handshake that never finishes cut off."""

from __future__ import annotations

import asyncio
import hashlib
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from ripple.serving import HttpLimits, start_site
from ripple.tls import ReloadingTls, TlsFiles, throwaway_ca


async def hello(request: web.Request) -> web.Response:
    return web.Response(text="hello")


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[str, Path, web.AppRunner]]:
    made = throwaway_ca(tmp_path / "tls", ["127.0.0.1", "localhost"])
    app = web.Application()
    app.router.add_get("/", hello)
    runner = await start_site(app, "127.0.0.1", 0, name="tls-test", tls=made.server,
                              limits=HttpLimits(header_timeout=0.5))
    port = runner.addresses[0][1]
    try:
        yield f"https://127.0.0.1:{port}/", made.ca, runner
    finally:
        await runner.cleanup()


def trusting(ca: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca))


async def served_fingerprint(url: str, ca: Path) -> str:
    """The SHA-256 of the certificate a new connection is given."""
    host, port = url.removeprefix("https://").rstrip("/").split(":")
    _, writer = await asyncio.open_connection(host, int(port), ssl=trusting(ca))
    der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    writer.close()
    await writer.wait_closed()
    return hashlib.sha256(der).hexdigest()


async def test_https_is_served_with_the_certificate_given(served) -> None:
    url, ca, _ = served
    async with aiohttp.ClientSession() as session:
        async with session.get(url, ssl=trusting(ca)) as response:
            assert response.status == 200 and await response.text() == "hello"
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await session.get(url)  # the system's CAs do not know a throw-away CA
        with pytest.raises(aiohttp.ClientError):
            await session.get(url.replace("https://", "http://"))  # no plain HTTP on a TLS port


async def test_a_renewed_certificate_is_served_to_new_connections_without_a_restart(served, tmp_path) -> None:
    url, ca, runner = served
    before = await served_fingerprint(url, ca)
    renewed = throwaway_ca(tmp_path / "renewed", ["127.0.0.1"])
    files = runner.tls.files
    # A Secret's renewal: new files swapped in under the same names (a new CA here, so the client must trust it).
    files.cert.write_bytes(renewed.server.cert.read_bytes())
    files.key.write_bytes(renewed.server.key.read_bytes())
    assert await runner.tls.reload_if_changed()
    after = await served_fingerprint(url, renewed.ca)
    assert after != before
    assert hashlib.sha256(ssl.PEM_cert_to_DER_cert(files.cert.read_text())).hexdigest() == after
    assert not await runner.tls.reload_if_changed()  # unchanged files are not loaded again


async def test_a_renewal_that_cannot_be_loaded_keeps_the_last_good_certificate(served, caplog) -> None:
    url, ca, runner = served
    before = await served_fingerprint(url, ca)
    runner.tls.files.key.write_text("-----BEGIN PRIVATE KEY-----\nhalf-written\n")
    assert not await runner.tls.reload_if_changed()
    assert "cannot be loaded" in caplog.text
    assert await served_fingerprint(url, ca) == before


async def test_files_that_do_not_load_refuse_the_start(tmp_path) -> None:
    (tmp_path / "tls.crt").write_text("not a certificate")
    (tmp_path / "tls.key").write_text("not a key")
    with pytest.raises(ssl.SSLError):
        ReloadingTls(TlsFiles(tmp_path / "tls.crt", tmp_path / "tls.key"))


async def test_a_handshake_that_never_finishes_is_cut_off(served) -> None:
    url, _, _ = served
    host, port = url.removeprefix("https://").rstrip("/").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))  # TCP only: no ClientHello is ever sent
    try:
        assert await asyncio.wait_for(reader.read(), timeout=10) == b""  # closed by the server
    finally:
        writer.close()


async def test_with_a_client_ca_only_clients_with_a_certificate_it_signed_get_in(tmp_path: Path) -> None:
    server = throwaway_ca(tmp_path / "server", ["127.0.0.1"])
    clients = throwaway_ca(tmp_path / "clients", ["producer"], client=True)
    app = web.Application()
    app.router.add_get("/", hello)
    files = TlsFiles(server.server.cert, server.server.key, client_ca=clients.ca)
    runner = await start_site(app, "127.0.0.1", 0, name="mtls-test", tls=files)
    url = f"https://127.0.0.1:{runner.addresses[0][1]}/"
    try:
        anonymous = trusting(server.ca)
        known = trusting(server.ca)
        known.load_cert_chain(clients.server.cert, clients.server.key)
        stranger_ca = throwaway_ca(tmp_path / "stranger", ["producer"], client=True)
        stranger = trusting(server.ca)
        stranger.load_cert_chain(stranger_ca.server.cert, stranger_ca.server.key)
        async with aiohttp.ClientSession() as session:
            for context in (anonymous, stranger):
                with pytest.raises(aiohttp.ClientError):
                    async with session.get(url, ssl=context) as response:
                        await response.read()
            async with session.get(url, ssl=known) as response:
                assert response.status == 200
    finally:
        await runner.cleanup()
