"""The docker step: point Docker's `cluster-store` at etcd, for calico-libnetwork.

The procedure an operator would follow: read the Docker version (cluster-store is deprecated
in 20.10 and gone in 23.0, where dockerd refuses to start with it), read daemon.json, back it
up, set the one key, restart Docker and wait until it holds. If Docker does not come back,
put daemon.json back byte for byte, restart again and fail. A `docker-restart` marker written
before daemon.json changes makes a run cut off before Docker was back finish the job.
"""

import json
import logging
import re
import subprocess
from pathlib import Path
from typing import Optional

from . import crashpoints, detect
from .hostfs import MARKER_DOCKER_RESTART, HostRoot, InstallerError, Snapshot, write_atomic
from .restarts import Waits

LOG = logging.getLogger("calico-installer")
OWNER = "docker"
UNIT = "docker"
DAEMON_JSON = "/etc/docker/daemon.json"
KEY = "cluster-store"
DEPRECATED_IN = (20, 10)
REMOVED_IN = (23, 0)
CRASH_POINTS = (
    "docker:original-saved",
    "docker:marker-written",
    "docker:daemon-json-written",
    "docker:restarted",
    "docker:rolled-back",
)


def parse_version(text: str) -> tuple:
    """`Docker version 20.10.7, build f0df350` -> (20, 10)."""
    match = re.search(r"(\d+)\.(\d+)", text)
    if not match:
        raise InstallerError(f"cannot read a Docker version from {text.strip()!r}")
    return int(match.group(1)), int(match.group(2))


def docker_version() -> tuple:
    try:
        result = subprocess.run(
            ["docker", "--version"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            universal_newlines=True,
        )
    except OSError as exc:
        raise InstallerError(f"cannot run `docker --version`: {exc}") from exc
    if result.returncode != 0:
        raise InstallerError(f"`docker --version` failed: {result.stderr.strip()}")
    LOG.info("found %s", result.stdout.strip())
    return parse_version(result.stdout)


def read_config(snapshot: Snapshot, path: Path) -> dict:
    if snapshot.data is None:
        return {}
    try:
        config = json.loads(snapshot.data.decode())
    except ValueError as exc:
        raise InstallerError(f"{path} is not valid JSON, leaving it alone: {exc}") from exc
    if not isinstance(config, dict):
        raise InstallerError(f"{path} is not a JSON object, leaving it alone")
    return config


def render_config(config: dict) -> bytes:
    return (json.dumps(config, indent=2) + "\n").encode()


def install(host: HostRoot, cluster_store: str, waits: Waits, force: bool) -> int:
    """Set `cluster-store` in daemon.json and restart Docker, or say why not."""
    if detect.stop_if_present(host, "docker", detect.DEFAULT_CNI_CONFIG_DIR, force):
        return 0
    path = host.path(DAEMON_JSON)
    current = Snapshot.of(path)
    if not version_allows_cluster_store(docker_version(), current):
        return 0
    config = read_config(current, path)
    existing = config.get(KEY)
    pending = host.read_marker(MARKER_DOCKER_RESTART)
    if existing == cluster_store and pending is None:
        LOG.info("%s already has %s %s: nothing to do", path, KEY, existing)
        return 0
    if existing not in (None, cluster_store) and not force:
        LOG.warning(
            "%s has %s %s, not %s: leaving it as it is (--force replaces it)",
            path, KEY, existing, cluster_store,
        )  # fmt: skip
        return 0
    if existing == cluster_store:
        LOG.info("a previous run set %s but was cut off before Docker was back", KEY)
    else:
        config[KEY] = cluster_store
        change(host, path, current, render_config(config), pending)
        LOG.info("set %s %s in %s (was %s)", KEY, cluster_store, path, existing or "not set")
    return restart_or_roll_back(host, path, waits)


def version_allows_cluster_store(version: tuple, daemon_json: Snapshot) -> bool:
    """Below 20.10 yes; 20.10 to 22.x yes, with the deprecation warning; 23.0 and later no."""
    shown = f"{version[0]}.{version[1]}"
    if version >= REMOVED_IN:
        LOG.warning(
            "Docker %s has no cluster-store (removed in 23.0): changing nothing; "
            "calico-libnetwork's global networks need Docker < 23.0",
            shown,
        )
        if daemon_json.data and KEY.encode() in daemon_json.data:
            LOG.warning(
                "daemon.json mentions %s, with which this Docker refuses to start; "
                "`uninstall --docker` puts back the file this installer found",
                KEY,
            )
        return False
    if version >= DEPRECATED_IN:
        LOG.warning("Docker %s: cluster-store is deprecated since 20.10, removed in 23.0", shown)
    return True


def change(
    host: HostRoot, path: Path, current: Snapshot, data: bytes, pending: Optional[dict]
) -> None:
    """Back up, record what to roll back to, then write: each step survives a crash."""
    host.save_original(OWNER, path)
    crashpoints.reached("docker:original-saved")
    if pending is None:
        host.write_marker(MARKER_DOCKER_RESTART, {"before": current.to_record()})
        crashpoints.reached("docker:marker-written")
    write_atomic(path, data, current.mode or 0o644)
    crashpoints.reached("docker:daemon-json-written")


def restart_or_roll_back(host: HostRoot, path: Path, waits: Waits) -> int:
    """Restart Docker; if it does not come back, put daemon.json back and fail."""
    why = waits.restart(UNIT)
    crashpoints.reached("docker:restarted")
    marker = host.read_marker(MARKER_DOCKER_RESTART)
    if why is None:
        host.clear_marker(MARKER_DOCKER_RESTART)
        LOG.info("Docker is back and stable")
        return 0
    before = Snapshot.from_record(marker["before"])
    before.put_back(path)
    LOG.error("%s; restored %s as it was before this run", why, path)
    crashpoints.reached("docker:rolled-back")
    again = waits.restart(UNIT)
    host.clear_marker(MARKER_DOCKER_RESTART)
    original = host.original(OWNER, path)
    if original is not None and original.data == before.data:
        host.drop_original(OWNER, path)
    state = "Docker is back" if again is None else f"Docker is still not back: {again}"
    raise InstallerError(f"{why}; daemon.json rolled back and {state}")


def uninstall(host: HostRoot, waits: Waits) -> int:
    """Put back the daemon.json this installer found, and restart Docker if it changed."""
    path = host.path(DAEMON_JSON)
    original = host.original(OWNER, path)
    pending = host.read_marker(MARKER_DOCKER_RESTART)
    if original is None and pending is None:
        LOG.info("this installer never changed %s: nothing to put back", path)
        return 0
    current = Snapshot.of(path)
    needs_restart = pending is not None
    if original is not None and not original.same_as(current):
        if pending is None:
            host.write_marker(MARKER_DOCKER_RESTART, {"before": current.to_record()})
        original.put_back(path)
        LOG.info("put back %s as this installer found it", path)
        needs_restart = True
    if needs_restart:
        restart_or_roll_back(host, path, waits)
    host.drop_original(OWNER, path)
    return 0
