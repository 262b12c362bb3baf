"""Create and inspect the simulated host root of a devcluster agent (the directory that
stands for its `/`), laid out as "Simulated host root" in docs/CONTRACTS.md.

The stand-ins in `standins/` act on it; the devcluster and tests use these helpers to set
units and faults and to read what the stand-ins were asked to do.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from calico_dcos.devcluster.standins import STANDINS_DIR
from calico_dcos.devcluster.standins.hostsim import AGENT_UNITS, Host, write_atomic
from calico_dcos.devcluster.standins.realdocker import (
    DEFAULT_DOCKER_CLI,
    DEFAULT_DOCKERD,
    RealDocker,
    processes_mentioning,
)

__all__ = [
    "STANDINS_DIR",
    "Host",
    "create_host_root",
    "has_dcos_calico",
    "install_standins",
    "set_fault",
    "set_unit",
    "read_calls",
    "real_docker_available",
    "start_real_docker",
    "stop_real_docker",
]
STANDINS = ("systemctl", "docker", "calico-node", "journalctl", "start_runit", "wget")

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
    control_ca: Path | None = None,
    dcos_calico: bool = False,
    daemon_json: dict | None = None,
    start_limit: tuple[int, float] | None = None,
    docker_flags: list[str] | None = None,
    real_docker: bool = False,
) -> Host:
    """Populate a fresh host: Docker and the agent unit active, DC/OS CNI dirs, no faults.

    `dcos_calico` makes it look like DC/OS 2.x, which ships Calico as systemd units.
    `control_url` is the devcluster's base URL; without it `systemctl restart` of the agent
    unit just marks it active (unit tests). `docker_flags` are what the host's docker unit
    passes to dockerd (e.g. `["--cluster-store", "etcd://…"]`). `real_docker` makes the
    docker unit a real dockerd (see `standins/realdocker.py`), not yet started: call
    `start_real_docker`, and always `stop_real_docker` when done. `control_ca`: the CA bundle
    of an https:// `control_url` (strict mode).
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
        "control_ca": str(control_ca) if control_ca else None,
        "agent_unit": agent_unit,
    }
    if start_limit:
        info["start_limit_burst"], info["start_limit_interval"] = start_limit
    if docker_flags:
        info["docker_flags"] = list(docker_flags)
    if real_docker:
        info["real_docker"] = {
            "dockerd": DEFAULT_DOCKERD,
            "docker": DEFAULT_DOCKER_CLI,
            "run_dir": tempfile.mkdtemp(prefix="cdd-", dir="/tmp"),
        }
    host = Host(root)
    for directory in (".devcluster/faults", ".devcluster/containers", "etc/docker", *DCOS_CNI_DIRS):
        (root / directory).mkdir(parents=True, exist_ok=True)
    write_atomic(host.meta_dir / "host.json", json.dumps(info, indent=2))
    host.set_unit_state("docker", "inactive" if real_docker else "active")
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
    """Every stand-in call on this host, oldest first: {"t", "wall", "tool", "argv"} and,
    for a tool whose settings are environment variables (start_runit), "env"."""
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


def real_docker_available() -> str | None:
    """None when Debian's docker.io (dockerd and its CLI) is installed, else what is missing."""
    missing = [p for p in (DEFAULT_DOCKERD, DEFAULT_DOCKER_CLI) if not Path(p).is_file()]
    if missing:
        return f"{' and '.join(missing)} not installed (apt-get install docker.io)"
    return None


def start_real_docker(root: Path) -> None:
    """`systemctl start docker` on a `real_docker` host: its real dockerd, with its flags."""
    host = Host(root)
    problem = RealDocker(host).start()
    if problem:
        host.set_unit_state("docker", "failed", message=problem)
        raise RuntimeError(f"the real dockerd of {root} did not start: {problem}")
    host.set_unit_state("docker", "active", message="Started Docker Application Container Engine")


def stop_real_docker(root: Path) -> list[str]:
    """Stop the host's real dockerd and everything it started, unmount what it mounted and
    remove its run directory; returns what had to be killed or unmounted by force.

    Safe to call on any host and more than once: a test fixture's guaranteed teardown.
    """
    host = Host(root)
    if not RealDocker.configured(host):
        return []
    real = RealDocker(host)
    forced = []
    real.stop()
    for pid in processes_mentioning(str(real.run_dir)):
        forced.append(f"killed pid {pid}")
    real.kill_everything()
    for mount_point in mounts_below(Path(root), real.run_dir):
        subprocess.run(["umount", "-l", mount_point], check=False, capture_output=True)
        forced.append(f"unmounted {mount_point}")
    shutil.rmtree(real.run_dir, ignore_errors=True)
    return forced


def mounts_below(*directories: Path) -> list[str]:
    """Mount points inside `directories`, deepest first (/proc/self/mountinfo, proc(5))."""
    prefixes = [str(Path(d).resolve()) + "/" for d in directories]
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split(" ")
        point = decode_mount_path(fields[4])
        if any((point + "/").startswith(prefix) for prefix in prefixes):
            found.append(point)
    return sorted(found, key=len, reverse=True)


def decode_mount_path(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal (`\\040`)."""
    for code in ("040", "011", "012", "134"):
        field = field.replace("\\" + code, chr(int(code, 8)))
    return field
