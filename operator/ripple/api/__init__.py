"""Ripple's API: typed manifest models, ISO-8601 durations and manifest loading."""

__all__: list[str] = []
