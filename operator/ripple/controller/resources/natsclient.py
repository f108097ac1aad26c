"""What a Function or an EventSource adapter needs to reach a NATS that requires TLS or a password.

The operator holds the release's NATS client settings (``RIPPLE_NATS_*``, from the chart's Secrets); a workload in
another namespace cannot mount those Secrets, so each gets a Secret of its own, owned by its Function or
EventSource (garbage-collected with it), holding only the CA certificate and the password, mounted read-only and
named to the runtime by the same ``RIPPLE_NATS_*`` variables every component reads.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

__all__ = ["NATS_CLIENT_MOUNT", "NatsClient", "client_env", "client_secret", "client_secret_name", "client_volume"]

NATS_CLIENT_MOUNT = "/var/run/ripple/nats"


@dataclass(frozen=True)
class NatsClient:
    """The operator's own NATS client settings, as its workloads get them."""

    ca: bytes | None = None
    user: str | None = None
    password: str | None = field(default=None, repr=False)

    @property
    def needed(self) -> bool:
        return self.ca is not None or self.user is not None


def client_secret_name(workload: str) -> str:
    return f"{workload}-nats"


def client_secret(namespace: str, workload: str, labels: dict[str, str], client: NatsClient) -> dict[str, Any]:
    data = {}
    if client.ca is not None:
        data["ca.crt"] = base64.b64encode(client.ca).decode()
    if client.password is not None:
        data["password"] = base64.b64encode(client.password.encode()).decode()
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": client_secret_name(workload), "namespace": namespace, "labels": labels},
            "data": data}


def client_env(client: NatsClient) -> list[dict[str, str]]:
    env = []
    if client.ca is not None:
        env.append({"name": "RIPPLE_NATS_CA", "value": f"{NATS_CLIENT_MOUNT}/ca.crt"})
    if client.user is not None:
        env += [{"name": "RIPPLE_NATS_USER", "value": client.user},
                {"name": "RIPPLE_NATS_PASSWORD_FILE", "value": f"{NATS_CLIENT_MOUNT}/password"}]
    return env


def client_volume(workload: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(volume, mount) of the workload's NATS client Secret."""
    return ({"name": "nats-client", "secret": {"secretName": client_secret_name(workload), "defaultMode": 0o440}},
            {"name": "nats-client", "mountPath": NATS_CLIENT_MOUNT, "readOnly": True})
