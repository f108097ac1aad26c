"""Kubernetes vocabulary and plumbing shared by the data plane in a cluster, the scaling backend and the operator:
where Ripple's kinds live, names and labels, conditions, the API client and typed watches."""

__all__: list[str] = []
