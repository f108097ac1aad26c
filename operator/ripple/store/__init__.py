"""JetStream as Ripple's durable event log: subject layout, streams, consumers, dead letters."""

from ripple.store.jetstream import EventStore, EventTooLarge, StoreUnavailable, dedup_id

__all__ = ["EventStore", "EventTooLarge", "StoreUnavailable", "dedup_id"]
