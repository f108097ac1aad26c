"""``is_ready`` reads Ready from ``status.conditions``, of Ripple's kinds and of Pods alike."""

from __future__ import annotations

import pytest

from ripple.kube.conditions import is_ready


def condition(type: str, status: str) -> dict[str, str]:
    return {"type": type, "status": status, "reason": "Because", "lastTransitionTime": "2024-01-01T00:00:00Z"}


@pytest.mark.parametrize(
    ("status", "ready"),
    [
        (None, False),
        ({}, False),
        ({"conditions": None}, False),
        ({"conditions": []}, False),
        ({"conditions": [condition("Ready", "True")]}, True),
        ({"conditions": [condition("Ready", "False")]}, False),
        ({"conditions": [condition("Ready", "Unknown")]}, False),
        ({"conditions": [condition("BrokerReady", "True"), condition("SubscriberResolved", "True")]}, False),
        ({"conditions": [condition("BrokerReady", "True"), condition("Ready", "True")]}, True),
        ({"conditions": [condition("BrokerReady", "False"), condition("Ready", "True")]}, True),
        ({"conditions": [{"type": "Ready", "status": True}]}, False),  # Kubernetes says "True", a string
        ({"conditions": [{"type": "ready", "status": "True"}]}, False),
        # A Pod's status.
        ({"phase": "Running", "conditions": [condition("PodScheduled", "True"), condition("Ready", "True"),
                                              condition("ContainersReady", "True")]}, True),
        ({"phase": "Pending", "conditions": [condition("PodScheduled", "True"), condition("Ready", "False")]}, False),
    ],
)
def test_is_ready(status, ready):
    assert is_ready(status) is ready
