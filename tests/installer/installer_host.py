"""A simulated agent host and a way to run the built installer zipapp on it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from calico_dcos.devcluster.hostroot import create_host_root, install_standins, read_calls
from calico_dcos.installer.cli import HOST_ROOT_ENV
from calico_dcos.installer.crashpoints import CRASH_ENV

FAST = ("--stability-seconds", "0", "--timeout-seconds", "20")
PLUGINS_DIR = "/opt/mesosphere/active/cni/"
CONFIG_DIR = "/opt/mesosphere/etc/dcos/network/cni/"


class Agent:
    """One simulated host and a way to run installer commands on it."""

    def __init__(self, root: Path, zipapp: Path, sandbox: Path, python: str) -> None:
        self.root, self.zipapp, self.sandbox = root, zipapp, sandbox
        self.python = python  # the agents' Python the zipapp runs under

    def environ(self, crash_at: str | None, extra: dict | None) -> dict:
        environ = {k: v for k, v in os.environ.items() if k != CRASH_ENV}
        standins = install_standins(self.sandbox.parent / "standins-bin")
        environ["PATH"] = f"{standins}{os.pathsep}{environ.get('PATH', '')}"
        environ["DEVCLUSTER_HOST_ROOT"] = str(self.root)
        environ[HOST_ROOT_ENV] = str(self.root)  # as the devcluster's process executor does
        if crash_at:
            environ[CRASH_ENV] = crash_at
        return environ | (extra or {})

    def run(self, command: str, *args: str, crash_at: str | None = None, env: dict | None = None):
        argv = [self.python, str(self.zipapp), command, "--host-root", str(self.root), *args]
        return subprocess.run(
            argv,
            capture_output=True,
            text=True,
            cwd=self.sandbox,
            timeout=120,
            env=self.environ(crash_at, env),
        )

    def docker(self, store: str = "etcd://10.0.0.1:2379", *extra: str, **kw):
        return self.run("docker", "--cluster-store", store, *FAST, *extra, **kw)

    def cni(self, *extra: str, endpoints: str = "http://10.0.0.1:2379", restart=True, **kw):
        """The cni command; with the agent restart (the path with markers) unless told not."""
        extra = ("--restart-agent", *extra) if restart else extra
        return self.run(
            "cni",
            "--etcd-endpoints",
            endpoints,
            "--calico-bin",
            str(self.sandbox / "calico"),
            "--calico-ipam-bin",
            str(self.sandbox / "calico-ipam"),
            *FAST,
            *extra,
            **kw,
        )

    def path(self, host_path: str) -> Path:
        return self.root / host_path.lstrip("/")

    def calls(self) -> list[list[str]]:
        """Each stand-in call as `[tool, *argv]`, oldest first."""
        return [[call["tool"], *call["argv"]] for call in read_calls(self.root)]

    def restarts(self, unit: str) -> int:
        return self.calls().count(["systemctl", "restart", unit])

    def files(self) -> dict[str, tuple[bytes, int]]:
        """Every file of the host (bytes and mode), outside the stand-ins' own records."""
        found = {}
        for path in sorted(self.root.rglob("*")):
            relative = str(path.relative_to(self.root))
            if path.is_file() and not relative.startswith(".devcluster"):
                found[relative] = (path.read_bytes(), path.stat().st_mode & 0o7777)
        return found

    def unit(self, unit: str) -> str:
        return (self.root / ".devcluster" / "units" / unit).read_text().strip()


def create_agent(directory: Path, zipapp: Path, index: int, python: str, **host_options) -> Agent:
    """A fresh host (its root has a space in its name) with fetched plugins in a sandbox."""
    root = directory / f"host root {index}"
    sandbox = directory / f"sandbox {index}"
    sandbox.mkdir(parents=True)
    (sandbox / "calico").write_bytes(b"\x7fELF calico plugin v3")
    (sandbox / "calico-ipam").write_bytes(b"\x7fELF calico-ipam plugin v3")
    host_options.setdefault("agent_id", f"5f1c-S{index}")
    create_host_root(root, hostname=f"agent-{index}", ip=f"127.0.1.{index + 1}", **host_options)
    return Agent(root, zipapp, sandbox, python)
