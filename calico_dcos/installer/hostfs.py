"""Files on the host: paths below the host root, atomic writes, backups and markers.

Production hosts must never be left half-written, so every write goes to a temporary file
that is fsynced, renamed into place, and followed by an fsync of its directory. Marker and
backup names are constants here, used by the code that writes them and by the code that
reads them (the original installer's guards never tripped because the two spelt them
differently).
"""

import base64
import hashlib
import json
import os
import re
from pathlib import Path
from typing import List, Optional, Union

STATE_DIR = "etc/calico/installer"
BACKUPS_DIR = STATE_DIR + "/backups"
MARKER_DOCKER_RESTART = "docker-restart"
MARKER_CNI_RESTART = "cni-agent-restart"
MARKERS = (MARKER_DOCKER_RESTART, MARKER_CNI_RESTART)
MAX_WRITTEN = 16  # values of one key this installer remembers having written
# The installer's own records (markers, what it wrote) may hold a daemon.json or a cluster
# store with an etcd password: only their owner (root on an agent) reads them.
PRIVATE_MODE = 0o600
# `scheme://user:password@` in a file's bytes (the shape report.redact hides in output).
_URL_CREDENTIALS = re.compile(rb"[a-z][a-z0-9+.-]*://[^:@/\s\"]+:[^@/\s\"]+@", re.I)


def private_if_secret(data: bytes, mode: int) -> int:
    """`mode` without its group and other bits when `data` holds a URL with a password (an
    etcd endpoint `https://user:pw@…` in daemon.json's cluster-store or a CNI config's
    etcd_endpoints), so that no other user of the agent can read it; `mode` otherwise.
    dockerd and the Mesos agent, which read these files, run as root."""
    return mode & 0o700 if _URL_CREDENTIALS.search(data) else mode


class InstallerError(Exception):
    """The command failed; the message says why, for the operator reading stderr."""

    host_caused = False


class HostProblem(InstallerError):
    """The command failed because of the host's own configuration (a daemon.json dockerd
    refuses, a dockerd flag in the way): running it again changes nothing until the
    operator changes the host. The installer exits 3 (`cli.EXIT_HOST`)."""

    host_caused = True


