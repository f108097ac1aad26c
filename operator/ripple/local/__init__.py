"""Local mode (``ripple dev``): the whole data plane on one machine, from the same manifests."""

__all__: list[str] = []
