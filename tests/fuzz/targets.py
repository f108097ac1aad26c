"""The fuzz targets by name, each a harness module with ``fuzz_one(data: bytes)``, and their committed corpora.

Harnesses are imported on demand, so that the runner can import them (and through them ``ripple``) under
atheris's instrumentation, which only covers modules imported after it is switched on.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path

FuzzOne = Callable[[bytes], None]

TARGETS: dict[str, str] = {
    "http": "tests.fuzz.http_codec",
    "cesql": "tests.fuzz.cesql",
    "pattern": "tests.fuzz.pattern",
    "manifests": "tests.fuzz.manifests",
}
"""Target name → harness module."""

INSTRUMENTED: dict[str, tuple[str, ...]] = {
    "http": ("ripple.events",),
    "cesql": ("ripple.filters",),
    "pattern": ("ripple.filters", "json"),
    "manifests": ("ripple.api", "ripple.filters"),
}
"""Target name → the packages whose coverage guides it (the JSON parser's too, so that inputs grow into JSON)."""

INSTRUMENTED_MODULES: dict[str, tuple[str, ...]] = {
    "manifests": ("yaml.composer", "yaml.constructor", "yaml.resolver"),
}
"""Target name → single modules whose functions guide it too: PyYAML's upper layers, where documents are built
(its character-level scanner is left out: instrumented, it makes a run twenty times slower)."""

CORPUS_ROOT = Path(__file__).resolve().parent / "corpus"


def corpus_dir(target: str) -> Path:
    return CORPUS_ROOT / target


def corpus_files(target: str) -> list[Path]:
    return sorted(path for path in corpus_dir(target).iterdir() if path.is_file())


def load(target: str) -> FuzzOne:
    """The harness of a target name, or of ``module:function`` (a harness variant, as the tests use)."""
    module_name, _, function = TARGETS[target].partition(":") if target in TARGETS else target.partition(":")
    harness: FuzzOne = getattr(importlib.import_module(module_name), function or "fuzz_one")
    return harness
