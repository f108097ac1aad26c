"""The control plane: a Kopf operator, one reconciler per kind, over pure builders in ``resources``."""

__all__: list[str] = []
