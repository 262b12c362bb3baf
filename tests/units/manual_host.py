"""A simulated agent host for the manual path, and the bundle `calico-dcos units` writes.

The devcluster's `systemctl` and `docker` stand-ins come first on PATH: no systemd or Docker
engine can run on a test machine. They act on the host root and log every call. Every run
sets CALICO_INSTALLER_HOST_ROOT, so no script here can ever touch this machine's own `/`.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

from calico_dcos.artifacts import build_cni_standins, build_etcd_tarball
from calico_dcos.commands.units import build, write_bundle
from calico_dcos.devcluster.hostroot import create_host_root, install_standins, read_calls
from calico_dcos.options import Options, load_options
from calico_dcos.units import HOST_ROOT_ENV
from tests.helpers.agent_python import find_oldest_agent_python

# What a shell, systemd or Docker's env-file reader could trip on. The options schema refuses
# most of it; the renderers are shown to quote it anyway, from options not validated.
HOSTILE = "a b 'c' \"d\" $(touch pwned) `touch pwned2`; $HOME %n %% \\ & ${X} | #x"
HOST_IP = "10.0.7.9"


def artifacts(directory: Path, etcd: bool = False) -> dict:
    """file:// URIs of the CNI plugin stand-ins and (if asked) an etcd tarball of this
    machine's etcd: no Calico or etcd release download in tests."""
    paths = build_cni_standins(directory / "cni")
    uris = {
        "cni": {
            "calico_uri": paths["calico"].as_uri(),
            "calico_ipam_uri": paths["calico-ipam"].as_uri(),
        }
    }
    if etcd:
        tarball = build_etcd_tarball(Path(shutil.which("etcd")), directory / "etcd", "3.4.23")
        # Static members: etcd 3.4's v2 proxy cannot find them by SRV (matrix.ETCD_SRV_BUG).
        uris["etcd"] = {
            "binary_uri": tarball.as_uri(),
            "cluster_endpoints": "http://127.0.0.1:2380",
        }
    return uris


def options_file(directory: Path, options: dict, etcd: bool = False) -> Path:
    """Options for fast runs here: the agents' Python (3.6, as on DC/OS), short stability
    periods."""
    doc = {
        "service": {"agent_python": find_oldest_agent_python()},
        "rollout": {"stability_seconds": 0.2},
        "etcd": {"run_proxy": etcd},
        # No etcd holds the network's profile here: the CNI plugin's own is used.
        "calico": {"default_profile_policy": "plugin-default"},
        # The manual path's agent restart, as agents with Mesos < 1.2 need, is tested here.
        "cni": {"restart_agent": True},
    }
    for section, values in (artifacts(directory, etcd) | {}).items():
        doc.setdefault(section, {}).update(values)
    for section, values in options.items():
        doc.setdefault(section, {}).update(values)
    path = directory / "options.json"
    path.write_text(json.dumps(doc))
    return path


def make_bundle(directory: Path, options: dict | None = None, public=False, etcd=False):
    """`calico-dcos units` into directory/bundle; returns (bundle dir, Bundle)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = options_file(directory, options or {}, etcd)
    out = directory / "the bundle"  # a space: every path in the scripts must be quoted
    return out, build(str(path), out, public, environ={})


def make_unchecked_bundle(directory: Path, options: dict, public=False, etcd=False):
    """Like `make_bundle`, from options NOT validated: values the schema would refuse."""
    directory.mkdir(parents=True, exist_ok=True)
    raw = load_options(str(options_file(directory, {}, etcd)), {}).raw
    for section, values in options.items():
        raw[section].update(values)
    out = directory / "the bundle"
    return out, write_bundle(Options(raw), out, public)


class Host:
    """A simulated DC/OS agent: host root, stand-ins on PATH, and `detect_ip`."""

    def __init__(self, root: Path, public: bool = False, **kw) -> None:
        self.root = root
        create_host_root(root, agent_id="m1", hostname=HOST_IP, ip=HOST_IP, public=public, **kw)
        detect_ip = root / "opt/mesosphere/bin/detect_ip"
        detect_ip.parent.mkdir(parents=True)
        detect_ip.write_text(f"#!/bin/sh\necho {HOST_IP}\n")
        detect_ip.chmod(0o755)
        (root / "etc/systemd/system/multi-user.target.wants").mkdir(parents=True)
        self.bin = install_standins(root.parent / f"{root.name}-bin")

    def environ(self) -> dict[str, str]:
        return {
            "PATH": f"{self.bin}{os.pathsep}{os.environ['PATH']}",
            "DEVCLUSTER_HOST_ROOT": str(self.root),
            HOST_ROOT_ENV: str(self.root),
            "HOME": str(self.root.parent),
        }

    def run(self, script: Path, *args: str, cwd: Path | None = None):
        result = subprocess.run(
            ["/bin/sh", str(script), *args],
            env=self.environ(),
            cwd=cwd or self.root.parent,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert not (self.root.parent / "pwned").exists(), "a hostile value ran as a command"
        return result

    def calls(self) -> list[list[str]]:
        return [[c["tool"], *c["argv"]] for c in read_calls(self.root)]

    def snapshot(self) -> dict[str, tuple]:
        return self.snapshot_of(self.root)

    @staticmethod
    def snapshot_of(root: Path) -> dict[str, tuple]:
        """Every directory, file and symlink but the stand-ins' bookkeeping (.devcluster):
        (kind, mode, bytes or link target)."""
        found = {}
        for path in sorted(root.rglob("*")):
            relative = str(path.relative_to(root))
            if relative == ".devcluster" or relative.startswith(".devcluster/"):
                continue
            info = path.lstat()
            mode = stat.S_IMODE(info.st_mode)
            if stat.S_ISLNK(info.st_mode):
                found[relative] = ("link", mode, os.readlink(path))
            elif stat.S_ISDIR(info.st_mode):
                found[relative] = ("dir", mode, None)
            else:
                found[relative] = ("file", mode, path.read_bytes())
        return found

    def unit_state(self, unit: str) -> str:
        path = self.root / ".devcluster/units" / unit
        return path.read_text().strip() if path.exists() else "inactive"
