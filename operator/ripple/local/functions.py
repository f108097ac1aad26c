"""Where local mode finds each Function's code, and how it launches it."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from ripple.api.durations import seconds
from ripple.api.loading import Manifests
from ripple.api.models import Function
from ripple.runtime.idempotency import NATS_URL_ENV
from ripple.scaling.backend import FunctionKey
from ripple.scaling.local import LaunchSpec

__all__ = ["LocalModeError", "code_directory", "launch_specs"]


class LocalModeError(ValueError):
    """A manifest that local mode cannot run."""


def code_directory(function: Function, manifest_file: Path, data_dir: Path) -> Path:
    """Where the function's code lives: ``source.path`` beside its manifest, or ``source.inline`` written out."""
    source = function.spec.source
    where = f"{manifest_file} (Function '{function.namespace}/{function.name}')"
    if source is not None and source.path:
        directory = (manifest_file.parent / source.path).resolve()
        if not directory.is_dir():
            raise LocalModeError(f"{where}: spec.source.path: {directory} is not a directory")
        return directory
    if source is not None and source.inline:
        directory = (data_dir / "functions" / function.namespace / function.name).resolve()
        module = function.spec.handler.partition(":")[0]
        target = directory.joinpath(*module.split(".")).with_suffix(".py")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(source.inline)
        return directory
    raise LocalModeError(f"{where}: spec.image: local mode runs source.path or source.inline; images need a cluster")


def launch_specs(manifests: Manifests, data_dir: Path, nats_url: str | None = None,
                 ripple_env: Mapping[str, str] | None = None) -> dict[FunctionKey, LaunchSpec]:
    """How each Function runs; ``nats_url`` reaches it as ``RIPPLE_NATS_URL`` (its idempotency ledger), and
    ``ripple_env`` (the delivery-token settings) is set after the Function's own ``env``."""
    ripple_env = dict(ripple_env or {}) | ({} if nats_url is None else {NATS_URL_ENV: nats_url})
    return {
        key: LaunchSpec(
            handler=fn.spec.handler,
            code_dir=code_directory(fn, manifests.origin(fn), data_dir),
            env={var.name: var.value for var in fn.spec.env} | ripple_env | {"RIPPLE_FUNCTION": f"{key[0]}/{key[1]}"},
            timeout=seconds(fn.spec.timeout),
        )
        for key, fn in manifests.functions.items()
    }
