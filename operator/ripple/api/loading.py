"""Reading manifests from YAML files the way ``kubectl apply -f`` would, with errors that point at the field."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ripple.api.errors import ManifestError
from ripple.api.models import (
    GROUP,
    KINDS,
    Broker,
    Destination,
    EventPolicy,
    EventSource,
    Function,
    Parallel,
    Resource,
    Sequence,
    Trigger,
    default_broker,
)
from ripple.api.secrets import LocalSecret, is_secret, parse_secret
from ripple.filters import FilterError

__all__ = [
    "ManifestError",
    "Manifests",
    "format_validation_error",
    "load_manifests",
    "manifest_files",
    "parse_resource",
]

MANIFEST_SUFFIXES = (".yaml", ".yml")


@dataclass
class Manifests:
    """Everything one set of manifest files declares, checked for consistency."""

    functions: dict[tuple[str, str], Function] = field(default_factory=dict)
    triggers: dict[tuple[str, str], Trigger] = field(default_factory=dict)
    brokers: dict[tuple[str, str], Broker] = field(default_factory=dict)
    event_sources: dict[tuple[str, str], EventSource] = field(default_factory=dict)
    sequences: dict[tuple[str, str], Sequence] = field(default_factory=dict)
    parallels: dict[tuple[str, str], Parallel] = field(default_factory=dict)
    policies: dict[tuple[str, str], EventPolicy] = field(default_factory=dict)
    """EventPolicies: who may send to which broker (a broker no policy names is open in local mode)."""
    secrets: dict[tuple[str, str], LocalSecret] = field(default_factory=dict)
    """``v1`` Secrets, which sources' ``secretRef`` fields name."""
    origins: dict[tuple[str, str, str], Path] = field(default_factory=dict)
    """(kind, namespace, name) → the file that declared it; relative paths in a spec start from there."""

    def origin(self, resource: Resource) -> Path:
        return self.origins[(resource.kind, *resource.key)]


def manifest_files(paths: Iterable[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.suffix in MANIFEST_SUFFIXES and p.is_file()))
        elif path.is_file():
            files.append(path)
        else:
            raise ManifestError(f"{path}: no such file or directory")
    return files


def _documents(path: Path) -> Iterator[tuple[int, Any]]:
    """The file's non-empty YAML documents, numbered from 1.

    PyYAML's constructors let some errors out as plain exceptions instead of :class:`yaml.YAMLError`: a value
    that looks like a date or a number but is none (``2024-02-30``, ``0x_``, 5000 digits) as
    :class:`ValueError`, a scalar with an explicit tag it does not fit (``!!bool x``, ``!!timestamp x``) as
    :class:`LookupError` or :class:`AttributeError`; and its composer recurses once per level of nesting. All
    are refused like any other invalid YAML.
    """
    try:
        text = path.read_text()
    except (UnicodeDecodeError, OSError) as exc:
        raise ManifestError(f"{path}: cannot read: {exc}") from None
    try:
        for index, doc in enumerate(yaml.safe_load_all(text), start=1):
            if doc is not None:
                yield index, doc
    except (yaml.YAMLError, ValueError) as exc:
        raise ManifestError(f"{path}: not valid YAML: {exc}") from None
    except (LookupError, AttributeError):
        raise ManifestError(
            f"{path}: not valid YAML: a value with an explicit tag (such as !!bool or !!timestamp) is not of that type"
        ) from None
    except RecursionError:
        raise ManifestError(f"{path}: not valid YAML: nested too deeply") from None


