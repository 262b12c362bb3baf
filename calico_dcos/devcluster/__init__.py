"""Embedded Mesos for development and tests: a master speaking the real v1 Scheduler API,
agents with host roots, process or synthetic executors, and fault injection."""

from calico_dcos.devcluster.agent import AgentInfo
from calico_dcos.devcluster.cluster import DevCluster

__all__ = ["AgentInfo", "DevCluster"]
