"""Every case of the CloudEvents SQL conformance kit (shared/testdata/cesql-tck), one test per case."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from ripple.filters import cesql

TCK_DIR = Path(__file__).resolve().parents[2] / ".." / "shared" / "testdata" / "cesql-tck"
DEFAULT_EVENT = {
    "specversion": "1.0",
    "id": "tck-1",
    "source": "https://tck.example/source",
    "type": "tck.event",
}


class _Loader(yaml.SafeLoader):
    """Keeps unquoted RFC 3339 times as strings, as CloudEvents attributes are."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regex) for tag, regex in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _cases_of(path: Path) -> list[Any]:
    """The file's cases, expressions kept as written (``TRUE`` or ``0`` would otherwise load as values)."""
    text = path.read_text(encoding="utf-8")
    cases = yaml.load(text, Loader=_Loader)["tests"]
    root = yaml.compose(text, Loader=_Loader)
    nodes = next(value for key, value in root.value if key.value == "tests").value
    params = []
    for case, node in zip(cases, nodes, strict=True):
        case["expression"] = next(value for key, value in node.value if key.value == "expression").value
        params.append(pytest.param(case, id=f"{path.stem}: {case['name']}"))
    return params


def _all_cases() -> list[Any]:
    if not TCK_DIR.is_dir():
        reason = f"CESQL conformance kit not found at {TCK_DIR.resolve()}"
        return [pytest.param(None, id="tck-missing", marks=pytest.mark.skip(reason=reason))]
    return [param for path in sorted(TCK_DIR.glob("*.yaml")) for param in _cases_of(path)]


def _run(expression: str, event: dict[str, Any]) -> tuple[Any, str | None]:
    """Evaluate as a conformance run does; a compile-time error gives the spec's fallback value, false."""
    try:
        compiled = cesql.compile(expression)
    except cesql.CesqlError as error:
        return False, error.kind
    return compiled.evaluate(event)


@pytest.mark.parametrize("case", _all_cases())
def test_conformance(case: dict[str, Any]) -> None:
    event = case.get("event") or {**DEFAULT_EVENT, **(case.get("eventOverrides") or {})}

    value, error = _run(case["expression"], event)

    assert error == case.get("error")
    assert error is None or error in cesql.ERROR_KINDS
    if "result" in case:
        assert (type(value), value) == (type(case["result"]), case["result"])
