"""The simulated host that the stand-ins act on: units, faults, Docker and the call log.

Standard library only: the stand-in executables import this file by path, outside the
package, because no systemd can run on a test machine (and dockerd is modelled unless the
host runs a real one, `realdocker.py`). The layout is the "Simulated host root" of
docs/CONTRACTS.md; unit names are stored without `.service`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

AGENT_UNITS = ("dcos-mesos-slave", "dcos-mesos-slave-public")
UNIT_FILE_DIR = "etc/systemd/system"
DEFAULT_START_LIMIT_BURST = 5
DEFAULT_START_LIMIT_INTERVAL = 10.0


# `scheme://user:password@host` -> `scheme://user:***@host`: the rule of
# calico_dcos.options.redact_text, restated here since this file imports nothing of the package.
_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^:@/\s]+):[^@/\s]+@", re.I)


def redact(text: str) -> str:
    """A URL's password in `text` replaced by `***`: the call log is for reading, by anyone."""
    return _URL_PASSWORD.sub(r"\g<head>:***@", text)


class HostError(Exception):
    """The stand-in cannot act: no host root given (never fall back to the real `/`)."""


def unit_name(name: str) -> str:
    """`docker.service` and `docker` are the same unit, as for systemctl."""
    return name.removesuffix(".service")


