"""Pure builders: a manifest in, the desired Kubernetes objects and status out. No I/O, unit-tested."""

__all__: list[str] = []
