"""The error of a manifest that cannot be used, apart from the models so that catching it imports no pydantic
(the command line catches it for every command, a Function's cold start included)."""

from __future__ import annotations

__all__ = ["ManifestError"]


class ManifestError(ValueError):
    """A manifest that cannot be used; the message names the file, the document and the field."""
