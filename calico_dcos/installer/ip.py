"""The agent's own address: the source address it uses to reach a given peer.

calico-node needs the host's IP (`IP`), and on a multi-homed agent the right one is the
address of the interface that routes to the cluster, as Calico's `can-reach=` method finds it.
"""

import logging
import socket

from .hostfs import InstallerError

LOG = logging.getLogger("calico-installer")
DEFAULT_TIMEOUT_SECONDS = 3.0


def parse_target(target: str) -> tuple:
    """`host:port` or `[v6addr]:port` -> (host, port)."""
    host, sep, port = target.strip().rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"{target!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


def source_address(targets: list, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> str:
    """The local address of a TCP connection to the first target that answers."""
    for host, port in targets:
        try:
            with socket.create_connection((host, port), timeout=timeout) as connection:
                address = connection.getsockname()[0]
        except OSError as exc:
            LOG.info("%s:%d is not reachable: %s", host, port, exc)
            continue
        LOG.info("%s:%d is reachable from %s", host, port, address)
        return address
    shown = ", ".join(f"{host}:{port}" for host, port in targets)
    raise InstallerError(f"none of {shown} is reachable")
