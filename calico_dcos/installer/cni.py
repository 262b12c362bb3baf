"""The cni step: install Calico's CNI plugins and network config (and restart old agents).

Calico's own installer (cni-plugin/pkg/install/install.go) read top to bottom: check the
fetched binaries against their checksums, copy them (skip if identical, verify after),
render the config, check it parses, write it.

The agent restart, only with `--restart-agent`: Mesos before 1.2 saw a new CNI network only
after a restart (MESOS-6567); since 1.2 the CNI isolator reloads the config directory when a
task asks for a network it does not know (apache/mesos commit 89547353 "Modified isolator for
dynamic addition/deletion of CNI networks", first in 1.2.0;
`src/slave/containerizer/mesos/isolators/network/cni/cni.cpp`, `getNetworkConfigJSON`:
"Cache-miss"), and every DC/OS this package supports runs Mesos 1.5 or later
(calico_dcos/matrix.py). The restart may cut this very process off, so the
`cni-agent-restart` marker records the way: `pending` before the first file changes,
`restarted` just before the restart. A run that finds `restarted` and nothing left to change
only waits until the agent is stable and clears it.
"""

import hashlib
import json
import logging
from pathlib import Path
from typing import Callable, List, NamedTuple, Optional

from . import crashpoints, detect, systemd
from .hostfs import (
    MARKER_CNI_RESTART,
    HostRoot,
    InstallerError,
    Snapshot,
    private_if_secret,
    sha256,
    write_atomic,
)
from .restarts import Waits

LOG = logging.getLogger("calico-installer")
OWNER = "cni"
AGENT_UNITS = {False: "dcos-mesos-slave", True: "dcos-mesos-slave-public"}
PENDING = "pending"
RESTARTED = "restarted"
BINARY_MODE = 0o755
CONFIG_MODE = 0o644
CNI_VERSION = "0.1.0"
"""Mesos' CNI isolator reads the plugin's result in the 0.1/0.2 format, `ip4`/`ip6`
(apache/mesos `src/slave/containerizer/mesos/isolators/network/cni/spec.proto`, NetworkInfo);
a 0.3 result holds `ips` instead, so a task would get a Calico address that Mesos, and so
Marathon and Mesos-DNS, never learn. Calico's Mesos guide (projectcalico/calico@v2.6.12
`v2.6/getting-started/mesos/installation/integration.md`) and DC/OS 2.x (dcos/dcos@2.2
`gen/dcos-config.yaml`, `calico.conf`) both write 0.1.0."""
CRASH_POINTS = (
    "cni:marker-written",
    "cni:calico-written",
    "cni:calico-ipam-written",
    "cni:config-written",
    "cni:agent-restarted",
)


class UsageError(Exception):
    """An option value that cannot work; the command exits 2 without touching the host."""


class Wanted(NamedTuple):
    """One file as this step wants it on the host."""

    path: Path
    data: bytes
    mode: int
    crash_point: str


class Network(NamedTuple):
    """The options the CNI network config is rendered from."""

    name: str
    etcd_endpoints: str
    log_level: str


def render_config(network: Network) -> bytes:
    """The Calico CNI network config, checked to parse back before anyone writes it."""
    config = {
        "name": network.name,
        "cniVersion": CNI_VERSION,
        "type": "calico",
        "etcd_endpoints": network.etcd_endpoints,
        "log_level": network.log_level,
        "ipam": {"type": "calico-ipam"},
    }
    data = (json.dumps(config, indent=2) + "\n").encode()
    validate_config(json.loads(data.decode()))
    return data


def validate_config(config: dict) -> None:
    if not config.get("name"):
        raise UsageError("--network-name must not be empty")
    endpoints = [e for e in config.get("etcd_endpoints", "").split(",") if e]
    if not endpoints:
        raise UsageError("--etcd-endpoints must name at least one endpoint")
    for endpoint in endpoints:
        if not endpoint.startswith(("http://", "https://")):
            raise UsageError(f"etcd endpoint {endpoint!r} must start with http:// or https://")


def read_binary(path: str, checksum: str = "") -> bytes:
    """The fetched plugin's bytes, checked against `sha1:HEX` or `sha256:HEX` when given."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise InstallerError(f"cannot read the fetched plugin {path}: {exc}") from exc
    if checksum:
        algorithm, _, expected = checksum.partition(":")
        if algorithm not in ("sha1", "sha256") or not expected:
            raise UsageError(f"checksum {checksum!r} is not sha1:HEX or sha256:HEX")
        actual = hashlib.new(algorithm, data).hexdigest()
        if actual != expected.lower():
            raise InstallerError(
                f"{path} has {algorithm} {actual}, not {expected}: a wrong or damaged "
                "download; nothing was installed"
            )
        LOG.info("%s matches its %s %s", path, algorithm, expected)
    return data


def wanted_files(
    host: HostRoot,
    plugins_dir: str,
    config_dir: str,
    config_name: str,
    binaries: dict,
    network: Network,
    checksums: Optional[dict] = None,
) -> List[Wanted]:
    """Every file to install; `binaries` and `checksums` are keyed by plugin name."""
    config = render_config(network)
    plugins, configs = host.path(plugins_dir), host.path(config_dir)
    checksums = checksums or {}
    files = [
        Wanted(
            plugins / name,
            read_binary(source, checksums.get(name, "")),
            BINARY_MODE,
            f"cni:{name}-written",
        )
        for name, source in binaries.items()
    ]
    mode = private_if_secret(config, CONFIG_MODE)
    return files + [Wanted(configs / config_name, config, mode, "cni:config-written")]


def differs(wanted: Wanted) -> bool:
    """Skip a file whose size, mode and content already match, as Calico's installer does."""
    return not Snapshot(wanted.data, wanted.mode).same_as(Snapshot.of(wanted.path))


