"""Sequences and Parallels as hops: each runs as a trigger on its own subject, with its own durable consumer,
retries and dead letters, and says where its replies and its failures go.

A Sequence's step *i* hands its reply to step *i+1* (the last to the Sequence's reply, else the broker); a step
that answers 2xx without an event ends the chain. A step that fails past its policy goes to its ``onError`` hop
when it has one (the compensation's reply ends the Sequence as the last step's would), else it is dead-lettered
carrying ``ripplesequence`` and ``ripplestep``. A Parallel stores each event once on its entry hop; its router
copies it to every branch whose filter it passes; a branch's reply goes to its reply hop (its own ``reply`` or
the Parallel's), else the broker. A reply hop delivers to its destination and drops what that answers.

The builders are pure: a Sequence or Parallel in, the hops that run it out.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from ripple.api.models import (
    API_VERSION,
    DeliverySpec,
    Destination,
    ObjectMeta,
    Parallel,
    Sequence,
    Trigger,
    TriggerSpec,
)
from ripple.dispatch.reply import InvalidReply, StampedReply, stamp_reply
from ripple.events.extensions import BRANCH, FANOUT, HOPS, PARALLEL, SEQUENCE, STEP, check_room
from ripple.events.model import AttributeValue, CloudEvent, EventError
from ripple.filters import Filter
from ripple.store import subjects
from ripple.store.flows import FlowKind, handed_off

__all__ = ["Hop", "HopRole", "flow_hops", "hop_trigger", "parallel_filters", "parallel_hops", "sequence_hops"]

HopRole = Literal["step", "error", "reply", "branch"]


def hop_trigger(namespace: str, broker: str, hop: str, subscriber: Destination, delivery: DeliverySpec) -> Trigger:
    """The trigger a hop runs as. Its name is the hop's (``_``-prefixed, which no Kubernetes object's can be, so
    it is built without the name check); it has no filter: what reaches its subject is meant for it."""
    metadata = ObjectMeta.model_construct(name=hop, namespace=namespace, labels={}, annotations={})
    spec = TriggerSpec(broker=broker, subscriber=subscriber, delivery=delivery)
    return Trigger.model_construct(api_version=API_VERSION, kind="Trigger", metadata=metadata, spec=spec)


@dataclass(frozen=True)
class Hop:
    """One hop of a Sequence or Parallel, and where what it does next goes."""

    trigger: Trigger
    flow_kind: FlowKind
    flow: str
    """The Sequence's or Parallel's name (its namespace is the trigger's)."""
    role: HopRole
    index: int | None
    """The step's or branch's 0-based index (``None`` for a Sequence's reply hop)."""
    label: str
    """The step's or branch's name, else its index; ``reply`` for a Sequence's reply hop."""
    next_hop: str | None = None
    """The hop whose input this hop's replies become; without one they go to the broker, or nowhere."""
    to_broker: bool = False
    """Replies go back to the broker (when there is no next hop)."""
    position: str = ""
    """Where this hop's replies stand in the flow (``2``, ``reply``, ``0.error.out``), for their stable ids."""
    error_hop: str | None = None
    """The hop that takes an event this one failed on, instead of the dead letter."""
    next_label: str = ""
    """Where replies go, in words (``step inventory``, ``reply``, ``broker``), for records."""

    @property
    def name(self) -> str:
        return self.trigger.name

    @property
    def namespace(self) -> str:
        return self.trigger.namespace

    @property
    def broker(self) -> str:
        return self.trigger.spec.broker

    @property
    def flow_key(self) -> str:
        return f"{self.namespace}/{self.flow}"

    def stamp(self, parent: CloudEvent, reply: CloudEvent) -> StampedReply | None:
        """The reply as where it goes stores it; ``None`` when nothing takes it (a reply hop's answer).

        Raise :class:`InvalidReply` when the reply leaves no room for the extensions Ripple adds."""
        if self.next_hop is None and not self.to_broker:
            return None
        try:
            check_room(reply)
        except EventError as exc:
            raise InvalidReply(str(exc)) from None
        attributes: dict[str, AttributeValue | None] = {SEQUENCE: None, STEP: None, PARALLEL: None, BRANCH: None}
        if self.next_hop is not None and self.flow_kind == "Sequence":
            attributes[SEQUENCE] = self.flow_key
            attributes[STEP] = int(self.position) if self.position.isdigit() else None
        elif self.next_hop is not None:
            attributes.update({PARALLEL: self.flow_key, BRANCH: self.index})
        else:
            # Leaving the flow costs one hop of the loop budget, as any trigger's reply does.
            budgeted = stamp_reply(parent, reply, siblings=1)
            if budgeted.event is None:
                return budgeted
            attributes.update({SEQUENCE: self.flow_key if self.flow_kind == "Sequence" else None,
                               PARALLEL: self.flow_key if self.flow_kind == "Parallel" else None,
                               HOPS: budgeted.event.get(HOPS), FANOUT: budgeted.event.get(FANOUT)})
        return StampedReply(handed_off(parent, reply, flow=self.flow, position=self.position,
                                       flow_attributes=attributes))


def sequence_hops(sequence: Sequence) -> list[Hop]:
    """A hop per step, per step's ``onError`` and for the Sequence's ``reply``."""
    namespace, name, spec = sequence.namespace, sequence.name, sequence.spec
    end = subjects.sequence_reply(name) if spec.reply is not None else None
    last = len(spec.steps) - 1
    hops = []
    for index, step in enumerate(spec.steps):
        label = step.name or str(index)
        following = subjects.sequence_step(name, index + 1) if index < last else end
        error_hop = subjects.sequence_error(name, index) if step.on_error is not None else None
        subscriber = Destination(ref=step.ref, uri=step.uri)
        position = str(index + 1) if index < last else ("reply" if end is not None else "out")
        following_label = (f"step {spec.steps[index + 1].name or index + 1}" if index < last
                           else "reply" if end is not None else "broker")
        hops.append(Hop(hop_trigger(namespace, spec.broker, subjects.sequence_step(name, index), subscriber,
                                    step.delivery), "Sequence", name, "step", index, label,
                        next_hop=following, to_broker=following is None, position=position, error_hop=error_hop,
                        next_label=following_label))
        if step.on_error is not None:
            hops.append(Hop(hop_trigger(namespace, spec.broker, subjects.sequence_error(name, index), step.on_error,
                                        step.delivery), "Sequence", name, "error", index, label,
                            next_hop=end, to_broker=end is None,
                            position=f"{index}.error.{'reply' if end is not None else 'out'}",
                            next_label="reply" if end is not None else "broker"))
    if spec.reply is not None:
        hops.append(Hop(hop_trigger(namespace, spec.broker, subjects.sequence_reply(name), spec.reply, DeliverySpec()),
                        "Sequence", name, "reply", None, "reply"))
    return hops


def parallel_hops(parallel: Parallel) -> list[Hop]:
    """A hop per branch and per branch whose replies go to a destination."""
    namespace, name, spec = parallel.namespace, parallel.name, parallel.spec
    hops = []
    for index, branch in enumerate(spec.branches):
        label = branch.name or str(index)
        reply = branch.reply or spec.reply
        reply_hop = subjects.parallel_reply(name, index) if reply is not None else None
        hops.append(Hop(hop_trigger(namespace, spec.broker, subjects.parallel_branch(name, index), branch.subscriber,
                                    branch.delivery), "Parallel", name, "branch", index, label,
                        next_hop=reply_hop, to_broker=reply_hop is None,
                        position=f"{index}.{'reply' if reply_hop is not None else 'out'}",
                        next_label="reply" if reply_hop is not None else "broker"))
        if reply is not None:
            hops.append(Hop(hop_trigger(namespace, spec.broker, subjects.parallel_reply(name, index), reply,
                                        DeliverySpec()), "Parallel", name, "reply", index, label))
    return hops


def parallel_filters(parallel: Parallel) -> dict[str, Filter]:
    """Each branch's hop name → its filter, for the Parallel's router."""
    return {subjects.parallel_branch(parallel.name, i): b.compiled_filter for i, b in enumerate(parallel.spec.branches)}


def flow_hops(flows: Iterable[Sequence | Parallel]) -> list[Hop]:
    return [hop for flow in flows for hop in (sequence_hops(flow) if isinstance(flow, Sequence)
                                              else parallel_hops(flow))]
