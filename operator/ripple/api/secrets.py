"""Secrets in local mode: ``apiVersion: v1, kind: Secret`` manifests read from the same paths as the others.

``stringData`` values are taken as UTF-8 text and ``data`` values as base64, as Kubernetes does (``stringData``
wins for a key in both). A value never appears in a message, a repr or a log line: errors name the Secret and
the key only.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ripple.api.errors import ManifestError

__all__ = ["LocalSecret", "is_secret", "parse_secret"]

_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?\Z")
_KEY = re.compile(r"[-._a-zA-Z0-9]{1,253}\Z")


@dataclass(frozen=True)
class LocalSecret:
    namespace: str
    name: str
    data: Mapping[str, bytes] = field(repr=False)
    """Key → value; kept out of the repr, so that printing the manifests never shows a secret."""

    @property
    def key(self) -> tuple[str, str]:
        return self.namespace, self.name


def is_secret(doc: Any) -> bool:
    return isinstance(doc, dict) and doc.get("apiVersion") == "v1" and doc.get("kind") == "Secret"


def parse_secret(doc: dict[str, Any], where: str) -> LocalSecret:
    """A Secret manifest; :class:`ManifestError` naming the field (never the value) when it cannot be used."""
    metadata = doc.get("metadata")
    if not isinstance(metadata, dict) or not isinstance(metadata.get("name"), str):
        raise ManifestError(f"{where} (Secret): metadata.name: required")
    name, namespace = metadata["name"], metadata.get("namespace", "default")
    if not _NAME.match(name) or not isinstance(namespace, str) or not _NAME.match(namespace):
        raise ManifestError(f"{where} (Secret {name!r}): metadata: invalid name or namespace")
    values: dict[str, bytes] = {}
    for section in ("data", "stringData"):
        entries = doc.get(section) or {}
        if not isinstance(entries, dict):
            raise ManifestError(f"{where} (Secret {name!r}): {section}: must be a mapping of keys to strings")
        for key, value in entries.items():
            if not isinstance(key, str) or not _KEY.match(key):
                raise ManifestError(f"{where} (Secret {name!r}): {section}: invalid key {str(key)[:64]!r}")
            if not isinstance(value, str):
                raise ManifestError(f"{where} (Secret {name!r}): {section}.{key}: must be a string")
            if section == "stringData":
                values[key] = value.encode()
                continue
            try:
                values[key] = base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                raise ManifestError(f"{where} (Secret {name!r}): data.{key}: not valid base64") from None
    return LocalSecret(namespace, name, values)
