"""calico-dcos: a Mesos framework that installs Calico on every agent of a DC/OS cluster."""

__version__ = "0.1.0"
