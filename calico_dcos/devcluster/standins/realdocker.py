"""A real Docker engine for one simulated host: the `systemctl` stand-in's docker unit.

Standard library only, imported by path by the stand-ins. When a host's `host.json` has a
`real_docker` entry, `systemctl start|stop|restart|is-active docker` runs a **real dockerd**
(Debian's docker.io, 20.10.x) for that host root, and the `docker` stand-in hands every call
to the real `docker` CLI pointed at that dockerd's socket. Only systemd is stood in for: no
systemd can run on a test machine, so this module does what the docker.service unit would
(start the daemon with the unit's flags, wait until it is ready, stop it, say whether it
runs). systemd's own `Restart=on-failure` retries are not modelled.

What dockerd gets, as the host's unit would pass it (Debian's unit runs
`/usr/sbin/dockerd -H fd:// --containerd=…`; the flags here are this machine's equivalent):
    dockerd --config-file <root>/etc/docker/daemon.json --data-root <root>/var/lib/docker
            --exec-root <run_dir>/exec --pidfile <run_dir>/dockerd.pid
            -H unix://<run_dir>/docker.sock --iptables=false --bridge=none
            --storage-driver=vfs <host.json docker_flags, e.g. --cluster-store URL>
`--iptables=false --bridge=none` keep it off this machine's network configuration; vfs needs
no kernel storage driver. The exec root and socket live in a short `run_dir` outside the host
root, because unix socket paths are limited to 107 bytes (unix(7)) and containerd's socket is
`<exec-root>/containerd/containerd.sock.ttrpc`.

dockerd's default config file, /etc/docker/daemon.json, may be absent (moby
cmd/dockerd/daemon.go loadDaemonCliConfig ignores a missing default file), but an explicit
`--config-file` must exist. So when the host has no daemon.json, dockerd is given an empty
`{}` in `run_dir`, which behaves as no file.

dockerd's output (its log lines and, when it refuses to start, its last line: moby
cmd/dockerd/docker.go `fmt.Fprintf(stderr, "%s\\n", err); os.Exit(1)`) goes to
`.devcluster/journal/docker.log`, which the `journalctl` stand-in serves as
`journalctl _SYSTEMD_UNIT=docker.service` would on a real host.
"""

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

START_TIMEOUT_SECONDS = 90.0
STOP_TIMEOUT_SECONDS = 30.0
POLL_SECONDS = 0.05
FIXED_FLAGS = ("--iptables=false", "--bridge=none", "--storage-driver=vfs")
DEFAULT_DOCKERD = "/usr/sbin/dockerd"
DEFAULT_DOCKER_CLI = "/usr/bin/docker"


