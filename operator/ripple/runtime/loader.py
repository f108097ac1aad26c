"""Finding a handler from its ``module:function`` name."""

from __future__ import annotations

import importlib
import inspect
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["Handler", "HandlerError", "is_async", "load_handler"]

Handler = Callable[[Any], Any]


class HandlerError(Exception):
    """The handler named in a Function cannot be loaded."""


def load_handler(spec: str, path: Path | None = None) -> Handler:
    """Import ``module:function``, with ``path`` (the function's code directory) first on the import path."""
    module_name, _, function_name = spec.partition(":")
    if not module_name or not function_name:
        raise HandlerError(f"handler {spec!r} must look like module:function")
    if path is not None:
        sys.path.insert(0, str(Path(path).resolve()))
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise HandlerError(f"cannot import {module_name!r}: {type(exc).__name__}: {exc}") from exc
    handler: object = getattr(module, function_name, None)
    if handler is None or not callable(handler):
        raise HandlerError(f"module {module_name!r} has no callable {function_name!r}")
    return handler


def is_async(handler: Handler) -> bool:
    call = type(handler).__call__ if not inspect.isfunction(handler) else handler
    return inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(call)