def format_validation_error(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"]) or "(document)"
        message = error["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {message}")
    return "; ".join(parts)


def parse_resource(doc: Any, where: str) -> Resource | None:
    """Validate one YAML document; ``None`` for documents that are not Ripple's (other API groups)."""
    if not isinstance(doc, dict):
        raise ManifestError(f"{where}: a manifest must be a mapping")
    api_version = str(doc.get("apiVersion", ""))
    if not api_version.startswith(GROUP + "/"):
        return None
    kind = doc.get("kind")
    model = KINDS.get(str(kind))
    if model is None:
        raise ManifestError(f"{where}: kind: unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
    name = (doc.get("metadata") or {}).get("name", "?") if isinstance(doc.get("metadata"), dict) else "?"
    try:
        return model.model_validate(doc)
    except ValidationError as exc:
        raise ManifestError(f"{where} ({kind} {name!r}): {format_validation_error(exc)}") from None


def load_manifests(paths: Iterable[Path]) -> Manifests:
    """Load every Ripple manifest under ``paths``; raise :class:`ManifestError` on the first problem."""
    found = Manifests()
    for path in manifest_files(paths):
        for index, doc in _documents(path):
            where = f"{path}: document {index}"
            if is_secret(doc):
                secret = parse_secret(doc, where)
                if secret.key in found.secrets:
                    raise ManifestError(f"{where}: Secret '{secret.namespace}/{secret.name}' is already declared")
                found.secrets[secret.key] = secret
                continue
            resource = parse_resource(doc, where)
            if resource is None:
                continue
            ident = (resource.kind, *resource.key)
            if ident in found.origins:
                raise ManifestError(
                    f"{where}: {resource.kind} '{resource.namespace}/{resource.name}' is already declared in "
                    f"{found.origins[ident]}"
                )
            found.origins[ident] = path
            tables: dict[str, dict[tuple[str, str], Any]] = {
                "Function": found.functions,
                "Trigger": found.triggers,
                "Broker": found.brokers,
                "EventSource": found.event_sources,
                "Sequence": found.sequences,
                "Parallel": found.parallels,
                "EventPolicy": found.policies,
            }
            tables[resource.kind][resource.key] = resource
    _add_default_brokers(found)
    _check_references(found)
    return found


def _add_default_brokers(found: Manifests) -> None:
    tables = (found.functions, found.triggers, found.brokers, found.event_sources, found.sequences, found.parallels)
    namespaces = {key[0] for table in tables for key in table}
    for namespace in namespaces or {"default"}:
        found.brokers.setdefault((namespace, "default"), default_broker(namespace))


def _check_references(found: Manifests) -> None:
    for source in found.event_sources.values():
        _check_secret_refs(found, source)
        where = f"{found.origin(source)} (EventSource '{source.namespace}/{source.name}')"
        sink = source.spec.sink
        if sink.ref is not None and sink.ref.kind == "Broker":
            namespace, name = sink.ref.key(source.namespace)
            if (namespace, name) not in found.brokers:
                raise ManifestError(f"{where}: spec.sink.ref: no Broker '{name}' in namespace {namespace}")
        else:
            _check_destination(found, source, sink, "spec.sink", where)
        if source.spec.delivery.dead_letter_sink is not None:
            _check_destination(found, source, source.spec.delivery.dead_letter_sink, "spec.delivery.deadLetterSink",
                               where)
    for sequence in found.sequences.values():
        where = f"{found.origin(sequence)} (Sequence '{sequence.namespace}/{sequence.name}')"
        _check_broker(found, sequence, sequence.spec.broker, where)
        for index, step in enumerate(sequence.spec.steps):
            field_name = f"spec.steps[{index}]"
            _check_destination(found, sequence, step, field_name, where)
            extras = (("onError", step.on_error), ("delivery.deadLetterSink", step.delivery.dead_letter_sink))
            for extra, dest in extras:
                if dest is not None:
                    _check_destination(found, sequence, dest, f"{field_name}.{extra}", where)
        if sequence.spec.reply is not None:
            _check_destination(found, sequence, sequence.spec.reply, "spec.reply", where)
    for parallel in found.parallels.values():
        where = f"{found.origin(parallel)} (Parallel '{parallel.namespace}/{parallel.name}')"
        _check_broker(found, parallel, parallel.spec.broker, where)
        for index, branch in enumerate(parallel.spec.branches):
            field_name = f"spec.branches[{index}]"
            for extra, target in (("subscriber", branch.subscriber), ("reply", branch.reply),
                                  ("delivery.deadLetterSink", branch.delivery.dead_letter_sink)):
                if target is not None:
                    _check_destination(found, parallel, target, f"{field_name}.{extra}", where)
            try:
                _ = branch.compiled_filter
            except FilterError as exc:
                raise ManifestError(f"{where}: {field_name}.{exc}") from None
        if parallel.spec.reply is not None:
            _check_destination(found, parallel, parallel.spec.reply, "spec.reply", where)
    for trigger in found.triggers.values():
        where = f"{found.origin(trigger)} (Trigger '{trigger.namespace}/{trigger.name}')"
        if (trigger.namespace, trigger.spec.broker) not in found.brokers:
            broker = trigger.spec.broker
            raise ManifestError(f"{where}: spec.broker: no Broker '{broker}' in namespace {trigger.namespace}")
        _check_destination(found, trigger, trigger.spec.subscriber, "spec.subscriber", where)
        if trigger.spec.delivery.dead_letter_sink is not None:
            dead = trigger.spec.delivery.dead_letter_sink
            _check_destination(found, trigger, dead, "spec.delivery.deadLetterSink", where)
        try:
            _ = trigger.spec.compiled_filter
        except FilterError as exc:
            raise ManifestError(f"{where}: spec.{exc}") from None


def _check_secret_refs(found: Manifests, source: EventSource) -> None:
    """Every Secret a source names must be declared, with the key it names (in its own namespace)."""
    where = f"{found.origin(source)} (EventSource '{source.namespace}/{source.name}')"
    for field_name, ref in source.spec.secret_refs():
        secret = found.secrets.get((source.namespace, ref.name))
        if secret is None:
            raise ManifestError(f"{where}: {field_name}: no Secret '{ref.name}' in namespace {source.namespace}")
        if ref.key not in secret.data:
            raise ManifestError(f"{where}: {field_name}: Secret '{ref.name}' has no key '{ref.key}'")


def _check_broker(found: Manifests, referrer: Resource, broker: str, where: str) -> None:
    if (referrer.namespace, broker) not in found.brokers:
        raise ManifestError(f"{where}: spec.broker: no Broker '{broker}' in namespace {referrer.namespace}")


def _check_destination(found: Manifests, referrer: Resource, dest: Destination, field_name: str, where: str) -> None:
    if dest.ref is None:
        return
    namespace, _ = key = dest.ref.key(referrer.namespace)
    tables: dict[str, Mapping[tuple[str, str], Resource]] = {
        "Function": found.functions, "Sequence": found.sequences, "Parallel": found.parallels}
    table = tables[dest.ref.kind]
    if key not in table:
        raise ManifestError(f"{where}: {field_name}.ref: no {dest.ref.kind} '{dest.ref.name}' in namespace "
                            f"{namespace}")
