"""A filter that asks only for the event's type is decided by a trigger consumer's subjects: the worker skips it
for events read from the log, and only then."""

from __future__ import annotations

import pytest

from ripple.filters import compile_filter


@pytest.mark.parametrize(("attributes", "expressions", "decided"), [
    ({"type": "order.placed"}, None, True),
    (None, [{"exact": {"type": "order.placed"}}], True),
    ({"type": "order.placed", "source": "/shop"}, None, False),
    (None, [{"prefix": {"type": "order."}}], False),
    (None, [{"exact": {"type": "a"}}, {"cesql": "subject = 'x'"}], False),
    (None, [{"not": {"exact": {"type": "a"}}}], False),
    (None, None, False),
])
def test_decided_by_type(attributes, expressions, decided):
    compiled = compile_filter(attributes, expressions)
    assert compiled.decided_by_type() is decided
    if decided:
        assert compiled.pinned_types()
