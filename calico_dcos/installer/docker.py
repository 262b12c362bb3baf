"""The docker step: point Docker's `cluster-store` at etcd, for calico-libnetwork.

The procedure an operator would follow: ask the running Docker what it uses
(`docker info`: its version and its cluster store, whether from daemon.json or from a dockerd
flag), read daemon.json and refuse one that dockerd itself would refuse, decide (`decide`,
pure), back the file up, set the one key, restart Docker and wait until it holds. If Docker
does not come back, put daemon.json back byte for byte, restart again and fail with dockerd's
own words, read from its journal. A `docker-restart` marker written before daemon.json
changes makes a run cut off before Docker was back finish the job.

Facts about Docker this relies on:
- `cluster-store` is deprecated in 20.10 and removed in 23.0, where dockerd refuses to start
  with it (docker/cli docs/deprecated.md, "Classic Swarm and overlay networks using external
  key/value stores").
- A key given both as a dockerd flag and in daemon.json stops dockerd from starting, even
  with equal values: "unable to configure the Docker daemon with file …: the following
  directives are specified both as a flag and in the configuration file: cluster-store: (from
  flag: …, from file: …)" (docker/docs content/config/daemon/troubleshoot.md; checked against
  Debian's docker.io 20.10.24). So a cluster store set by a flag is never written to the file.
- dockerd refuses an empty daemon.json ("EOF"), one with a UTF-8 byte order mark ("invalid
  character 'ï' looking for beginning of value") and invalid JSON (Go's encoding/json has no
  NaN or Infinity either); it prints the reason as its last line and exits 1 (moby/moby
  cmd/dockerd/docker.go `main`), which systemd keeps in the unit's journal.
- `docker info --format '{{json .}}'` exits 0 even when no daemon answers, and says so in
  `ServerErrors` (docker/cli cli/command/system/info.go); `ClusterStore` is absent from
  Docker 23.0 on.
"""

import json
import logging
import re
import subprocess
from pathlib import Path
from typing import NamedTuple, Optional

from . import crashpoints, detect, report
from .hostfs import (
    MARKER_DOCKER_RESTART,
    HostProblem,
    HostRoot,
    InstallerError,
    Snapshot,
    private_if_secret,
    write_atomic,
)
from .report import one_line
from .restarts import Waits

LOG = logging.getLogger("calico-installer")
OWNER = "docker"
UNIT = "docker"
DAEMON_JSON = "/etc/docker/daemon.json"
KEY = "cluster-store"
DEPRECATED_IN = (20, 10)
REMOVED_IN = (23, 0)
JOURNAL_LINES = 20
DOCKER_TIMEOUT_SECONDS = 60.0  # at most; the step's --timeout-seconds when shorter
CRASH_POINTS = (
    "docker:original-saved",
    "docker:marker-written",
    "docker:daemon-json-written",
    "docker:restarted",
    "docker:rolled-back",
)
# What `decide` can answer.
NOTHING, LEAVE, WRITE, RESTART, REFUSE = "nothing", "leave", "write", "restart", "refuse"


class Daemon(NamedTuple):
    """What the running Docker says of itself.

    `version` is (major, minor), from the server when it answers, else from the client;
    `cluster_store` is "" when it has none, None when unknown (no daemon answered, or a
    Docker >= 23 that has no such setting); `problem` says why no daemon answered.
    """

    version: tuple
    cluster_store: Optional[str]
    problem: str = ""


class Decision(NamedTuple):
    """One of NOTHING, LEAVE (with a warning), WRITE, RESTART, REFUSE, and why."""

    action: str
    why: str


def parse_version(text: str) -> tuple:
    """`Docker version 20.10.7, build f0df350` or `20.10.24+dfsg1` -> (20, 10)."""
    match = re.search(r"(\d+)\.(\d+)", text)
    if not match:
        raise InstallerError(f"cannot read a Docker version from {text.strip()!r}")
    return int(match.group(1)), int(match.group(2))