class RealDocker:
    """The docker unit of one host, played by a real dockerd."""

    def __init__(self, host) -> None:
        config = host.info.get("real_docker") or {}
        self.host = host
        self.dockerd = config.get("dockerd", DEFAULT_DOCKERD)
        self.cli = config.get("docker", DEFAULT_DOCKER_CLI)
        self.flags = host.docker_flags
        self.run_dir = Path(config["run_dir"])
        self.socket = self.run_dir / "docker.sock"
        self.exec_root = self.run_dir / "exec"
        self.pidfile = self.run_dir / "dockerd.pid"
        self.empty_config = self.run_dir / "no-daemon.json"
        self.data_root = host.root / "var" / "lib" / "docker"
        self.journal = host.meta_dir / "journal" / "docker.log"
        self.state_file = host.meta_dir / "dockerd.json"

    @staticmethod
    def configured(host) -> bool:
        return bool(host.info.get("real_docker"))

    # --- what the unit would run ---------------------------------------------------------

    def argv(self) -> list:
        config = self.host.daemon_json()
        if not config.exists():
            self.empty_config.write_text("{}\n")
            config = self.empty_config
        return [
            self.dockerd,
            "--config-file", str(config),
            "--data-root", str(self.data_root),
            "--exec-root", str(self.exec_root),
            "--pidfile", str(self.pidfile),
            "-H", "unix://" + str(self.socket),
            *FIXED_FLAGS,
            *self.flags,
        ]  # fmt: skip

    def environ(self) -> dict:
        """A clean environment; TMPDIR keeps containerd's stack dumps inside `run_dir`."""
        tmp = self.run_dir / "tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        return {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "TMPDIR": str(tmp), "HOME": str(tmp)}

    def cli_environ(self, environ: dict) -> dict:
        """The real CLI's environment: this host's socket, its own (empty) CLI config."""
        cli_config = self.run_dir / "cli-config"
        cli_config.mkdir(parents=True, exist_ok=True)
        return dict(
            environ, DOCKER_HOST="unix://" + str(self.socket), DOCKER_CONFIG=str(cli_config)
        )

    # --- systemd's verbs -----------------------------------------------------------------

    def start(self):
        """Start dockerd and wait until it answers; None when active, else dockerd's words."""
        if self.main_pid() is not None:
            return None
        self.journal.parent.mkdir(parents=True, exist_ok=True)
        self.data_root.mkdir(parents=True, exist_ok=True)
        self.remove_stale_pidfiles()
        with open(str(self.journal), "ab") as journal:
            process = subprocess.Popen(
                self.argv(),
                stdin=subprocess.DEVNULL,
                stdout=journal,
                stderr=subprocess.STDOUT,
                cwd=str(self.run_dir),
                env=self.environ(),
                start_new_session=True,
            )
        self.record({"pid": process.pid, "state": "activating", "started": time.time()})
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            code = process.poll()
            if code is not None:
                self.record({"pid": None, "state": "failed", "exit_code": code})
                return f"dockerd exited with status {code}: {self.last_journal_line()}"
            if self.ping():
                self.record({"pid": process.pid, "state": "active", "started": time.time()})
                return None
            time.sleep(POLL_SECONDS)
        self.kill_everything()
        self.record({"pid": None, "state": "failed", "exit_code": None})
        return f"dockerd did not answer on {self.socket} within {START_TIMEOUT_SECONDS:.0f} s"

    def stop(self) -> None:
        """SIGTERM and wait, as systemd's stop does (SIGKILL after the timeout).

        What a dockerd that died leaves behind goes too: its own containerd and the pidfiles
        (a real host runs containerd as a unit of its own; here dockerd starts one, and a new
        dockerd takes the PID in a stale containerd.pid for a running containerd as long as
        that PID exists, even as a zombie not yet reaped, then times out waiting for it)."""
        pid = self.main_pid()
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
            if not wait_gone(pid, STOP_TIMEOUT_SECONDS):
                self.kill_everything()
        kill_processes_mentioning(str(self.run_dir))
        self.remove_stale_pidfiles()
        self.record({"pid": None, "state": "inactive"})

    def state(self) -> str:
        """active | activating | failed | inactive; a dockerd that died is `failed`."""
        record = self.read_record()
        state = record.get("state", "inactive")
        if state in ("active", "activating") and self.main_pid() is None:
            self.record({"pid": None, "state": "failed", "exit_code": None})
            return "failed"
        return state

    def remove_stale_pidfiles(self) -> None:
        for pidfile in (self.pidfile, self.exec_root / "containerd" / "containerd.pid"):
            try:
                pid = int(pidfile.read_text().strip() or 0)
            except (OSError, ValueError):
                continue
            if not pid or not alive(pid):
                with contextlib.suppress(FileNotFoundError):
                    pidfile.unlink()

    def reset_failed(self) -> None:
        """`systemctl reset-failed`: a failed unit becomes inactive."""
        if self.state() == "failed":
            self.record({"pid": None, "state": "inactive"})

    # --- bookkeeping ---------------------------------------------------------------------

    def read_record(self) -> dict:
        try:
            return json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return {}

    def record(self, record: dict) -> None:
        tmp = self.state_file.with_name(f".{self.state_file.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(record))
        os.replace(str(tmp), str(self.state_file))

    def main_pid(self):
        """The recorded dockerd's PID if that process still runs dockerd, else None."""
        pid = self.read_record().get("pid")
        return pid if pid and runs(pid, self.dockerd) else None

    def ping(self) -> bool:
        """`GET /_ping` on the socket answers `OK` once the daemon serves its API."""
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
                conn.settimeout(2.0)
                conn.connect(str(self.socket))
                conn.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
                answer = b""
                while True:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    answer += chunk
        except OSError:
            return False
        return answer.startswith(b"HTTP/1.") and b" 200 " in answer.split(b"\r\n", 1)[0]

    def last_journal_line(self) -> str:
        try:
            lines = self.journal.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return lines[-1] if lines else ""

    def kill_everything(self) -> None:
        """SIGKILL every process started for this host (dockerd, containerd, shims)."""
        kill_processes_mentioning(str(self.run_dir))
        pid = self.main_pid()
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
            wait_gone(pid, STOP_TIMEOUT_SECONDS)


def runs(pid: int, program: str) -> bool:
    """Whether `pid` is a live (not zombie) process whose argv[0] is `program`."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0", 1)[0].decode()
    except (OSError, UnicodeDecodeError):
        return False
    state = stat.rsplit(")", 1)[-1].split()[0]
    return state not in ("Z", "X") and argv0 == program


def wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(POLL_SECONDS)
    return not alive(pid)


def alive(pid: int) -> bool:
    """Whether `pid` runs; a zombie child of ours (the test that started dockerd) is reaped."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


def processes_mentioning(text: str) -> list:
    """PIDs whose command line contains `text` (our unique run_dir), never our own."""
    found = []
    needle = text.encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle in (entry / "cmdline").read_bytes() and alive(int(entry.name)):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def kill_processes_mentioning(text: str) -> list:
    pids = processes_mentioning(text)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    for pid in pids:
        wait_gone(pid, STOP_TIMEOUT_SECONDS)
    return pids