def version_tuple(version: str) -> tuple[int, ...]:
    """`24.0.7` -> (24, 0, 7); non-numeric parts count as 0 (`20.10.0-ce`)."""
    parts = []
    for part in version.split("."):
        digits = "".join(ch for ch in part if ch.isdigit()) if part else ""
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def write_atomic(path: Path, text: str) -> None:
    """Write via a temporary file and rename, so a concurrent reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class Host:
    """One simulated host root (the directory that stands for an agent's `/`)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.meta_dir = self.root / ".devcluster"

    @classmethod
    def from_environ(cls, environ: dict[str, str] | None = None) -> Host:
        """The host of the calling task; refuses to guess, so a stand-in never touches `/`."""
        root = (environ if environ is not None else os.environ).get("DEVCLUSTER_HOST_ROOT")
        if not root:
            raise HostError(
                "DEVCLUSTER_HOST_ROOT is not set: this stand-in only acts on a simulated host root"
            )
        return cls(Path(root))

    @property
    def info(self) -> dict:
        """host.json: agent_id, hostname, ip, public, docker_version, control_url, agent_unit."""
        path = self.meta_dir / "host.json"
        return json.loads(path.read_text()) if path.exists() else {}

    @property
    def docker_version(self) -> str:
        return str(self.info.get("docker_version", "19.03.15"))

    @property
    def agent_unit(self) -> str:
        info = self.info
        return info.get("agent_unit") or AGENT_UNITS[bool(info.get("public"))]

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """One job at a time on this host, as systemd queues them; released if we die."""
        self.meta_dir.mkdir(parents=True, exist_ok=True)
        with open(self.meta_dir / "systemd.lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield

    def record_call(self, tool: str, argv: list[str], env: Mapping[str, str] | None = None) -> None:
        """Append one JSON line, `{"t", "wall", "tool", "argv"[, "env"]}`: `argv` the
        arguments the tool was called with, `env` the environment variables it was started
        with that matter (calico/node's settings), each with URL passwords redacted. `t` is
        CLOCK_MONOTONIC, shared by all processes on Linux."""
        call = {"t": time.monotonic(), "wall": time.time(), "tool": tool}
        call["argv"] = [redact(arg) for arg in argv]
        if env is not None:
            call["env"] = {name: redact(value) for name, value in env.items()}
        line = json.dumps(call)
        self.meta_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.meta_dir / "calls.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (line + "\n").encode())
        finally:
            os.close(fd)

    def calls(self) -> list[dict]:
        path = self.meta_dir / "calls.log"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def unit_path(self, unit: str) -> Path:
        return self.meta_dir / "units" / unit_name(unit)

    def unit_exists(self, unit: str) -> bool:
        unit = unit_name(unit)
        return (
            unit in ("docker", self.agent_unit)
            or self.unit_path(unit).exists()
            or unit in self.loaded_units()
        )

    def unit_file(self, unit: str) -> Path:
        """Where an administrator's unit file lives: /etc/systemd/system/<unit>.service."""
        return self.root / UNIT_FILE_DIR / f"{unit_name(unit)}.service"

    def relative(self, path: Path) -> str:
        """The host path of `path` without the leading slash: `etc/systemd/system/x.service`."""
        return str(path.relative_to(self.root))

    def loaded_units(self) -> list[str]:
        """The unit files systemd knew at the last `daemon-reload` (names without .service)."""
        path = self.meta_dir / "loaded-units.json"
        return json.loads(path.read_text()) if path.exists() else []

    def reload_units(self) -> None:
        """`daemon-reload`: systemd now knows exactly the unit files in /etc/systemd/system."""
        directory = self.root / UNIT_FILE_DIR
        names = sorted(p.stem for p in directory.glob("*.service")) if directory.is_dir() else []
        write_atomic(self.meta_dir / "loaded-units.json", json.dumps(names))

    def unit_state(self, unit: str) -> str:
        """active | inactive | failed | activating; a unit without a state file is inactive."""
        path = self.unit_path(unit)
        if not path.exists():
            return "inactive"
        return path.read_text().strip() or "inactive"

    def set_unit_state(self, unit: str, state: str, message: str = "") -> None:
        write_atomic(self.unit_path(unit), state + "\n")
        if message:
            self.update_history(unit, message=message)

    def history(self, unit: str) -> dict:
        """Start times and the last message of a unit (systemd's journal, in short)."""
        path = self.meta_dir / "unit-history" / f"{unit_name(unit)}.json"
        return json.loads(path.read_text()) if path.exists() else {"starts": [], "message": ""}

    def update_history(self, unit: str, **changes: object) -> None:
        record = self.history(unit) | changes
        write_atomic(self.meta_dir / "unit-history" / f"{unit_name(unit)}.json", json.dumps(record))

    def start_limit(self) -> tuple[int, float]:
        """systemd's StartLimitBurst and StartLimitIntervalSec (overridable in host.json)."""
        info = self.info
        return (
            int(info.get("start_limit_burst", DEFAULT_START_LIMIT_BURST)),
            float(info.get("start_limit_interval", DEFAULT_START_LIMIT_INTERVAL)),
        )

    def note_start(self, unit: str) -> bool:
        """Count a start request; False when it exceeds the start limit, like systemd."""
        burst, interval = self.start_limit()
        now = time.time()
        starts = [t for t in self.history(unit)["starts"] if now - t < interval]
        if len(starts) >= burst:
            self.update_history(unit, starts=starts)
            return False
        self.update_history(unit, starts=starts + [now])
        return True

    def reset_failed(self, unit: str) -> None:
        """Clear the start-limit counter, and a failed unit becomes inactive."""
        self.update_history(unit, starts=[])
        if self.unit_state(unit) == "failed":
            self.set_unit_state(unit, "inactive")

    def fault(self, name: str) -> bool:
        return (self.meta_dir / "faults" / name).exists()

    def daemon_json(self) -> Path:
        return self.root / "etc" / "docker" / "daemon.json"

    @property
    def docker_flags(self) -> list[str]:
        """The flags the host's docker unit passes to dockerd (host.json `docker_flags`)."""
        return list(self.info.get("docker_flags", []))

    def flag_value(self, flag: str) -> str | None:
        """The value of `--flag X` or `--flag=X` among the docker unit's flags, else None."""
        flags = self.docker_flags
        for i, arg in enumerate(flags):
            if arg.startswith(flag + "="):
                return arg.split("=", 1)[1]
            if arg == flag and i + 1 < len(flags):
                return flags[i + 1]
        return None

    def journal_path(self, unit: str) -> Path:
        return self.meta_dir / "journal" / f"{unit_name(unit)}.log"

    def journal_lines(self, unit: str) -> list[str]:
        """What the unit's processes wrote, oldest first (the journalctl stand-in's source)."""
        try:
            return self.journal_path(unit).read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return []

    def append_journal(self, unit: str, line: str) -> None:
        path = self.journal_path(unit)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as journal:
            journal.write(line + "\n")

    def docker_config_problem(self) -> str | None:
        """Why dockerd would refuse to start with this host's daemon.json, or None.

        Modelled in dockerd's words (as Docker 20.10.24 prints them; the real engine is the
        `real_docker` mode): a key set both by a flag and in the file, "the following
        directives are specified both as a flag and in the configuration file: KEY: (from
        flag: A, from file: B)" (docker/docs content/config/daemon/troubleshoot.md).
        """
        path = self.daemon_json()
        if not path.exists():
            return None
        prefix = f"unable to configure the Docker daemon with file {path}: "
        try:
            config = json.loads(path.read_text())
        except ValueError as exc:
            return prefix + str(exc)
        if not isinstance(config, dict):
            return prefix + "not a JSON object"
        flag = self.flag_value("--cluster-store")
        if "cluster-store" in config and flag is not None:
            return (
                prefix + "the following directives are specified both as a flag and in the "
                f"configuration file: cluster-store: (from flag: {flag}, "
                f"from file: {config['cluster-store']})"
            )
        if "cluster-store" in config and version_tuple(self.docker_version) >= (23,):
            return (
                "unable to configure the Docker daemon with file "
                f"{path}: the following directives don't match any configuration "
                "option: cluster-store"
            )
        return None

    def containers(self) -> list[dict]:
        """Containers the process executor recorded for DOCKER/MESOS image tasks."""
        directory = self.meta_dir / "containers"
        if not directory.is_dir():
            return []
        return [json.loads(p.read_text()) for p in sorted(directory.glob("*.json"))]
