"""Create and inspect the simulated host root of a devcluster agent (the directory that
stands for its `/`), laid out as "Simulated host root" in docs/CONTRACTS.md.

The stand-ins in `standins/` act on it; the devcluster and tests use these helpers to set
units and faults and to read what the stand-ins were asked to do.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

from calico_dcos.devcluster.standins import STANDINS_DIR
from calico_dcos.devcluster.standins.hostsim import AGENT_UNITS, Host, write_atomic

__all__ = [
    "STANDINS_DIR",
    "Host",
    "create_host_root",
    "has_dcos_calico",
    "install_standins",
    "set_fault",
    "set_unit",
    "read_calls",
]
STANDINS = ("systemctl", "docker", "calico-node")

DCOS_CNI_DIRS = ("opt/mesosphere/active/cni", "opt/mesosphere/etc/dcos/network/cni")
DCOS_CALICO_UNITS = ("dcos-calico-felix", "dcos-calico-bird", "dcos-calico-confd")
FELIX_UNIT_FILE = """[Unit]
Description=Calico Felix: DC/OS network policy agent (simulated DC/OS 2.x host)

[Service]
ExecStart=/opt/mesosphere/bin/calico-felix
"""


def create_host_root(
    root: Path,
    *,
    agent_id: str,
    hostname: str,
    ip: str,
    public: bool = False,
    docker_version: str = "19.03.15",
    control_url: str | None = None,
    dcos_calico: bool = False,
    daemon_json: dict | None = None,
    start_limit: tuple[int, float] | None = None,
) -> Host:
    """Populate a fresh host: Docker and the agent unit active, DC/OS CNI dirs, no faults.

    `dcos_calico` makes it look like DC/OS 2.x, which ships Calico as systemd units.
    `control_url` is the devcluster's base URL; without it `systemctl restart` of the agent
    unit just marks it active (unit tests).
    """
    root = Path(root)
    agent_unit = AGENT_UNITS[bool(public)]
    info = {
        "agent_id": agent_id,
        "hostname": hostname,
        "ip": ip,
        "public": bool(public),
        "docker_version": docker_version,
        "control_url": control_url,
        "agent_unit": agent_unit,
    }
    if start_limit:
        info["start_limit_burst"], info["start_limit_interval"] = start_limit
    host = Host(root)
    for directory in (".devcluster/faults", ".devcluster/containers", "etc/docker", *DCOS_CNI_DIRS):
        (root / directory).mkdir(parents=True, exist_ok=True)
    write_atomic(host.meta_dir / "host.json", json.dumps(info, indent=2))
    host.set_unit_state("docker", "active")
    host.set_unit_state(agent_unit, "active")
    if daemon_json is not None:
        write_atomic(host.daemon_json(), json.dumps(daemon_json, indent=2))
    if dcos_calico:
        install_dcos_calico(host)
    return host


def install_dcos_calico(host: Host) -> None:
    """What DC/OS 2.x leaves on a node: its own Calico units, running."""
    for unit in DCOS_CALICO_UNITS:
        host.set_unit_state(unit, "active")
    write_atomic(host.root / "etc/systemd/system/dcos-calico-felix.service", FELIX_UNIT_FILE)


def has_dcos_calico(root: Path) -> bool:
    """Whether the host runs DC/OS 2.x's own Calico (see `install_dcos_calico`)."""
    host = Host(root)
    return all(host.unit_state(unit) == "active" for unit in DCOS_CALICO_UNITS)


def set_fault(root: Path, name: str, on: bool = True) -> None:
    """Turn a fault toggle (`docker-fails-to-start`, `calico-node-unready`, …) on or off."""
    path = Host(root).meta_dir / "faults" / name
    if on:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    else:
        path.unlink(missing_ok=True)


def set_unit(root: Path, unit: str, state: str) -> None:
    """Set a unit's state, e.g. the agent unit `active` once the agent re-registered."""
    Host(root).set_unit_state(unit, state)


def read_calls(root: Path) -> list[dict]:
    """Every stand-in call on this host, oldest first: {"t", "wall", "tool", "argv"}."""
    return Host(root).calls()


def install_standins(
    bin_dir: Path, standins_dir: Path = STANDINS_DIR, python: str = sys.executable
) -> Path:
    """Write `bin_dir/<stand-in>` wrappers that run each stand-in with `python -I -S`.

    Same behaviour as putting `standins_dir` on PATH, four times faster per call: `env
    python3` may be a pyenv shim (a bash script) and site-packages may be slow to import,
    and the installer calls the stand-ins many times per task. Returns `bin_dir`.
    """
    bin_dir = Path(bin_dir)
    bin_dir.mkdir(parents=True, exist_ok=True)
    for name in STANDINS:
        script = shlex.quote(str(Path(standins_dir) / name))
        wrapper = f'#!/bin/sh\nexec {shlex.quote(python)} -I -S {script} "$@"\n'
        write_atomic(bin_dir / name, wrapper)
        (bin_dir / name).chmod(0o755)
    return bin_dir
