"""Marathon and a Mesos agent's UCR, standing in for a DC/OS cluster's, for one rendered app.

No Marathon or Mesos agent can run on a test machine, so this does what they do for the
package's app, and only that:

- the Mesos fetcher: each `fetch` URI is downloaded into a fresh sandbox under its own file
  name (`extract: false`, so not unpacked);
- the task's environment: the app's `env`, then Marathon's (`PORT0`, `PORT`, `PORTS`,
  `PORT_<NAME>`, `HOST`, `MARATHON_APP_ID`, `MARATHON_APP_VERSION`, `MARATHON_APP_LABELS`,
  `MARATHON_APP_LABEL_<NAME>`, `MARATHON_APP_DOCKER_IMAGE`, `MESOS_TASK_ID`) and Mesos'
  (`MESOS_SANDBOX`) — mesosphere/marathon `docs/docs/task-environment-vars.md`;
- the command: `/bin/sh -c <cmd>` in the sandbox (Marathon's `cmd` is "wrapped by Mesos via
  `/bin/sh -c`", Marathon's `AppDefinition.json`), with the PATH of the Python image the app
  names (`/usr/local/bin:/usr/bin:/bin`; here Debian's own `/usr/bin/python3` 3.11, the
  image's Python minor version): no virtualenv, so the zipapp must bring everything;
- a kill: SIGTERM, then SIGKILL after `taskKillGracePeriodSeconds`;
- the health check: MESOS_HTTP on `127.0.0.1:$PORT0`, 200–399 passing
  (`docs/docs/health-checks.md`).

What it cannot be is a container: the task sees this machine's files, not the image's.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import requests

IMAGE_PATH = "/usr/local/bin:/usr/bin:/bin"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Task:
    task_id: str
    process: subprocess.Popen
    port: int
    sandbox: Path
    env: dict[str, str]
    log: Path
    killed: bool = field(default=False)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def health(self) -> requests.Response | None:
        """The MESOS_HTTP check's answer, or None when nothing answers."""
        try:
            return requests.get(f"http://127.0.0.1:{self.port}/v1/health", timeout=5)
        except requests.RequestException:
            return None

    def passing(self) -> bool:
        answer = self.health()
        return answer is not None and 200 <= answer.status_code < 400


class MarathonStandIn:
    """One app: `start()` launches a task of it, `kill(task)` ends one as Mesos would."""

    def __init__(
        self,
        app: dict,
        workdir: Path,
        host: str = "127.0.0.1",
        secret_store: dict[str, str] | None = None,
    ) -> None:
        """`secret_store`: DC/OS secret path -> value, for env `{"secret": name}` entries."""
        self.app, self.workdir, self.host = app, workdir, host
        self.secret_store = secret_store or {}
        self.version = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
        self.tasks: list[Task] = []

    def update_env(self, **env: str) -> None:
        """A PUT of the app with more environment (what Cosmos does to uninstall)."""
        self.app = {**self.app, "env": {**self.app["env"], **env}}
        self.version = time.strftime("%Y-%m-%dT%H:%M:%S.001Z", time.gmtime())

    def start(self) -> Task:
        app_name = self.app["id"].strip("/").replace("/", "_")
        task_id = f"{app_name}.{uuid.uuid4()}"
        sandbox = self.workdir / task_id
        sandbox.mkdir(parents=True)
        for item in self.app.get("fetch", []):
            self._fetch(item, sandbox)
        port = free_port()
        env = {"PATH": IMAGE_PATH, "HOME": str(sandbox), "LANG": "C.UTF-8"}
        env.update(self._app_env())
        env.update(self._marathon_env(task_id, port))
        env["MESOS_SANDBOX"] = str(sandbox)
        log = sandbox / "stdout+stderr"
        with log.open("wb") as out:
            process = subprocess.Popen(
                ["/bin/sh", "-c", self.app["cmd"]],
                cwd=sandbox,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        task = Task(task_id, process, port, sandbox, env, log)
        self.tasks.append(task)
        return task

    def kill(self, task: Task) -> int:
        """SIGTERM, then SIGKILL after the app's grace period; the exit code."""
        task.killed = True
        if task.process.poll() is None:
            os.killpg(task.process.pid, signal.SIGTERM)
            try:
                return task.process.wait(self.app.get("taskKillGracePeriodSeconds", 3))
            except subprocess.TimeoutExpired:
                os.killpg(task.process.pid, signal.SIGKILL)
        return task.process.wait(10)

    def stop_all(self) -> None:
        for task in self.tasks:
            if task.process.poll() is None:
                self.kill(task)

    def _app_env(self) -> dict[str, str]:
        """The app's `env`; an `{"secret": name}` value is the secret `app.secrets[name].source`
        names (Marathon's `AppDefinition.json`: env values are a string or a secret ref)."""
        env = {}
        for name, value in self.app.get("env", {}).items():
            if isinstance(value, dict):
                source = self.app["secrets"][value["secret"]]["source"]
                value = self.secret_store[source]
            env[name] = value
        return env

    def _fetch(self, item: dict, sandbox: Path) -> None:
        name = Path(urllib.parse.urlsplit(item["uri"]).path).name
        urllib.request.urlretrieve(item["uri"], sandbox / name)  # noqa: S310 (test server)
        if item.get("executable"):
            (sandbox / name).chmod(0o755)

    def _marathon_env(self, task_id: str, port: int) -> dict[str, str]:
        env = {
            "HOST": self.host,
            "PORT": str(port),
            "PORT0": str(port),
            "PORTS": str(port),
            "MARATHON_APP_ID": self.app["id"],
            "MARATHON_APP_VERSION": self.version,
            "MARATHON_APP_DOCKER_IMAGE": self.app["container"]["docker"]["image"],
            "MESOS_TASK_ID": task_id,
        }
        for definition in self.app.get("portDefinitions", []):
            if definition.get("name"):
                env[f"PORT_{definition['name'].upper()}"] = str(port)
        labels = self.app.get("labels", {})
        env["MARATHON_APP_LABELS"] = " ".join(labels)
        for name, value in labels.items():
            if len(name) <= 512 and len(value) <= 512:
                env[f"MARATHON_APP_LABEL_{re.sub('[^A-Za-z0-9_]', '_', name)}"] = value
        return env
