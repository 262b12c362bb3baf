"""The files the scheduler hands to agents: the installer zipapp, an etcd tarball, CNI stand-ins.

Each is built deterministically (fixed timestamps, owners and order), so the same sources
give the same bytes and the same hash: the zipapp's name carries that hash, and an agent that
fetched `installer-<sha12>.pyz` runs exactly the code the scheduler was built with.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import subprocess
import tarfile
import zipfile
from pathlib import Path
from typing import NamedTuple

from calico_dcos.installer import MIN_PYTHON

INSTALLER_DIR = Path(__file__).resolve().parent / "installer"
ZIPAPP_PACKAGE = "calico_installer"
# Plain enough to parse on any Python, so that an agent's too old Python says so by name
# instead of dying with a SyntaxError deep in the package.
_SHOWN_MIN = "{}.{}".format(*MIN_PYTHON)
ZIPAPP_MAIN = f"""\"\"\"Run the calico-dcos agent-side installer: installer.pyz <command> ...\"\"\"
import sys

if sys.version_info < {MIN_PYTHON!r}:
    sys.stderr.write(
        "calico-installer: failed: needs Python >= {_SHOWN_MIN} (DC/OS >= 1.11), this is "
        "%s: set service.agent_python\\n" % sys.version.split()[0]
    )
    sys.exit(1)

from {ZIPAPP_PACKAGE}.cli import main  # noqa: E402

sys.exit(main())
"""
SHEBANG = b"#!/usr/bin/env python3\n"
FIXED_TIME = (1980, 1, 1, 0, 0, 0)
CNI_STANDIN = """#!/bin/sh
# STAND-IN for Calico's `{name}` CNI plugin, written by calico_dcos.artifacts so that
# calico-dcos can be tried on a laptop without downloading Calico. It is NOT the real plugin:
# it answers the CNI VERSION command and refuses to set up or tear down any network.
if [ "$CNI_COMMAND" = VERSION ]; then
  echo '{{"cniVersion":"0.3.1","supportedVersions":["0.3.0","0.3.1"]}}'
  exit 0
fi
echo '{{"cniVersion":"0.3.1","code":100,"msg":"{name} is a calico-dcos stand-in, not Calico"}}'
exit 1
"""


class BuiltArtifact(NamedTuple):
    """A file built for agents, and the sha256 of its bytes."""

    path: Path
    sha256: str


def installer_sources() -> list[Path]:
    return sorted(INSTALLER_DIR.glob("*.py"))


def zip_entry(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=FIXED_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    return info


def installer_zipapp_bytes() -> bytes:
    buffer = io.BytesIO()
    buffer.write(SHEBANG)
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(zip_entry("__main__.py"), ZIPAPP_MAIN)
        for source in installer_sources():
            archive.writestr(zip_entry(f"{ZIPAPP_PACKAGE}/{source.name}"), source.read_bytes())
    return buffer.getvalue()


def build_installer_zipapp(out_dir: Path) -> BuiltArtifact:
    """Write `installer-<sha12>.pyz` into `out_dir`; same sources, same bytes and name."""
    data = installer_zipapp_bytes()
    digest = hashlib.sha256(data).hexdigest()
    path = Path(out_dir) / f"installer-{digest[:12]}.pyz"
    write_file(path, data, 0o755)
    return BuiltArtifact(path, digest)


def etcd_version(etcd_binary: Path) -> str:
    """`etcd --version` -> `3.4.23`, to name the tarball after the binary it holds."""
    output = subprocess.run(
        [str(etcd_binary), "--version"], capture_output=True, text=True, check=True
    ).stdout
    for line in output.splitlines():
        if line.startswith("etcd Version:"):
            return line.split(":", 1)[1].strip()
    raise ValueError(f"no version in the output of {etcd_binary} --version: {output!r}")


def tar_entry(name: str, mode: int, size: int = 0, directory: bool = False) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
    info.mode, info.size, info.mtime = mode, size, 0
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def build_etcd_tarball(etcd_binary: Path, out_dir: Path, version: str) -> Path:
    """Pack an installed etcd as the release tarball the etcd-proxy step fetches and extracts.

    Layout as etcd's own releases: `etcd-v<ver>-linux-amd64/etcd`.
    """
    top = f"etcd-v{version}-linux-amd64"
    binary = Path(etcd_binary).read_bytes()
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
        tar.addfile(tar_entry(top, 0o755, directory=True))
        tar.addfile(tar_entry(f"{top}/etcd", 0o755, len(binary)), io.BytesIO(binary))
    path = Path(out_dir) / f"{top}.tar.gz"
    write_file(path, gzip.compress(raw.getvalue(), compresslevel=1, mtime=0), 0o644)
    return path


LIBNETWORK_STANDIN = """#!/bin/sh
# STAND-IN for D2iQ's libnetwork-plugin binary (mesosphere/libnetwork-plugin v1.1.3-2-d2iq),
# written by calico_dcos.artifacts: no Docker engine can run here, so it serves no plugin
# socket. It prints the settings the plugin would read and runs until it is killed.
echo "libnetwork-plugin stand-in: ETCD_ENDPOINTS=$ETCD_ENDPOINTS DATASTORE_TYPE=$DATASTORE_TYPE"
echo "CALICO_LIBNETWORK_HOSTNAME=$CALICO_LIBNETWORK_HOSTNAME" \
  "CALICO_LIBNETWORK_NAMESPACE=$CALICO_LIBNETWORK_NAMESPACE"
exec tail -f /dev/null
"""


def build_libnetwork_standin(out_dir: Path) -> Path:
    """A stand-in for the libnetwork plugin binary the calico-v3 profile runs on the host."""
    path = Path(out_dir) / "libnetwork-plugin-amd64"
    write_file(path, LIBNETWORK_STANDIN.encode(), 0o755)
    return path


def build_cni_standins(out_dir: Path) -> dict[str, Path]:
    """Stand-in `calico` and `calico-ipam` executables, for laptops without Calico's binaries."""
    paths = {}
    for name in ("calico", "calico-ipam"):
        paths[name] = Path(out_dir) / name
        write_file(paths[name], CNI_STANDIN.format(name=name).encode(), 0o755)
    return paths


def write_file(path: Path, data: bytes, mode: int) -> None:
    """Atomic, so a scheduler serving the file never hands out half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    tmp.chmod(mode)
    os.replace(tmp, path)
