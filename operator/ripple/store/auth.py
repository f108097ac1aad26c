"""How Ripple's components authenticate to NATS and check its certificate, from ``RIPPLE_NATS_*`` variables.

Every component connects with the same settings, so they are read from the environment (the chart sets them from
mounted Secrets) rather than repeated as flags on each command:

* ``RIPPLE_NATS_CA``: the CA that signed the servers' certificates: connect over TLS and verify them against it
  (a ``tls://`` URL uses TLS with the system's CAs);
* ``RIPPLE_NATS_CERT`` and ``RIPPLE_NATS_KEY``: a client certificate, for servers that verify clients (mutual TLS);
* one way to prove who connects: ``RIPPLE_NATS_CREDS`` (a ``.creds`` file: user JWT and NKEY seed, for
  decentralised auth), ``RIPPLE_NATS_NKEY`` (an NKEY seed file), ``RIPPLE_NATS_USER`` with
  ``RIPPLE_NATS_PASSWORD`` or ``RIPPLE_NATS_PASSWORD_FILE``, or ``RIPPLE_NATS_TOKEN`` / ``RIPPLE_NATS_TOKEN_FILE``.

Paths are checked when the settings are read, so a component with a setting it cannot use stops at once, naming the
variable; secrets read from files are not kept in the environment, where ``/proc`` would show them.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["ENV_PREFIX", "NatsAuth"]

ENV_PREFIX = "RIPPLE_NATS_"


@dataclass(frozen=True)
class NatsAuth:
    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None
    creds: Path | None = None
    nkey: Path | None = None
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> NatsAuth:
        """The settings in ``environ``; ``ValueError`` naming the variable for one that cannot be used."""

        def path(name: str) -> Path | None:
            value = environ.get(ENV_PREFIX + name, "").strip()
            if not value:
                return None
            if not Path(value).is_file():
                raise ValueError(f"{ENV_PREFIX}{name}: no file '{value}'")
            return Path(value)

        def secret(name: str) -> str | None:
            value = environ.get(ENV_PREFIX + name)
            file = path(name + "_FILE")
            if value and file:
                raise ValueError(f"give {ENV_PREFIX}{name} or {ENV_PREFIX}{name}_FILE, not both")
            return file.read_text().strip() if file else (value or None)

        auth = cls(ca=path("CA"), cert=path("CERT"), key=path("KEY"), creds=path("CREDS"), nkey=path("NKEY"),
                   user=environ.get(ENV_PREFIX + "USER") or None, password=secret("PASSWORD"),
                   token=secret("TOKEN"))
        if (auth.cert is None) != (auth.key is None):
            raise ValueError(f"{ENV_PREFIX}CERT and {ENV_PREFIX}KEY go together (a client certificate and its key)")
        ways = [name for name, given in (("CREDS", auth.creds), ("NKEY", auth.nkey), ("USER", auth.user),
                                         ("TOKEN", auth.token)) if given]
        if len(ways) > 1:
            raise ValueError(f"give one way to authenticate to NATS, not {' and '.join(ENV_PREFIX + w for w in ways)}")
        if (auth.user is None) != (auth.password is None):
            raise ValueError(f"{ENV_PREFIX}USER needs {ENV_PREFIX}PASSWORD (or _FILE), and the other way round")
        return auth

    @property
    def uses_tls(self) -> bool:
        return self.ca is not None or self.cert is not None

    def connect_options(self) -> dict[str, Any]:
        """Keyword arguments for ``nats.connect``. Reads the certificate files: call it off the event loop."""
        options: dict[str, Any] = {}
        if self.uses_tls:
            context = ssl.create_default_context(cafile=str(self.ca) if self.ca else None)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            if self.cert is not None and self.key is not None:
                context.load_cert_chain(self.cert, self.key)
            options["tls"] = context
        if self.creds is not None:
            options["user_credentials"] = str(self.creds)
        if self.nkey is not None:
            options["nkeys_seed"] = str(self.nkey)
        if self.user is not None:
            options["user"], options["password"] = self.user, self.password
        if self.token is not None:
            options["token"] = self.token
        return options
