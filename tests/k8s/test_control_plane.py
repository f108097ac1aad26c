"""The ``control_plane`` fixture itself: what tests of the operator rely on."""

from __future__ import annotations

import json
import ssl
import urllib.request

import pytest

from tests.k8s.conftest import FAKE_NODE, ControlPlane

pytestmark = pytest.mark.k8s


def test_server_answers_the_admin_token(control_plane: ControlPlane) -> None:
    request = urllib.request.Request(f"{control_plane.server}/version",
                                     headers={"Authorization": f"Bearer {control_plane.token}"})
    context = ssl.create_default_context(cafile=str(control_plane.ca_file))
    with urllib.request.urlopen(request, timeout=10, context=context) as response:
        assert json.load(response)["major"] == "1"
    assert control_plane.kubectl("auth", "can-i", "*", "*").stdout.strip() == "yes"


def test_kwok_node_is_ready(control_plane: ControlPlane) -> None:
    if control_plane.external:
        return  # a real cluster has its own nodes
    node = control_plane.get_json("node", FAKE_NODE)
    assert {c["type"]: c["status"] for c in node["status"]["conditions"]}["Ready"] == "True"


def test_namespace_fixture(control_plane: ControlPlane, namespace: str) -> None:
    assert namespace.startswith("t-") and len(namespace) == 7
    assert control_plane.get_json("namespace", namespace)["status"]["phase"] == "Active"
