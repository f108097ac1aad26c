"""JetStream as Ripple's durable event log: subject layout, streams, consumers, dead letters."""

from ripple.store.jetstream import EventStore, StoreUnavailable, dedup_id

__all__ = ["EventStore", "StoreUnavailable", "dedup_id"]
