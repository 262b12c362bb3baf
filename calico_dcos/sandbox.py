"""The end of a failed task's sandbox `stderr`, read from its agent: the words an operator
needs when a command fails without the installer saying why (`python3: not found`, etcd's
`bind: address already in use`, calico-node crashing), where Mesos' command executor says
only "Command exited with status 1" (apache/mesos src/launcher/executor.cpp, `reaped`).
Also the fetcher program's "Failed to fetch '<uri>': <why>" (src/launcher/fetcher.cpp,
`main`, which writes to this `stderr`), where the agent's TASK_FAILED says only "Failed to
fetch all URIs for container '<id>': exited with status 1" (src/slave/containerizer/
fetcher.cpp, `FetcherProcess::run`): the run directory is attached when the agent adds the
executor (src/slave/slave.cpp at apache/mesos c1b42f7, `Framework::addExecutor`), before its
container is launched and its URIs fetched, so it is there for a task that never ran.

Mesos' own way, as its web UI and `dcos task log` do it:

- Where the agent is: each offer's `url` (mesos.proto `Offer.url`: `scheme`, `address`
  {`hostname`, `ip`, `port`}, `path`), which the master builds from the agent's libprocess
  address (apache/mesos src/master/master.cpp, `Master::offer`: scheme "http", the agent
  pid's ip and port, path "/slave(1)"), remembered per agent ID (`AgentFiles.remember`);
  after each subscription also from the master's `/master/slaves` (each of `slaves` has its
  `pid`, `slave(1)@<ip>:<port>`: src/master/http.cpp `SlaveWriter`, in
  src/master/readonly_handler.cpp from Mesos 1.8), so that an agent whose task fails before
  it offered anything to a restarted scheduler is known too.
- Which file: the agent attaches each executor's latest run directory at the virtual path
  `/frameworks/<framework_id>/executors/<executor_id>/runs/latest` (src/slave/paths.cpp,
  `getExecutorVirtualPath`; attached in src/slave/slave.cpp, `Framework::launchExecutor`,
  and kept until the sandbox is garbage collected), and a command task's executor ID is its
  task ID (src/slave/slave.cpp, `Slave::getExecutorInfo`: "Command executors share the same
  id as the task"). The command's stderr is `stderr` in that directory.
- How: `GET /files/read?path=…&offset=…&length=…` on the agent (src/files/files.cpp,
  `FilesProcess::__read`): `offset=-1` answers only the file's size as `{"data": "",
  "offset": <size>}`; otherwise `{"data": <bytes from offset>, "offset": <offset>}`, at most
  16 pages; 404 for a path not attached, 400 for a bad one.
- Strict mode: agents need the same `Authorization` the scheduler gives the master ("Most
  HTTP requests sent to DC/OS components require authentication proof … internally between
  DC/OS components", DC/OS 2.1 "Permissions Reference"; the Mesos agent permissions are
  enforced in strict mode only, DC/OS "Mesos master and agent permissions"), and speak TLS,
  verified against the cluster's CA as the master is, though the offer's scheme says "http"
  (the master always writes "http": master.cpp, "TODO(bmahler): Set 'https' if only
  'https' is supported"). The service account needs `dcos:mesos:agent:sandbox:app_id` read
  ("Controls access to the Mesos sandbox", DC/OS "Permissions Reference"). A 401 is the
  agent refusing the token (it expired: DC/OS tokens live five days by default): the token
  is dropped and the read sent once more with a fresh login, as for the master's operator
  API (`dcos_auth.again_after_401`, DC/OS' "Post-Expiration Renewal"). A read that cannot
  get a token (the IAM unreachable and the token expired, or the login refused) is given up
  and logged; it never fails the scheduler (the driver's own calls decide that).

Never in the way: requests go out from one worker thread fed by a bounded queue (a full
queue drops the request), with short timeouts; whatever goes wrong (agent unreachable,
401/404, a timeout, an answer that is not the JSON above) is logged and the step keeps the
reason it has. What is kept is bounded (`MAX_LINES` lines of `MAX_LINE_CHARS`), free of
control characters, without the command executor's own log lines, and with passwords in
URLs redacted (`options.redact_text`), before it reaches the plan.
"""

from __future__ import annotations

import json
import logging
import queue
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING
from urllib.parse import urlencode

import urllib3

from calico_dcos.dcos_auth import AuthError, again_after_401
from calico_dcos.options import redact_text

if TYPE_CHECKING:
    from calico_dcos.dcos_auth import TokenSource

