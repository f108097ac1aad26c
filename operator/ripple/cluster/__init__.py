"""The data plane in a cluster: brokers, triggers and functions learned from the API server."""

from ripple.cluster.dataplane import ClusterAutoscaler, ClusterBrokers, ClusterDispatcher, ClusterFlows, run_supervised

__all__ = ["ClusterAutoscaler", "ClusterBrokers", "ClusterDispatcher", "ClusterFlows", "run_supervised"]
