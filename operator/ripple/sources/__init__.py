"""EventSources: adapters that turn webhooks, schedules, NATS subjects and Kubernetes objects into CloudEvents."""

__all__: list[str] = []