LOG = logging.getLogger("calico_dcos.sandbox")
TAIL_BYTES = 4096  # read this much of the end of `stderr`
MAX_LINES = 3
MAX_LINE_CHARS = 240
MAX_ANSWER_BYTES = 64 * 1024  # a JSON answer for TAIL_BYTES, escaped, is far smaller
MAX_QUEUED = 64
CONNECT_TIMEOUT_SECONDS = 2.0
READ_TIMEOUT_SECONDS = 3.0
# glog's line prefix, `Lmmdd hh:mm:ss.uuuuuu threadid file:line] ` (google/glog
# src/logging.cc, `LogMessage::Init`): the command executor logs INFO lines to the same
# stderr ("Command exited with status 1 (pid: 42)", executor.cpp `reaped`); they say nothing
# the update does not, so they are left out.
_GLOG_INFO = re.compile(r"^I\d{4} \d\d:\d\d:\d\d\.\d{6}\s+\d+ [^\s\]]+:\d+\] ")
_PID = re.compile(r"^[^@\s]+@(?P<ip>[0-9.]+):(?P<port>\d{1,5})$")  # libprocess UPID, IPv4
_CONTROL = re.compile(r"\x1b\[[0-9;]*[A-Za-z]|[\x00-\x08\x0b-\x1f\x7f]")  # colours first

# How to reach an agent: (scheme, "host:port"), from its offers.
Address = tuple[str, str]
# What a request needs from the driver at the time it is made: the `Authorization` value
# (Basic, or strict mode's `token=…`; None without credentials) and whether to use TLS.
Credential = Callable[[], tuple[str | None, bool]]


class ReadFailed(Exception):
    """The agent's answer was not the file (unreachable, an HTTP error, not the JSON)."""


def offer_address(offer: Mapping) -> Address | None:
    """(scheme, "host:port") of the offer's agent from `Offer.url`, or None if it has none
    that is usable: the IP (what the master reaches the agent at), else the hostname."""
    url = offer.get("url")
    if not isinstance(url, Mapping) or not isinstance(url.get("address"), Mapping):
        return None
    address = url["address"]
    host = address.get("ip") or address.get("hostname")
    port = address.get("port")
    if not isinstance(host, str) or not host or isinstance(port, bool):
        return None
    if not isinstance(port, int) or not 0 < port < 65536 or any(c in host for c in "/@?# "):
        return None
    scheme = url.get("scheme") if url.get("scheme") in ("http", "https") else "http"
    return scheme, f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def stderr_path(framework_id: str, task_id: str) -> str:
    """The virtual path of a command task's `stderr` (its executor ID is its task ID)."""
    return f"/frameworks/{framework_id}/executors/{task_id}/runs/latest/stderr"


def last_words(text: str, partial_first_line: bool = False) -> str:
    """The last `MAX_LINES` lines worth showing, joined with " | ", each at most
    `MAX_LINE_CHARS`, control characters and the executor's glog INFO lines left out,
    passwords in URLs redacted. `partial_first_line`: the text starts mid-line (dropped)."""
    lines = text.splitlines()
    if partial_first_line and lines:
        lines = lines[1:]
    kept: list[str] = []
    for line in reversed(lines):
        line = _CONTROL.sub("", line).strip()
        if not line or _GLOG_INFO.match(line):
            continue
        if len(line) > MAX_LINE_CHARS:
            line = line[: MAX_LINE_CHARS - 1] + "…"
        kept.append(line)
        if len(kept) == MAX_LINES:
            break
    return redact_text(" | ".join(reversed(kept)))


