"""Where each of Ripple's kinds lives in the Kubernetes API."""

from __future__ import annotations

import pytest

from ripple.api.crds import KINDS
from ripple.api.models import (
    API_VERSION,
    Broker,
    EventPolicy,
    EventSource,
    Function,
    Parallel,
    Resource,
    Sequence,
    Trigger,
)
from ripple.kube.resources import GROUP, VERSION, custom_object, plural


@pytest.mark.parametrize(
    ("model", "expected"),
    [(Broker, "brokers"), (Function, "functions"), (Trigger, "triggers"), (EventSource, "eventsources"),
     (Sequence, "sequences"), (Parallel, "parallels")],
)
def test_plural_and_custom_object_of_each_kind(model, expected):
    assert plural(model) == expected
    assert custom_object(model) == ("ripple.dev", "v1alpha1", expected)
    assert f"{custom_object(model)[0]}/{custom_object(model)[1]}" == API_VERSION


def test_every_kind_has_a_place():
    assert {info.model for info in KINDS} == {Broker, Function, Trigger, EventSource, Sequence, Parallel, EventPolicy}
    assert len({plural(info.model) for info in KINDS}) == len(KINDS)
    assert (GROUP, VERSION) == ("ripple.dev", "v1alpha1")


def test_a_model_that_is_no_kind_has_none():
    with pytest.raises(KeyError):
        plural(Resource)
