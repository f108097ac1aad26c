"""CustomResourceDefinitions generated from the typed models, so the API server and local mode check the same rules.

Pydantic's JSON Schema is turned into a Kubernetes *structural* schema: references inlined, optional fields
unwrapped from ``anyOf [X, null]``, single literals as enums, free-form objects marked
``x-kubernetes-preserve-unknown-fields``, titles and examples dropped. Descriptions come from the models' field
docstrings, so ``kubectl explain`` reads like the Python API; rules that span fields travel as CEL
``x-kubernetes-validations``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

import yaml
from pydantic import BaseModel

from ripple.api.models import (
    GROUP,
    VERSION,
    Broker,
    EventPolicy,
    EventSource,
    Function,
    Parallel,
    Resource,
    Sequence,
    Trigger,
)

__all__ = ["KINDS", "KindInfo", "add_factory_defaults", "crd", "render", "spec_schema", "structural", "write_crds"]

READY = '.status.conditions[?(@.type=="Ready")]'


@dataclass(frozen=True)
class KindInfo:
    model: type[Resource]
    plural: str
    short_names: tuple[str, ...]
    columns: tuple[tuple[str, str, str], ...]
    """(name, type, JSONPath) of the ``kubectl get`` columns between Ready/Reason and Age."""
    status: dict[str, Any]


def _conditions() -> dict[str, Any]:
    return {
        "type": "array",
        "description": "Observations of the object's state; Ready summarises them.",
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["type"],
        "items": {
            "type": "object",
            "required": ["type", "status"],
            "properties": {
                "type": {"type": "string", "description": "Condition type, e.g. Ready."},
                "status": {"type": "string", "enum": ["True", "False", "Unknown"], "description": "Status."},
                "reason": {"type": "string", "description": "One-word CamelCase reason for the status."},
                "message": {"type": "string", "description": "Human-readable detail."},
                "lastTransitionTime": {"type": "string", "format": "date-time",
                                       "description": "When the status last changed."},
                "observedGeneration": {"type": "integer", "description": "Generation the condition describes."},
            },
        },
    }


def _status(**extra: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "description": "Observed state, written by the Ripple operator.",
        "properties": {
            "observedGeneration": {"type": "integer", "description": "Last generation the operator acted on."},
            "conditions": _conditions(),
            **extra,
        },
    }


def _url(description: str) -> dict[str, Any]:
    return {"type": "string", "description": description}


ADDRESS = {
    "type": "object",
    "description": "Where to send events (the Addressable contract).",
    "properties": {"url": _url("URL that accepts CloudEvents.")},
}


def _hops(what: str) -> dict[str, Any]:
    return {
        "type": "array",
        "description": f"Each {what} and the hop that runs it (its JetStream consumer is trigger-<hop>).",
        "items": {"type": "object", "properties": {
            "index": {"type": "integer", "description": f"0-based index of the {what}."},
            "name": {"type": "string", "description": f"The {what}'s name, else its index."},
            "hop": {"type": "string", "description": "The hop's name in the broker's stream."},
        }},
    }

KINDS: tuple[KindInfo, ...] = (
    KindInfo(Broker, "brokers", ("brk",),
             (("URL", "string", ".status.address.url"), ("Replicas", "integer", ".status.stream.currentReplicas")),
             _status(address=ADDRESS, stream={
                 "type": "object", "description": "The broker's stream as JetStream reports it.",
                 "properties": {
                     "replicas": {"type": "integer", "description": "Replicas asked for (spec.replicas)."},
                     "currentReplicas": {"type": "integer", "description": "Replicas in step with the leader."},
                     "leader": {"type": "string", "description": "The server leading the stream, when clustered."},
                 }})),
    KindInfo(
        Function, "functions", ("fn",), (("URL", "string", ".status.address.url"),),
        _status(address=ADDRESS, replicas={"type": "integer", "description": "Replicas asked for."},
                readyReplicas={"type": "integer", "description": "Replicas ready to receive events."}),
    ),
    KindInfo(
        Trigger, "triggers", ("trig",),
        (("Broker", "string", ".spec.broker"), ("Subscriber", "string", ".status.subscriberUri")),
        _status(subscriberUri=_url("Resolved URL of the subscriber."),
                deadLetterSinkUri=_url("Resolved URL of the dead-letter sink, if any.")),
    ),
    KindInfo(
        EventSource, "eventsources", ("evsrc",),
        (("Kind", "string", ".status.sourceKind"), ("Sink", "string", ".status.sinkUri"),
         ("URL", "string", ".status.address.url")),
        _status(sinkUri=_url("Resolved URL of the sink."), address=ADDRESS,
                sourceKind={"type": "string", "description": "Which kind of source this is (webhook, ping, ...)."},
                verification={"type": "string", "description": "webhook: the signature scheme requests are checked "
                                                               "with, or 'none' when the endpoint is open."},
                progress={"type": "object", "x-kubernetes-preserve-unknown-fields": True,
                          "description": "Reported by the adapter: a PostgreSQL source's slot, confirmed LSN and lag "
                                         "in bytes; a storage source's objects and last checkpoint."}),
    ),
    KindInfo(
        Sequence, "sequences", ("seq",),
        (("Broker", "string", ".spec.broker"), ("URL", "string", ".status.address.url")),
        _status(address=ADDRESS, steps=_hops("step")),
    ),
    KindInfo(
        Parallel, "parallels", ("par",),
        (("Broker", "string", ".spec.broker"), ("URL", "string", ".status.address.url")),
        _status(address=ADDRESS, branches=_hops("branch")),
    ),
    KindInfo(EventPolicy, "eventpolicies", ("evpol",), (), _status(tokens={
        "type": "array", "description": "The SHA-256 of each static token the policy names, read from its Secret "
                                        "by the operator (the ingress reads no Secret).",
        "items": {"type": "object", "properties": {
            "index": {"type": "integer", "description": "The sender's index in spec.from."},
            "sha256": {"type": "string", "description": "The token's SHA-256, in hex."},
        }},
    })),
)


def structural(schema: dict[str, Any], definitions: dict[str, Any]) -> dict[str, Any]:
    """One node of pydantic's JSON Schema, made structural (recursively)."""
    if "$ref" in schema:
        target = definitions[schema["$ref"].rsplit("/", 1)[-1]]
        merged = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
        return structural(merged, definitions)
    if "anyOf" in schema:
        options = [o for o in schema["anyOf"] if o.get("type") != "null"]
        rest = {k: v for k, v in schema.items() if k != "anyOf"}
        if len(options) == 1:
            return structural({**options[0], **rest}, definitions)
        raise ValueError(f"cannot express anyOf {schema['anyOf']} structurally")
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in ("title", "examples", "additionalProperties", "$defs"):
            continue
        if key == "const":
            out["enum"] = [value]
        elif key == "properties":
            out["properties"] = {name: structural(sub, definitions) for name, sub in value.items()}
        elif key == "items":
            out["items"] = structural(value, definitions)
        elif key == "default" and value is None:
            continue
        elif key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
            # JSON Schema's exclusive bound is a number; OpenAPI 3.0's, which the API server reads, is the bound
            # and a flag (a number there makes it refuse the whole CRD).
            out["minimum" if key == "exclusiveMinimum" else "maximum"] = value
            out[key] = True
        else:
            out[key] = value
    additional = schema.get("additionalProperties")
    if schema.get("type") == "object" and "properties" not in schema:
        if isinstance(additional, dict) and additional:
            out["additionalProperties"] = structural(additional, definitions)
        else:
            out["x-kubernetes-preserve-unknown-fields"] = True
    if "const" in schema and "type" not in out:
        out["type"] = "string"
    return out


