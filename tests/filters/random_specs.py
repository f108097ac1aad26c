"""Seeded random trigger specs and events over small value sets, so that filters often match."""

from __future__ import annotations

import random
from typing import Any

TYPES = ["order.created", "order.paid", "order.shipped", "user.signup", "user.deleted"]
SOURCES = ["shop/eu", "shop/us", "crm"]
SUBJECTS = ["eu/orders/1", "eu/orders/22", "us/orders/3", "eu/users/4", "us/users/55", "eu"]
TENANTS = ["acme", "globex", ""]


def event(rng: random.Random) -> dict[str, Any]:
    ev: dict[str, Any] = {
        "specversion": "1.0",
        "id": str(rng.randrange(10**6)),
        "source": rng.choice(SOURCES),
        "type": rng.choice([*TYPES, "other.type"]),
        "priority": rng.randrange(10),
        "data": {"amount": rng.choice([0, 5, 50, 500, 12.5]), "tags": rng.sample(["a", "b", "c"], 2)},
    }
    if rng.random() < 0.8:
        ev["subject"] = rng.choice(SUBJECTS)
    if rng.random() < 0.7:
        ev["tenant"] = rng.choice(TENANTS)
    if rng.random() < 0.03:
        ev["subject"] = [rng.choice(SUBJECTS), "x"]  # not a valid CloudEvent, but patterns can match it
    return ev


def _value(rng: random.Random, name: str) -> str:
    return rng.choice(
        {"type": TYPES, "source": SOURCES, "subject": SUBJECTS, "tenant": ["acme", "globex"]}[name]
    )


def _attributes(rng: random.Random, how: str) -> dict[str, str]:
    names = rng.sample(["type", "source", "subject", "tenant"], rng.choice([1, 1, 2]))
    out = {}
    for name in names:
        text = _value(rng, name)
        cut = rng.randrange(1, len(text) + 1)
        out[name] = {"exact": text, "prefix": text[:cut], "suffix": text[-cut:]}[how]
    return out


def _cesql(rng: random.Random) -> str:
    t1, t2 = rng.sample(TYPES, 2)
    subject = rng.choice(SUBJECTS)
    return rng.choice(
        [
            f"type = '{t1}'",
            f"type IN ('{t1}', '{t2}') AND priority > {rng.randrange(10)}",
            f"subject LIKE '{subject[:3]}%'",
            f"type = '{t1}' OR tenant = 'acme'",
            f"type = '{t1}' OR type = '{t2}'",
            f"NOT (type = '{t1}')",
            f"EXISTS tenant AND source = '{rng.choice(SOURCES)}'",
            "INT(priority) % 2 = 0",
        ]
    )


def _pattern(rng: random.Random) -> dict[str, Any]:
    t1, t2 = rng.sample(TYPES, 2)
    return rng.choice(
        [
            {"type": [t1, t2]},
            {
                "type": [{"prefix": t1[:5]}],
                "data": {"amount": [{"numeric": [">", rng.choice([1, 10, 100])]}]},
            },
            {"subject": [{"prefix": "eu/"}, "us/orders/3"]},
            {"subject": [{"wildcard": "*/orders/*"}], "tenant": [{"anything-but": "acme"}]},
            {"$or": [{"type": [t1]}, {"type": [t2], "data": {"tags": ["a"]}}]},
            {"tenant": [{"exists": False}]},
        ]
    )


def expression(rng: random.Random, depth: int = 0) -> dict[str, Any]:
    kinds = ["exact", "exact", "prefix", "suffix", "cesql", "pattern"]
    if depth < 2:
        kinds += ["all", "any", "not"]
    kind = rng.choice(kinds)
    if kind in ("exact", "prefix", "suffix"):
        return {kind: _attributes(rng, kind)}
    if kind in ("all", "any"):
        return {kind: [expression(rng, depth + 1) for _ in range(rng.randrange(1, 4))]}
    if kind == "not":
        return {"not": expression(rng, depth + 1)}
    if kind == "cesql":
        return {"cesql": _cesql(rng)}
    return {"pattern": _pattern(rng)}


def spec(rng: random.Random) -> dict[str, Any]:
    if rng.random() < 0.15:
        return {"filter": {"attributes": {"type": rng.choice([*TYPES, ""]), "tenant": rng.choice(TENANTS)}}}
    return {"filters": [expression(rng) for _ in range(rng.randrange(0, 3))]}
