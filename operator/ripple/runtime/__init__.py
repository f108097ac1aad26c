"""The function runtime: ``ripple function serve`` runs a Python handler behind HTTP."""

from ripple.runtime.event import FunctionEvent

__all__ = ["FunctionEvent"]
