"""Fuzz harness for the manifest loader (``ripple.api.loading.load_manifests``), which reads the YAML files
that ``ripple dev``, ``ripple ingress`` and ``ripple dispatcher`` are pointed at.

An input is one manifest file's bytes, written to a scratch file (the loader reads paths, as ``kubectl apply
-f`` does). :class:`ManifestError` is the refusal, which the command line prints as one line naming the file
and field; anything else is a crash, shown to the user as a traceback.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

from ripple.api.errors import ManifestError
from ripple.api.loading import load_manifests

REFUSALS: tuple[type[Exception], ...] = (ManifestError,)

_SCRATCH = Path(tempfile.mkdtemp(prefix="ripple-fuzz-scratch-"))
atexit.register(shutil.rmtree, _SCRATCH, ignore_errors=True)


def fuzz_one(data: bytes) -> None:
    path = _SCRATCH / "manifests.yaml"
    path.write_bytes(data)
    try:
        load_manifests([path])
    except REFUSALS:
        return