def spec_schema(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema(by_alias=True, mode="validation")
    node = structural(schema, schema.get("$defs", {}))
    add_factory_defaults(model, node)
    return node


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in get_args(annotation) for m in _models_in(arg)]


def add_factory_defaults(model: type[BaseModel], node: dict[str, Any]) -> None:
    """Give fields built by a ``default_factory`` a schema default, so the API server fills what local mode fills
    (the whole default object, as CEL rules check defaults as written)."""
    properties = node.get("properties") or {}
    for name, field in model.model_fields.items():
        prop = properties.get(field.alias or name)
        if prop is None:
            continue
        if field.default_factory is not None and "default" not in prop:
            value = field.default_factory()  # type: ignore[call-arg]
            if isinstance(value, BaseModel):
                prop["default"] = value.model_dump(by_alias=True, exclude_none=True, mode="json")
            else:
                prop["default"] = value if isinstance(value, dict) else list(value)
        for inner in _models_in(field.annotation):
            target = prop.get("items") if prop.get("type") == "array" else prop
            if isinstance(target, dict):
                add_factory_defaults(inner, target)


def crd(info: KindInfo) -> dict[str, Any]:
    kind = info.model.model_fields["kind"].annotation.__args__[0]  # type: ignore[union-attr]
    spec_model = info.model.model_fields["spec"].annotation
    assert isinstance(spec_model, type) and issubclass(spec_model, BaseModel)
    spec = spec_schema(spec_model)
    spec["description"] = spec.get("description") or f"Desired state of the {kind}."
    root = {
        "type": "object",
        "description": (info.model.__doc__ or kind).strip().splitlines()[0],
        "required": ["spec"] if info.model.model_fields["spec"].is_required() else [],
        "properties": {
            "apiVersion": {"type": "string", "description": "ripple.dev/v1alpha1"},
            "kind": {"type": "string", "description": kind},
            "metadata": {"type": "object"},
            "spec": spec,
            "status": info.status,
        },
    }
    if not root["required"]:
        del root["required"]
        spec_default = info.model.model_fields["spec"].get_default(call_default_factory=True)
        spec["default"] = spec_default.model_dump(by_alias=True, exclude_none=True, mode="json")
    columns = [
        {"name": "Ready", "type": "string", "jsonPath": f"{READY}.status"},
        {"name": "Reason", "type": "string", "jsonPath": f"{READY}.reason"},
        *({"name": name, "type": kind_, "jsonPath": path} for name, kind_, path in info.columns),
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{info.plural}.{GROUP}", "labels": {"app.kubernetes.io/part-of": "ripple"}},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": info.plural,
                "singular": kind.lower(),
                "shortNames": list(info.short_names),
                "categories": ["ripple", "all"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": root},
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": columns,
                }
            ],
        },
    }


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True  # no &anchors: kubectl users read these files


def render(info: KindInfo) -> str:
    header = "# Generated by `ripple crds` from operator/ripple/api/models.py: edit the models, not this file.\n"
    return header + yaml.dump(crd(info), Dumper=_Dumper, sort_keys=False, width=120)


def write_crds(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for info in KINDS:
        path = directory / f"{GROUP}_{info.plural}.yaml"
        path.write_text(render(info))
        written.append(path)
    return written
