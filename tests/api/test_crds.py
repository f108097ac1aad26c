"""The CRDs in crds/ are generated from the models: never edited by hand, never stale, always structural."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from ripple.api.crds import KINDS, crd, render

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("info", KINDS, ids=lambda info: info.plural)
def test_crd_files_match_the_models(info):
    path = REPO / "crds" / f"ripple.dev_{info.plural}.yaml"
    assert path.read_text() == render(info), f"{path} is stale: run `ripple crds`"


def walk(schema: dict[str, Any], path: str = ""):
    yield path, schema
    for name, sub in (schema.get("properties") or {}).items():
        yield from walk(sub, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        yield from walk(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from walk(schema["additionalProperties"], f"{path}{{}}")


@pytest.mark.parametrize("info", KINDS, ids=lambda info: info.plural)
def test_schemas_are_structural_and_described(info):
    root = crd(info)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    text = yaml.safe_dump(root)
    for forbidden in ("$ref", "anyOf", "oneOf", "title:", "$defs"):
        assert forbidden not in text
    for path, node in walk(root["properties"]["spec"], "spec"):
        assert "type" in node, f"{path} has no type"
        named_field = not path.endswith(("[]", "{}"))
        if named_field or "properties" in node:
            assert node.get("description"), f"{path} has no description (kubectl explain shows it)"


def test_printer_columns_short_names_and_category():
    names = {info.plural: crd(info)["spec"] for info in KINDS}
    assert {p: s["names"]["shortNames"] for p, s in names.items()} == {
        "brokers": ["brk"], "functions": ["fn"], "triggers": ["trig"], "eventsources": ["evsrc"],
        "sequences": ["seq"], "parallels": ["par"], "eventpolicies": ["evpol"],
    }
    for spec in names.values():
        assert "ripple" in spec["names"]["categories"]
        version = spec["versions"][0]
        columns = [c["name"] for c in version["additionalPrinterColumns"]]
        assert columns[:2] == ["Ready", "Reason"] and columns[-1] == "Age"
        assert version["subresources"] == {"status": {}}
    assert "Subscriber" in [c["name"] for c in names["triggers"]["versions"][0]["additionalPrinterColumns"]]
    assert "URL" in [c["name"] for c in names["functions"]["versions"][0]["additionalPrinterColumns"]]


@pytest.mark.parametrize("info", KINDS, ids=lambda info: info.plural)
def test_exclusive_bounds_are_openapi_3_0_flags_the_api_server_reads(info):
    """JSON Schema's ``exclusiveMinimum: 0`` (pydantic's ``gt=0``) is ``minimum: 0, exclusiveMinimum: true`` in a
    CRD: the API server refuses a CRD whose exclusive bound is a number."""
    root = crd(info)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in walk(root):
        for key, bound in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
            if key in node:
                assert node[key] is True and bound in node, f"{path}: {key} {node[key]!r}"
    if info.plural == "brokers":
        rate = root["properties"]["spec"]["properties"]["rateLimit"]["properties"]["eventsPerSecond"]
        assert (rate["minimum"], rate["exclusiveMinimum"]) == (0, True)
