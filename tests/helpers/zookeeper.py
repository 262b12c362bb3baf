"""A real ZooKeeper server for tests, started from Debian's `zookeeper` package.

Tests of the ZooKeeper store, leader lock and failover need the real server's behaviour
(sessions, ephemeral nodes, ACLs, restarts), so nothing here is faked: this runs
`org.apache.zookeeper.server.ZooKeeperServerMain` from /usr/share/java on a free loopback
port with its own data directory.

    server = ZooKeeperServer()
    server.start()          # returns once the server accepts sessions
    server.hosts            # "127.0.0.1:PORT"
    server.restart()        # same data directory, same port: sessions and data survive
    server.stop()
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

JAVA_DIR = Path("/usr/share/java")
# zookeeper.jar's manifest Class-Path names its own dependencies (jute, netty, slf4j-api, …);
# slf4j-simple gives the server a logger so that its log file says what went wrong.
CLASSPATH = [JAVA_DIR / "zookeeper.jar", JAVA_DIR / "slf4j-simple.jar"]
MAIN_CLASS = "org.apache.zookeeper.server.ZooKeeperServerMain"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now, for a server we are about to start."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def is_serving(host: str, port: int) -> bool:
    """True when the server reports a mode through `srvr`.

    `ruok` is answered as soon as the port listens, before the server accepts sessions;
    `srvr` says "not currently serving requests" until it does.
    """
    try:
        with socket.create_connection((host, port), timeout=1.0) as sock:
            sock.sendall(b"srvr")
            reply = b""
            while chunk := sock.recv(4096):
                reply += chunk
    except OSError:
        return False
    return b"Mode:" in reply


class ZooKeeperServer:
    """One standalone ZooKeeper server on loopback, with a short tick for fast sessions.

    `tick_ms` bounds the session timeouts clients may ask for: from 2 ticks up to
    `max_session_ms`. `force_sync=False` skips the fsync of the transaction log on each write,
    which tests can afford and which keeps write-heavy tests fast.
    """

    def __init__(
        self,
        workdir: str | os.PathLike | None = None,
        tick_ms: int = 200,
        max_session_ms: int = 60_000,
        force_sync: bool = False,
    ) -> None:
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="zookeeper-"))
        self.host = "127.0.0.1"
        self.port = free_port(self.host)
        self.tick_ms = tick_ms
        self.max_session_ms = max_session_ms
        self.force_sync = force_sync
        self._process: subprocess.Popen | None = None

    @property
    def hosts(self) -> str:
        """Connection string for kazoo and Mesos: "127.0.0.1:PORT"."""
        return f"{self.host}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "zookeeper.log"

    def start(self, timeout: float = 30.0) -> None:
        """Start the server and return once it serves clients."""
        config = self._write_config()
        with open(self.log_path, "ab") as log:
            self._process = subprocess.Popen(
                ["java", "-Xmx256m", "-cp", ":".join(map(str, CLASSPATH)), MAIN_CLASS, config],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        self._wait_until_serving(timeout)

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL); the data directory stays for restart()."""
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None

    def kill(self) -> None:
        """Stop the server abruptly, as a crash would."""
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None

    def restart(self, timeout: float = 30.0) -> None:
        """Stop and start again with the same data directory and port."""
        self.stop()
        self.start(timeout)

    def cleanup(self) -> None:
        """Stop the server and remove the data directory if this helper created it."""
        self.stop()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> ZooKeeperServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.cleanup()

    def _write_config(self) -> str:
        data_dir = self.workdir / "data"
        data_dir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "zoo.cfg"
        config.write_text(
            "\n".join(
                [
                    f"tickTime={self.tick_ms}",
                    f"dataDir={data_dir}",
                    f"clientPort={self.port}",
                    f"clientPortAddress={self.host}",
                    f"minSessionTimeout={2 * self.tick_ms}",
                    f"maxSessionTimeout={self.max_session_ms}",
                    f"forceSync={'yes' if self.force_sync else 'no'}",
                    "admin.enableServer=false",
                    "4lw.commands.whitelist=srvr",
                    "",
                ]
            )
        )
        return str(config)

    def _wait_until_serving(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"ZooKeeper exited with {self._process.returncode}; see {self.log_path}"
                )
            if is_serving(self.host, self.port):
                return
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"ZooKeeper did not serve within {timeout}s; see {self.log_path}")
