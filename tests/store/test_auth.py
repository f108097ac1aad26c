"""NATS over TLS with credentials: a real nats-server that requires them, and the settings read from the
environment. A client without the CA, or without the credentials, never gets a connection."""

from __future__ import annotations

import os
from pathlib import Path

import nats
import nats.errors
import nkeys
import pytest

from ripple.api.models import BrokerSpec
from ripple.local.nats_server import NatsServer
from ripple.store import EventStore
from ripple.store.auth import NatsAuth
from ripple.tls import throwaway_ca
from tests.support import event


@pytest.fixture
def ca(tmp_path: Path):
    return throwaway_ca(tmp_path / "tls", ["127.0.0.1"])


def tls_block(ca) -> str:
    return f'tls {{ cert_file: "{ca.server.cert}", key_file: "{ca.server.key}" }}\n'


async def stores_an_event(store: EventStore) -> None:
    await store.ensure_broker("shop", "default", BrokerSpec())
    await store.publish_events("shop", "default", [event("over-tls")])


async def refused(url: str, auth: NatsAuth) -> bool:
    try:
        nc = await nats.connect(url, connect_timeout=2, allow_reconnect=False, max_reconnect_attempts=0,
                                **auth.connect_options())
    except (nats.errors.Error, OSError, TimeoutError):
        return True
    await nc.close()
    return False


async def test_tls_and_a_password_are_required_and_enough(tmp_path: Path, ca) -> None:
    config = tls_block(ca) + 'authorization { users = [{user: ripple, password: "s3cret-for-the-test"}] }\n'
    good = NatsAuth(ca=ca.ca, user="ripple", password="s3cret-for-the-test")
    server = NatsServer(tmp_path / "nats", config=config, auth=good)
    await server.start()
    try:
        store = await EventStore.connect(server.url, auth=good)
        try:
            await stores_an_event(store)
            assert store.nc.connected_url is not None
        finally:
            await store.close()
        assert await refused(server.url, NatsAuth(ca=ca.ca))  # no credentials
        assert await refused(server.url, NatsAuth(ca=ca.ca, user="ripple", password="guess"))
        assert await refused(server.url, NatsAuth(user="ripple", password="s3cret-for-the-test"))  # the CA unknown
    finally:
        await server.stop()


async def test_an_nkey_seed_file_authenticates(tmp_path: Path, ca) -> None:
    seed = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER)
    public = nkeys.from_seed(bytearray(seed)).public_key.decode()
    (tmp_path / "user.nk").write_bytes(seed)
    good = NatsAuth.from_env({"RIPPLE_NATS_CA": str(ca.ca), "RIPPLE_NATS_NKEY": str(tmp_path / "user.nk")})
    config = tls_block(ca) + f'authorization {{ users = [{{nkey: "{public}"}}] }}\n'
    server = NatsServer(tmp_path / "nats", config=config, auth=good)
    await server.start()
    try:
        store = await EventStore.connect(server.url, auth=good)
        try:
            await stores_an_event(store)
        finally:
            await store.close()
        other = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER)
        (tmp_path / "other.nk").write_bytes(other)
        assert await refused(server.url, NatsAuth(ca=ca.ca, nkey=tmp_path / "other.nk"))
    finally:
        await server.stop()


async def test_a_token_from_a_file_authenticates_and_stays_out_of_the_environment(tmp_path: Path, ca) -> None:
    (tmp_path / "token").write_text("a-token-of-the-test-7f3a\n")
    environ = {"RIPPLE_NATS_CA": str(ca.ca), "RIPPLE_NATS_TOKEN_FILE": str(tmp_path / "token")}
    auth = NatsAuth.from_env(environ)
    assert auth.token == "a-token-of-the-test-7f3a" and "a-token" not in repr(auth)
    config = tls_block(ca) + 'authorization { token: "a-token-of-the-test-7f3a" }\n'
    server = NatsServer(tmp_path / "nats", config=config, auth=auth)
    await server.start()
    try:
        store = await EventStore.connect(server.url, auth=auth)
        await store.close()
        assert await refused(server.url, NatsAuth(ca=ca.ca, token="wrong"))
    finally:
        await server.stop()


@pytest.mark.parametrize(("environ", "message"), [
    ({"RIPPLE_NATS_CA": "/nowhere/ca.crt"}, "RIPPLE_NATS_CA: no file '/nowhere/ca.crt'"),
    ({"RIPPLE_NATS_CERT": __file__}, "RIPPLE_NATS_CERT and RIPPLE_NATS_KEY go together"),
    ({"RIPPLE_NATS_USER": "ripple"}, "RIPPLE_NATS_USER needs RIPPLE_NATS_PASSWORD"),
    ({"RIPPLE_NATS_USER": "u", "RIPPLE_NATS_PASSWORD": "p", "RIPPLE_NATS_TOKEN": "t"},
     "not RIPPLE_NATS_USER and RIPPLE_NATS_TOKEN"),
    ({"RIPPLE_NATS_TOKEN": "t", "RIPPLE_NATS_TOKEN_FILE": __file__}, "not both"),
], ids=["missing-ca", "cert-without-key", "user-without-password", "two-ways", "token-twice"])
def test_unusable_settings_name_the_variable(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        NatsAuth.from_env(environ)


def test_creds_and_client_certificates_become_connect_options(tmp_path: Path, ca) -> None:
    (tmp_path / "ripple.creds").write_text("-----BEGIN NATS USER JWT-----\n...\n")
    auth = NatsAuth.from_env({"RIPPLE_NATS_CA": str(ca.ca), "RIPPLE_NATS_CREDS": str(tmp_path / "ripple.creds"),
                              "RIPPLE_NATS_CERT": str(ca.server.cert), "RIPPLE_NATS_KEY": str(ca.server.key)})
    options = auth.connect_options()
    assert options["user_credentials"] == str(tmp_path / "ripple.creds")
    assert options["tls"].verify_mode.name == "CERT_REQUIRED"
    assert NatsAuth.from_env({}).connect_options() == {}