def install_file(host: HostRoot, wanted: Wanted) -> None:
    host.save_original(OWNER, wanted.path)
    write_atomic(wanted.path, wanted.data, wanted.mode)
    if differs(wanted):
        raise InstallerError(f"{wanted.path} does not match what was written")
    LOG.info(
        "installed %s (sha256 %s, mode %o)", wanted.path, sha256(wanted.data)[:12], wanted.mode
    )
    crashpoints.reached(wanted.crash_point)


def install(
    host: HostRoot,
    files: List[Wanted],
    unit: str,
    waits: Waits,
    force: bool,
    config_dir: str,
    restart_agent: bool = True,
    after: Optional[Callable[[], None]] = None,
) -> int:
    """Install what differs, run `after` (the default profile), restart the agent if asked.

    A rerun after a restart only waits for the agent.
    """
    if detect.stop_if_present(host, "cni", config_dir, force):
        return 0
    changes = [wanted for wanted in files if differs(wanted)]
    for wanted in files:
        if wanted not in changes:
            LOG.info("%s is already as wanted: skipped", wanted.path)
    changes += stale_files(host, files)
    if not restart_agent:
        for change in changes:
            apply_change(host, change)
        if after is not None:
            after()
        LOG.info(
            "the agent is not restarted: Mesos 1.2 and later load a new CNI network when a "
            "task first asks for it (MESOS-6567)"
        )
        return 0
    if after is not None:
        after()
    return apply_and_restart(host, changes, lambda c: apply_change(host, c), unit, waits)


def stale_files(host: HostRoot, files: List[Wanted]) -> List[Path]:
    """Files this installer wrote (it saved their originals) that the options no longer
    want: another `--config-name`, `--config-dir` or `--plugins-dir` than before. Left, an
    old network config would stay a second `calico` network with the old settings; they
    are put back as the installer found them (removed, if there was none). Files it never
    wrote are someone else's and never touched."""
    wanted = {w.path for w in files}
    stale = [p for p in host.originals(OWNER) if p not in wanted]
    for path in stale:
        LOG.info("%s was written by this installer for other options: putting it back", path)
    return stale


def apply_change(host: HostRoot, change) -> None:
    """Install a wanted file, or put back a stale one (a Path)."""
    if isinstance(change, Wanted):
        install_file(host, change)
    else:
        put_back(host, change)


def apply_and_restart(host: HostRoot, changes: list, apply, unit: str, waits: Waits) -> int:
    """Record `pending`, apply each change, restart the agent once, wait until it holds."""
    marker = host.read_marker(MARKER_CNI_RESTART)
    if not changes and marker is None:
        LOG.info("nothing changed: the agent is not restarted")
        return 0
    if not changes and marker["state"] == RESTARTED:
        LOG.info("a previous run restarted %s: waiting until it is stable", unit)
        return finish(host, waits.wait(unit), unit)
    if changes and (marker is None or marker["state"] != PENDING):
        host.write_marker(MARKER_CNI_RESTART, {"state": PENDING, "unit": unit})
        crashpoints.reached("cni:marker-written")
    for change in changes:
        apply(change)
    host.write_marker(MARKER_CNI_RESTART, {"state": RESTARTED, "unit": unit})
    LOG.info("the agent sees a CNI change only after a restart (MESOS-6567)")
    if not systemd.restart(unit):
        host.write_marker(MARKER_CNI_RESTART, {"state": PENDING, "unit": unit})
        raise InstallerError(f"systemctl restart {unit} failed; the next run tries again")
    crashpoints.reached("cni:agent-restarted")
    return finish(host, waits.wait(unit), unit)


def finish(host: HostRoot, why: Optional[str], unit: str) -> int:
    """Clear the marker once the agent holds; if it does not, the next run restarts it again."""
    if why is not None:
        host.write_marker(MARKER_CNI_RESTART, {"state": PENDING, "unit": unit})
        raise InstallerError(f"the agent did not come back: {why}; the next run restarts it")
    host.clear_marker(MARKER_CNI_RESTART)
    LOG.info("%s is back and stable", unit)
    return 0


def uninstall(host: HostRoot, unit: str, waits: Waits) -> int:
    """Put back every file this step changed, as it found it, and restart the agent once."""
    paths = host.originals(OWNER)
    changes = [p for p in paths if not host.original(OWNER, p).same_as(Snapshot.of(p))]
    for path in paths:
        if path not in changes:
            host.drop_original(OWNER, path)
    if not paths and host.read_marker(MARKER_CNI_RESTART) is None:
        LOG.info("this installer never changed a CNI file: nothing to put back")
    return apply_and_restart(host, changes, lambda p: put_back(host, p), unit, waits)


def put_back(host: HostRoot, path: Path) -> None:
    host.original(OWNER, path).put_back(path)
    host.drop_original(OWNER, path)
    LOG.info("put back %s as this installer found it", path)