class HostRoot:
    """The directory that stands for the host's `/`; nothing outside it is touched."""

    def __init__(self, root: Union[str, Path]) -> None:
        self.root = Path(os.path.abspath(str(root)))

    def path(self, host_path: str) -> Path:
        """`/opt/x` (or `opt/x`) below the root; refuses paths that climb out of it."""
        relative = os.path.normpath(host_path.lstrip("/") or ".")
        if relative == ".." or relative.startswith("../"):
            raise InstallerError(f"path {host_path!r} leaves the host root {self.root}")
        return self.root / relative

    def relative(self, path: Path) -> str:
        """The host path of `path`, without the leading slash (`etc/docker/daemon.json`)."""
        return str(path.relative_to(self.root))

    def marker_path(self, name: str) -> Path:
        return self.path(STATE_DIR) / name

    def read_marker(self, name: str) -> Optional[dict]:
        """A marker's record, or None when it is absent."""
        data = read_bytes(self.marker_path(name))
        return None if data is None else json.loads(data.decode())

    def write_marker(self, name: str, record: dict) -> None:
        data = json.dumps(record, sort_keys=True).encode()
        write_atomic(self.marker_path(name), data, PRIVATE_MODE)

    def clear_marker(self, name: str) -> None:
        remove_durably(self.marker_path(name))

    def backup_path(self, owner: str, path: Path, present: bool) -> Path:
        kind = "present" if present else "absent"
        return self.path(BACKUPS_DIR) / owner / kind / self.relative(path)

    def save_original(self, owner: str, path: Path) -> bool:
        """Keep the file as it was before this installer first changed it; True if saved now.

        Only the first original counts: later runs (another option value, `--force`) change
        our own writing, and `uninstall` must still put back what the host had.
        """
        if self.original(owner, path) is not None:
            return False
        data = read_bytes(path)
        if data is None:
            write_atomic(self.backup_path(owner, path, present=False), b"", 0o644)
        else:
            write_atomic(self.backup_path(owner, path, present=True), data, file_mode(path))
        return True

    def original(self, owner: str, path: Path) -> "Optional[Snapshot]":
        """The saved original of `path`, or None if this installer never changed it."""
        present = self.backup_path(owner, path, present=True)
        if present.exists():
            return Snapshot(read_bytes(present), file_mode(present))
        if self.backup_path(owner, path, present=False).exists():
            return Snapshot(None, 0)
        return None

    def originals(self, owner: str) -> List[Path]:
        """Every host file that `owner` saved an original of, in a stable order."""
        found = set()
        for kind in ("present", "absent"):
            base = self.path(BACKUPS_DIR) / owner / kind
            if base.is_dir():
                found.update(
                    self.root / p.relative_to(base) for p in base.rglob("*") if p.is_file()
                )
        return sorted(found)

    def drop_original(self, owner: str, path: Path) -> None:
        """Forget the saved original (the file is the host's again), and what we wrote."""
        for present in (True, False):
            remove_durably(self.backup_path(owner, path, present))
        remove_durably(self.written_path(owner, path))

    def written_path(self, owner: str, path: Path) -> Path:
        return self.path(BACKUPS_DIR) / owner / "written" / (self.relative(path) + ".json")

    def written(self, owner: str, path: Path) -> dict:
        """The values this installer has written into keys of `path`: {key: [value, …]}
        ({} when none are recorded). A value found there is this installer's own, to be
        replaced when the options change; any other is someone else's, left alone."""
        data = read_bytes(self.written_path(owner, path))
        if data is None:
            return {}
        try:
            record = json.loads(data.decode())
        except ValueError:
            return {}
        return record if isinstance(record, dict) else {}

    def add_written(self, owner: str, path: Path, key: str, value: str) -> None:
        """Record that this installer writes `value` into `key` of `path`, BEFORE writing it:
        a run cut off in between finds the value recorded either way. The last
        `MAX_WRITTEN` values are kept (a value restored by a rollback is one we wrote too)."""
        record = self.written(owner, path)
        values = [v for v in record.get(key, []) if v != value] + [value]
        record[key] = values[-MAX_WRITTEN:]
        data = json.dumps(record, sort_keys=True).encode()
        write_atomic(self.written_path(owner, path), data, PRIVATE_MODE)


class Snapshot:
    """A file's bytes and mode at one moment; `data is None` means the file did not exist."""

    def __init__(self, data: Optional[bytes], mode: int) -> None:
        self.data = data
        self.mode = mode

    def same_as(self, other: "Snapshot") -> bool:
        return (self.data, self.mode) == (other.data, other.mode)

    def to_record(self) -> dict:
        encoded = None if self.data is None else base64.b64encode(self.data).decode()
        return {"data_b64": encoded, "mode": self.mode}

    @classmethod
    def from_record(cls, record: dict) -> "Snapshot":
        encoded = record.get("data_b64")
        return cls(None if encoded is None else base64.b64decode(encoded), record.get("mode", 0))

    @classmethod
    def of(cls, path: Path) -> "Snapshot":
        data = read_bytes(path)
        return cls(data, file_mode(path) if data is not None else 0)

    def put_back(self, path: Path) -> None:
        """Make `path` exactly what this snapshot saw: same bytes and mode, or no file."""
        if self.data is None:
            remove_durably(path)
        else:
            write_atomic(path, self.data, self.mode or 0o644)


def read_bytes(path: Path) -> Optional[bytes]:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def file_mode(path: Path) -> int:
    return path.stat().st_mode & 0o7777


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fsync_dir(directory: Path) -> None:
    fd = os.open(str(directory), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, mode: int) -> None:
    """Temporary file, fsync, rename, fsync of the directory: old or new, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.calico-installer-{os.getpid()}.tmp")
    fd = os.open(str(tmp), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fchmod(fd, mode)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(str(tmp), str(path))
    fsync_dir(path.parent)


def remove_durably(path: Path) -> None:
    """Remove a file if present, and make the removal survive a crash."""
    try:
        path.unlink()
    except FileNotFoundError:
        return
    fsync_dir(path.parent)
