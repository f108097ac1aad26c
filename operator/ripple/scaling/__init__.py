"""Functions that follow demand: the scaling policy, the autoscaler, the activator and their backends."""

__all__: list[str] = []