class AgentFiles:
    """Reads the end of failed tasks' `stderr` on one worker thread; `deliver(task_id,
    words, message)` is called with what it found (never with nothing). `credential` is
    read for each request; `tokens` (strict mode: the `TokenSource` behind `credential`'s
    `token=…`) is told when an agent refuses the token, so that the next request logs in
    again."""

    def __init__(
        self,
        deliver: Callable[[str, str, str], None],
        credential: Credential,
        ca_bundle: str = "",
        tokens: TokenSource | None = None,
        max_queued: int = MAX_QUEUED,
    ) -> None:
        self._deliver = deliver
        self._credential = credential
        self._ca_bundle = ca_bundle
        self._tokens = tokens
        self._agents: dict[str, Address] = {}
        self._queue: queue.Queue[tuple[str, str, str, str] | None] = queue.Queue(max_queued)
        self.read = 0
        self.failed = 0
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name="agent-files", daemon=True)
        self._thread.start()

    def remember(self, offers: Iterable[Mapping]) -> None:
        """Keep each offer's agent address (pymesos' event thread: cheap, never raises)."""
        for offer in offers:
            try:
                agent_id = offer["agent_id"]["value"]
                address = offer_address(offer)
            except (KeyError, TypeError):
                continue
            if address is not None and self._agents.get(agent_id) != address:
                self._agents[agent_id] = address

    def remember_slaves(self, slaves: object) -> None:
        """Keep the address of each agent of `/master/slaves`' `slaves` not known from its
        offers (`"pid": "slave(1)@10.0.0.7:5051"`); anything malformed is skipped."""
        if not isinstance(slaves, list):
            return
        for slave in slaves:
            if not isinstance(slave, Mapping) or not isinstance(slave.get("id"), str):
                continue
            found = (
                _PID.match(slave.get("pid") or "") if isinstance(slave.get("pid"), str) else None
            )
            if found and 0 < int(found["port"]) < 65536 and slave["id"] not in self._agents:
                self._agents[slave["id"]] = ("http", f"{found['ip']}:{found['port']}")

    def request(self, task_id: str, agent_id: str, framework_id: str, message: str) -> None:
        """Queue a read of the task's `stderr`; dropped when the queue is full."""
        try:
            self._queue.put_nowait((task_id, agent_id, framework_id, message))
        except queue.Full:
            self.dropped += 1
            LOG.info("not reading the stderr of %s: %d reads queued", task_id, MAX_QUEUED)

    def close(self, timeout: float) -> None:
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            return
        self._thread.join(timeout)

    def _run(self) -> None:
        pool = urllib3.PoolManager(
            num_pools=16,
            maxsize=1,
            block=False,
            retries=False,
            timeout=urllib3.Timeout(connect=CONNECT_TIMEOUT_SECONDS, read=READ_TIMEOUT_SECONDS),
            ca_certs=self._ca_bundle or None,
        )
        try:
            while (item := self._queue.get()) is not None:
                self._one(pool, *item)
        finally:
            pool.clear()

    def _one(
        self, pool: urllib3.PoolManager, task_id: str, agent_id: str, framework_id: str, msg: str
    ) -> None:
        address = self._agents.get(agent_id)
        if address is None or not framework_id:
            self.failed += 1
            LOG.info(
                "cannot read the stderr of %s: no address known for agent %s", task_id, agent_id
            )
            return
        try:
            words = self.tail(pool, address, stderr_path(framework_id, task_id))
        except AuthError as exc:  # strict mode, no token to be had: this read only gives up
            self.failed += 1
            LOG.warning("not reading the stderr of %s: strict mode: %s", task_id, exc)
            return
        except Exception as exc:  # noqa: BLE001 (nothing from the network may stop the reads)
            self.failed += 1
            LOG.info("cannot read the stderr of %s from %s: %s", task_id, address[1], exc)
            return
        self.read += 1
        if words:
            self._deliver(task_id, words, msg)

    def tail(self, pool: urllib3.PoolManager, address: Address, path: str) -> str:
        """`last_words` of the last `TAIL_BYTES` of the file at `path` on the agent."""
        size = self._files_read(pool, address, path, -1, None)[1]
        if size == 0:
            return ""
        start = max(0, size - TAIL_BYTES)
        data = self._files_read(pool, address, path, start, size - start)[0]
        return last_words(data, partial_first_line=start > 0)

    def _files_read(
        self,
        pool: urllib3.PoolManager,
        address: Address,
        path: str,
        offset: int,
        length: int | None,
    ) -> tuple[str, int]:
        """One `/files/read`: (data, offset), or ReadFailed. Strict mode: a 401 (the token
        expired) drops the token and the read is sent once more (`again_after_401`)."""
        query = {"path": path, "offset": offset}
        if length is not None:
            query["length"] = length

        def ask() -> tuple[int, bytes]:
            authorization, tls = self._credential()  # read anew: after a 401, a new login
            scheme = "https" if tls else address[0]
            headers = {"Accept": "application/json"}
            if authorization:
                headers["Authorization"] = authorization
            url = f"{scheme}://{address[1]}/files/read?{urlencode(query)}"
            response = pool.request("GET", url, headers=headers, preload_content=False)
            try:
                return response.status, response.read(MAX_ANSWER_BYTES + 1)
            finally:
                response.release_conn()

        where = f"the agent at {address[1]}"
        status, body = again_after_401(
            self._tokens, where, "/files/read", ask, lambda answer: answer[0]
        )
        if status != 200:
            raise ReadFailed(f"HTTP {status}")
        if len(body) > MAX_ANSWER_BYTES:
            raise ReadFailed(f"an answer of more than {MAX_ANSWER_BYTES} bytes")
        try:
            doc = json.loads(body)
        except ValueError:
            raise ReadFailed("an answer that is not JSON") from None
        data, at = (doc.get("data"), doc.get("offset")) if isinstance(doc, dict) else (None, None)
        if not isinstance(data, str) or not isinstance(at, int) or isinstance(at, bool) or at < 0:
            raise ReadFailed("an answer without a string 'data' and an 'offset' ≥ 0")
        return data, at
