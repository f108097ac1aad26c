"""TLS for Ripple's HTTP servers, with certificates reloaded when they are renewed, and throw-away CAs.

A server certificate in Kubernetes is a mounted Secret that cert-manager (or whoever) renews in place: the files
change under a running server. :class:`ReloadingTls` keeps serving: it looks at the files every
:data:`RELOAD_EVERY` seconds, builds a new ``SSLContext`` off the event loop when they changed, and hands it to
each new connection as its handshake starts (Python's SNI callback may swap the connection's context, and OpenSSL
calls it for every ClientHello, with or without a server name). Connections already open keep the certificate
they were made with. A renewal that cannot be loaded (a half-written pair) is logged and the last good one kept.

:func:`throwaway_ca` makes a CA and a server certificate signed by it, for ``ripple dev --tls``.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import logging
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "RELOAD_EVERY",
    "ReloadingTls",
    "ThrowawayCa",
    "TlsFiles",
    "alternative_names",
    "server_context",
    "throwaway_ca",
]

log = logging.getLogger(__name__)
RELOAD_EVERY = 10.0


@dataclass(frozen=True)
class TlsFiles:
    """A server's certificate (chain) and key in PEM; ``client_ca`` makes it ask clients for certificates too."""

    cert: Path
    key: Path
    client_ca: Path | None = None

    def stamp(self) -> tuple[tuple[int, int, int], ...]:
        """What changes when a file is replaced (a Secret's mount swaps a symlink: the target's inode changes)."""
        paths = [self.cert, self.key] + ([self.client_ca] if self.client_ca else [])
        stats = [os.stat(path) for path in paths]
        return tuple((s.st_ino, s.st_mtime_ns, s.st_size) for s in stats)


def server_context(files: TlsFiles) -> ssl.SSLContext:
    """A TLS 1.2+ server context for ``files``; ``ssl.SSLError``/``OSError`` when they cannot be used."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(files.cert, files.key)
    if files.client_ca is not None:
        context.load_verify_locations(files.client_ca)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


class ReloadingTls:
    """The ``SSLContext`` a server listens with, serving the newest loadable certificate to each new connection."""

    def __init__(self, files: TlsFiles, *, every: float = RELOAD_EVERY) -> None:
        self.files = files
        self.every = every
        self.context = server_context(files)  # refuse to start with files that do not load
        self.context.sni_callback = self._choose
        self._current = self.context
        self._stamp = files.stamp()
        self.reloads = 0

    def _choose(self, connection: ssl.SSLObject, server_name: str | None, context: ssl.SSLContext) -> None:
        if self._current is not context:
            connection.context = self._current

    async def reload_if_changed(self) -> bool:
        """Load the files again if they changed; whether the connections from now on get a new certificate."""
        try:
            stamp = await asyncio.to_thread(self.files.stamp)
            if stamp == self._stamp:
                return False
            fresh = await asyncio.to_thread(server_context, self.files)
        except (OSError, ssl.SSLError) as exc:
            log.warning("TLS files %s changed but cannot be loaded (%s); still serving the previous certificate",
                        self.files.cert, exc)
            return False
        self._current, self._stamp = fresh, stamp
        self.reloads += 1
        log.info("TLS certificate %s reloaded", self.files.cert)
        return True

    async def watch(self) -> None:
        while True:
            await asyncio.sleep(self.every)
            await self.reload_if_changed()


def alternative_names(hostnames: list[str]) -> list[x509.GeneralName]:
    """A certificate's subject alternative names: IP literals as IP addresses, the rest as DNS names."""
    names: list[x509.GeneralName] = []
    for host in hostnames:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


@dataclass(frozen=True)
class ThrowawayCa:
    ca: Path
    """The CA's certificate: what a client trusts (``ripple send --cacert``, ``curl --cacert``)."""
    server: TlsFiles


def throwaway_ca(directory: Path, hostnames: list[str], *, days: int = 30, client: bool = False) -> ThrowawayCa:
    """A new CA and a server certificate for ``hostnames`` (IP literals become IP SANs) signed by it, written to
    ``directory`` (``ca.crt``, ``tls.crt``, ``tls.key``; the key readable by its owner only). With ``client`` the
    certificate is a client's (for mutual TLS) instead."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ripple dev throw-away CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=days))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    names = alternative_names(hostnames)
    server = (x509.CertificateBuilder()
              .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostnames[0])]))
              .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
              .not_valid_before(now - datetime.timedelta(minutes=5))
              .not_valid_after(now + datetime.timedelta(days=days))
              .add_extension(x509.SubjectAlternativeName(names), critical=False)
              .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
              .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH if client
                                                    else ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
              .sign(ca_key, hashes.SHA256()))
    directory.mkdir(parents=True, exist_ok=True)
    pem = serialization.Encoding.PEM
    (directory / "ca.crt").write_bytes(ca.public_bytes(pem))
    (directory / "tls.crt").write_bytes(server.public_bytes(pem))
    key_path = directory / "tls.key"
    key_path.touch(mode=0o600)
    key_path.chmod(0o600)
    key_path.write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return ThrowawayCa(directory / "ca.crt", TlsFiles(directory / "tls.crt", key_path))
