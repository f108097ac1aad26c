"""Checks shared by the harnesses: a filter's constraints must hold for every event it matches.

The trigger index skips a trigger whose constraints an event does not meet, so a constraint that a matching
event breaks is a delivery lost without an error anywhere; the fuzzer looks for one as hard as for a crash.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ripple.filters.attributes import event_attribute_text
from ripple.filters.constraints import Constraints, OneOf


class FuzzFinding(AssertionError):
    """A harness's own check failed: not a refusal, a wrong answer."""


def check_constraints(constraints: Constraints, event: Mapping[str, Any], where: str) -> None:
    for name, constraint in constraints.items():
        text = event_attribute_text(event, name)
        if isinstance(constraint, OneOf):
            holds = text in constraint.values
        else:
            holds = text is not None and text.startswith(constraint.prefix)
        if not holds:
            raise FuzzFinding(f"{where}: matches the event but its constraint {name}: {constraint} does not hold "
                              f"({name} is {text!r})")