def run_docker(*args: str, timeout: float = DOCKER_TIMEOUT_SECONDS):
    """`docker ARGS` (a CompletedProcess); no `docker` at all is the host's problem, not a
    reason to retry. A daemon that hangs makes the client hang: after `timeout` seconds the
    client is killed and the answer is exit status 124 with no output, as timeout(1) says."""
    try:
        return subprocess.run(
            ["docker", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            universal_newlines=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        stderr = f"`docker {args[0]}` did not answer within {timeout:.0f} s"
        return subprocess.CompletedProcess(["docker", *args], 124, "", stderr)
    except OSError as exc:
        raise HostProblem(
            f"cannot run `docker {args[0]}`: {exc} (is Docker installed on this host?)"
        ) from exc


def read_daemon(timeout: float = DOCKER_TIMEOUT_SECONDS) -> Daemon:
    """Ask the running Docker for its version and cluster store (`docker info`)."""
    result = run_docker("info", "--format", "{{json .}}", timeout=timeout)
    problem = one_line(result.stderr) or f"`docker info` exited with {result.returncode}"
    document = {}
    if result.returncode == 0:
        try:
            document = json.loads(result.stdout)
        except ValueError:
            problem = f"`docker info` printed no JSON: {one_line(result.stdout)}"
    if isinstance(document, dict) and document.get("ServerVersion"):
        version = parse_version(str(document["ServerVersion"]))
        # Below 23.0 an empty ClusterStore is left out of the JSON (moby api/types/types.go
        # `Info.ClusterStore` is `json:",omitempty"`; so with 20.10.24); from 23.0
        # there is no such setting, so nothing can be said of it.
        store = document.get("ClusterStore", "" if version < REMOVED_IN else None)
        LOG.info("Docker %s runs, cluster store: %s", document["ServerVersion"], store or "none")
        return Daemon(version, store if isinstance(store, str) else None)
    if isinstance(document, dict) and document.get("ServerErrors"):
        problem = "; ".join(str(e) for e in document["ServerErrors"])
    client = run_docker("--version")
    if client.returncode != 0:
        raise InstallerError(f"`docker --version` failed: {one_line(client.stderr)}")
    LOG.warning(
        "no Docker daemon answered (%s); deciding from daemon.json alone, with %s",
        problem, client.stdout.strip(),
    )  # fmt: skip
    return Daemon(parse_version(client.stdout), None, problem)


def read_config(snapshot: Snapshot, path: Path) -> dict:
    """daemon.json as dockerd would read it; what dockerd refuses is refused here, before
    anything changes, naming what is wrong and how to fix it."""
    if snapshot.data is None:
        return {}
    refused = "{} {}, which dockerd refuses ({}): leaving it alone; {}"
    if not snapshot.data.strip():
        raise HostProblem(refused.format(path, "is empty", '"EOF"', "delete it or write {}"))
    if snapshot.data.startswith(b"\xef\xbb\xbf"):
        raise HostProblem(
            refused.format(
                path,
                "starts with a UTF-8 byte order mark",
                "\"invalid character 'ï' looking for beginning of value\"",
                "save it as UTF-8 without a byte order mark",
            )
        )
    try:
        config = json.loads(snapshot.data.decode("utf-8"), parse_constant=reject_constant)
    except ValueError as exc:
        raise HostProblem(
            refused.format(path, "is not valid JSON", one_line(str(exc)), "fix it")
        ) from exc
    if not isinstance(config, dict):
        raise HostProblem(refused.format(path, "is not a JSON object", "it must be {…}", "fix it"))
    return config


def reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def render_config(config: dict) -> bytes:
    return (json.dumps(config, indent=2) + "\n").encode()


def decide(
    wanted: str,
    in_file: Optional[str],
    running: Optional[str],
    pending: bool,
    force: bool,
    ours: bool = False,
) -> Decision:
    """What to do, from daemon.json's `cluster-store` (`in_file`, None when absent), the
    running Docker's (`running`: "" none, None unknown), a pending restart marker, and
    whether `in_file` is a value this installer wrote itself (`ours`, `owns`): ours is
    replaced when the options change; someone else's is left alone, with a warning.

    A cluster store that Docker runs with but daemon.json lacks comes from a dockerd flag
    (or another configuration file): writing the key would stop dockerd from starting, even
    with the same value, so it is left alone, done if it is the wanted one.
    """
    if running and in_file is None:
        if running == wanted:
            return Decision(NOTHING, f"Docker already uses {KEY} {wanted}, set by a dockerd flag")
        if force:
            return Decision(
                REFUSE,
                f"Docker uses {KEY} {running}, set by a dockerd flag, not {wanted}; writing "
                f"{KEY} into daemon.json would stop dockerd from starting (a directive given "
                "both as a flag and in the file): remove the flag from the docker unit, then "
                "run again",
            )
        return Decision(
            LEAVE,
            f"Docker uses {KEY} {running}, set by a dockerd flag, not {wanted}: leaving it as "
            f"it is (change the docker unit's flag to use {wanted})",
        )
    if in_file == wanted:
        if pending:
            return Decision(
                RESTART, f"a previous run set {KEY} but was cut off before Docker was back"
            )
        if running == "":
            return Decision(
                RESTART,
                f"daemon.json has {KEY} {wanted} but Docker runs without one: "
                "restarting Docker to load it",
            )
        if running is not None and running != wanted:
            return Decision(
                LEAVE,
                f"daemon.json has {KEY} {wanted} but Docker runs with {running} (from a dockerd "
                "flag, or daemon.json changed since Docker started; with both, dockerd will not "
                "start again): changing nothing; remove one of them, then restart Docker",
            )
        return Decision(NOTHING, f"daemon.json already has {KEY} {wanted}")
    if in_file is not None and ours:
        return Decision(
            WRITE, f"replace {KEY} {in_file}, which this installer wrote, with {wanted}"
        )
    if in_file is not None and not force:
        return Decision(
            LEAVE,
            f"daemon.json has {KEY} {in_file}, not {wanted}, and this installer did not write "
            "it: leaving it as it is (remove the key, or run the step with --force, to "
            "replace it)",
        )
    return Decision(WRITE, f"set {KEY} {wanted} in daemon.json (was {in_file or 'not set'})")


def owns(host: HostRoot, path: Path, in_file: Optional[str]) -> bool:
    """Whether daemon.json's `cluster-store` value `in_file` is one this installer wrote.

    The values it wrote are recorded before each write (`HostRoot.add_written`). A host
    changed by a version that kept no such record has only the original this installer saved
    before its first change: the only key it changes is `cluster-store`, so a value that
    differs from the original's is its own.
    """
    if in_file is None:
        return False
    written = host.written(OWNER, path).get(KEY)
    if written:
        return in_file in written
    original = host.original(OWNER, path)
    if original is None:
        return False
    try:
        before = json.loads(original.data.decode("utf-8")) if original.data else {}
    except ValueError:
        return False
    return isinstance(before, dict) and before.get(KEY) != in_file


def warn(words: str) -> int:
    """Done, but not as the options want it: logged, and reported to the scheduler, which
    shows the step done with this warning (and the service Degraded). Returns 0."""
    LOG.warning("%s", words)
    report.warning(OWNER, words)
    return 0


def install(host: HostRoot, cluster_store: str, waits: Waits, force: bool) -> int:
    """Set `cluster-store` in daemon.json and restart Docker, or say why not.

    Returns 0 when done or rightly left alone; raises HostProblem when the host's own
    configuration stands in the way, InstallerError for anything else.
    """
    if detect.stop_if_present(host, "docker", detect.DEFAULT_CNI_CONFIG_DIR, force):
        return 0
    path = host.path(DAEMON_JSON)
    current = Snapshot.of(path)
    daemon = read_daemon(min(waits.timeout, DOCKER_TIMEOUT_SECONDS))
    if not version_allows_cluster_store(daemon.version, current):
        return 0
    config = read_config(current, path)
    in_file = config.get(KEY)
    pending = host.read_marker(MARKER_DOCKER_RESTART)
    ours = owns(host, path, in_file)
    decision = decide(
        cluster_store, in_file, daemon.cluster_store, pending is not None, force, ours
    )
    if decision.action == NOTHING:
        LOG.info("%s: nothing to do", decision.why)
        return 0
    if decision.action == LEAVE:
        return warn(decision.why)
    if decision.action == REFUSE:
        raise HostProblem(decision.why)
    LOG.info("%s", decision.why)
    if decision.action == WRITE:
        config[KEY] = cluster_store
        host.add_written(OWNER, path, KEY, cluster_store)
        change(host, path, current, render_config(config), pending)
    return restart_or_roll_back(host, path, waits)


def version_allows_cluster_store(version: tuple, daemon_json: Snapshot) -> bool:
    """Below 20.10 yes; 20.10 to 22.x yes, with the deprecation warning; 23.0 and later no."""
    shown = f"{version[0]}.{version[1]}"
    if version >= REMOVED_IN:
        words = (
            f"Docker {shown} has no cluster-store (removed in 23.0): changing nothing; "
            "calico-libnetwork's global networks need Docker < 23.0"
        )
        if daemon_json.data and KEY.encode() in daemon_json.data:
            words += (
                f"; daemon.json mentions {KEY}, with which this Docker refuses to start; "
                "`uninstall --docker` puts back the file this installer found"
            )
        warn(words)
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
    write_atomic(path, data, private_if_secret(data, current.mode or 0o644))
    crashpoints.reached("docker:daemon-json-written")


def restart_or_roll_back(host: HostRoot, path: Path, waits: Waits) -> int:
    """Restart Docker; if it does not come back, put daemon.json back and fail.

    A Docker that refused to start (its unit failed) is the host's problem, reported with
    dockerd's own last words; one that was merely not stable in time may be retried.
    """
    why = waits.restart(UNIT)
    crashpoints.reached("docker:restarted")
    marker = host.read_marker(MARKER_DOCKER_RESTART)
    if why is None:
        host.clear_marker(MARKER_DOCKER_RESTART)
        LOG.info("Docker is back and stable")
        return 0
    host_caused = refused(why)
    said = dockerd_said() if host_caused else ""
    why = f"Docker did not come back ({why}{'; dockerd: ' + said if said else ''})"
    error = HostProblem if host_caused else InstallerError
    if marker is None:
        # Nothing of ours to undo: daemon.json was already as wanted before this run.
        raise error(f"{why}; daemon.json was not changed by this run")
    before = Snapshot.from_record(marker["before"])
    before.put_back(path)
    LOG.error("%s; restored %s as it was before this run", why, path)
    crashpoints.reached("docker:rolled-back")
    again = waits.restart(UNIT)
    host.clear_marker(MARKER_DOCKER_RESTART)
    original = host.original(OWNER, path)
    if original is not None and original.data == before.data:
        host.drop_original(OWNER, path)
    if again is not None:
        said = dockerd_said() if refused(again) else ""
        state = f"Docker is still not back: {again}{'; dockerd: ' + said if said else ''}"
        error = HostProblem if host_caused or refused(again) else InstallerError
        raise error(f"{why}; daemon.json rolled back and {state}")
    raise error(f"{why}; daemon.json rolled back and Docker is back")


def refused(why: str) -> bool:
    """Whether Docker refused to start (its job or unit failed), not merely was slow: the
    words of `Waits.restart` (`systemd.restart`, `systemd.wait_stable`)."""
    return why.startswith("systemctl restart") or why.endswith("failed to start")


def dockerd_said() -> str:
    """dockerd's last words from its unit's journal, or "" when there is no journal.

    `_SYSTEMD_UNIT=docker.service` keeps only what the unit's own processes wrote, not
    systemd's lines about it (systemd.journal-fields(7)); a refused configuration is dockerd's
    last line (moby/moby cmd/dockerd/docker.go), a fatal logrus line its `msg`.
    """
    try:
        result = subprocess.run(
            ["journalctl", "_SYSTEMD_UNIT=docker.service", "--lines", str(JOURNAL_LINES),
             "--no-pager", "--output", "cat"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            universal_newlines=True,
            timeout=DOCKER_TIMEOUT_SECONDS,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return ""
    if result.returncode != 0:
        return ""
    return last_error(result.stdout.splitlines())


LOGRUS = re.compile(r'level=(\w+) msg="((?:[^"\\]|\\.)*)"')


def last_error(lines: list) -> str:
    """The last line that is not a logrus info/debug/warning line, as one line."""
    for line in reversed(lines):
        line = line.strip()
        if not line or line.startswith("-- "):
            continue
        match = LOGRUS.search(line)
        if match is None:
            return one_line(line)
        if match.group(1) in ("error", "fatal", "panic"):
            return one_line(match.group(2).replace('\\"', '"'))
    return ""


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
