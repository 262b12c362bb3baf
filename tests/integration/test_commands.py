"""`calico-dcos run` and `calico-dcos local` as a user runs them: separate processes."""

import contextlib
import io
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from calico_dcos.store import open_store
from calico_dcos.store.file import DATABASE_NAME

CLI = [str(Path(sys.executable).with_name("calico-dcos"))]
# `local` waits its own rollout.stability_seconds (1 s) after each restart; no test of it
# measures that wait, so their runs wait 0.2 s (CALICO_* variables override local's options).
LOCAL_FAST = {"CALICO_ROLLOUT_STABILITY_SECONDS": "0.2"}


def cli(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*CLI, *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_invalid_options_stop_run_before_it_registers_naming_the_option(tmp_path):
    options = tmp_path / "options.yaml"
    options.write_text("rollout:\n  max_concurrent_restarts: 0\n")

    result = cli("run", "--options", str(options), "--master", "127.0.0.1:1", timeout=30)

    assert result.returncode == 2
    assert "rollout.max_concurrent_restarts" in result.stderr


# What `calico-dcos run` needs only once its options are valid: the API server, the Mesos
# driver, the HTTP client, the scheduler (most of a second to import on a busy machine).
SERVICE_MODULES = ("aiohttp", "pymesos", "requests", "calico_dcos.service")


@pytest.mark.parametrize("command", ["run", "uninstall"])
def test_an_invalid_option_is_reported_before_the_service_is_imported(tmp_path, command):
    """A wrong option used to wait for the whole service's imports before being reported
    (at load 5-6: run 0.9 s, uninstall 0.65 s; 0.3 s now). `-X importtime` lists every module
    the process imported, on stderr, with the error line after them."""
    options = tmp_path / "options.json"
    options.write_text('{"rollout": {"max_concurrent_restarts": "lots"}}')

    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "calico_dcos.cli", command, "--options",
         str(options), "--master", "127.0.0.1:1"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip

    imported = {
        line.split("|")[-1].strip()
        for line in result.stderr.splitlines()
        if line.startswith("import time:")
    }
    errors = [line for line in result.stderr.splitlines() if not line.startswith("import time:")]
    assert result.returncode == 2
    assert len(errors) == 1
    assert errors[0].startswith("invalid option rollout.max_concurrent_restarts: 'lots' is not")
    assert "calico_dcos.options" in imported  # the listing is read right
    assert not [m for m in imported if m.split(".")[0] in SERVICE_MODULES or m in SERVICE_MODULES]


def test_an_invalid_environment_override_stops_run_too(tmp_path):
    env = {"CALICO_ETCD_PROXY_MODE": "v4", "CALICO_SERVICE_STATE": str(tmp_path / "state")}

    result = cli("run", "--master", "127.0.0.1:1", env=env, timeout=30)

    assert result.returncode == 2
    assert "etcd.proxy_mode" in result.stderr


CORRUPT = b'{"agent_id": "S1", "steps": '


def test_a_corrupt_state_stops_run_with_one_line_naming_the_file(tmp_path):
    open_store(str(tmp_path / "state")).close()
    database = tmp_path / "state" / DATABASE_NAME
    with contextlib.closing(sqlite3.connect(database)) as db, db:
        db.execute("INSERT INTO agents VALUES ('S1', ?)", (CORRUPT,))
    record = f"{database} (agent S1)"
    env = {"CALICO_SERVICE_STATE": str(tmp_path / "state"), "CALICO_SERVICE_API_PORT": "0"}

    result = cli("run", "--master", "127.0.0.1:1", env=env, timeout=30)

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    reason = [line for line in result.stderr.splitlines() if line.startswith("calico-dcos: ")]
    assert len(reason) == 1 and str(record) in reason[0] and "corrupt" in reason[0]
    with contextlib.closing(sqlite3.connect(database)) as db:
        assert db.execute("SELECT record FROM agents").fetchall() == [
            (b'{"agent_id": "S1", "steps": ',)
        ]


def test_local_converges_three_agents_end_to_end(tmp_path):
    """Also `--keep`: the temp work dir stays (test_local_signals.py's temp-dir test shows
    it removed without; the --workdir runs there and in the strict test show it kept)."""
    env = {"CALICO_ROLLOUT_MAX_CONCURRENT_RESTARTS": "100%", "TMPDIR": str(tmp_path), **LOCAL_FAST}

    result = cli(
        "local", "--agents", "2", "--public-agents", "1", "--keep",
        "--allocation-interval", "0.3", env=env,
    )  # fmt: skip

    assert result.returncode == 0, result.stdout + result.stderr
    assert "stand-ins" in result.stdout
    summary, stopped, workdir = result.stdout.strip().splitlines()[-3:]
    assert summary.startswith("3 of 3 agents done in ")
    # The status page's URL at the top is dead now: the last lines say so, and where --serve is.
    assert stopped.startswith("stopped: the scheduler and its status page http://127.0.0.1:")
    assert "(--serve keeps them up until Ctrl-C)" in stopped
    (kept,) = tmp_path.glob("calico-dcos-local-*")
    assert workdir == f"work dir kept: {kept} (host roots, sandboxes, scheduler.log)"
    for host in ("agent-1", "agent-2", "public-agent-1"):
        assert f"{host:<16} node        done" in result.stdout
    log = (kept / "scheduler.log").read_text()
    # local runs the default profile, as README says, and says where its master is.
    assert "profile calico-2.6 (Calico 2.6.12), the default" in result.stdout
    assert "Mesos master: 127.0.0.1:" in result.stdout
    # --allocation-interval reaches the embedded master, whose GET_FLAGS the scheduler reads
    assert "  allocation interval: 0.3 s (the master's offer rounds" in result.stdout
    learned = [line for line in log.splitlines() if "--allocation_interval" in line]
    assert len(learned) == 1, learned  # said once (by the plan), not also by master_flags
    assert (
        "the master's --allocation_interval is 0.3 s (GET_FLAGS; the plan assumed 1 s)"
        in (learned[0])
    )
    assert "Task was destroyed but it is pending" not in log


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_stops_run_with_zero_and_leaves_the_framework_to_mesos(tmp_path, signum):
    """SIGINT as Ctrl-C in a shell that is not interactive sends it: to a command started
    with SIGINT ignored (pymesos' handler used to raise a TypeError then)."""
    from tests.integration.harness import events, options_env, running_cluster, wait_until

    with running_cluster(agents=1, public_agents=0) as cluster:
        env = options_env(tmp_path / "state", cluster.master_url) | {"PORT0": "0"}
        env["CALICO_SERVICE_API_PORT"] = str(free_port())
        run = subprocess.Popen(
            [*CLI, "run"], env={**os.environ, **env}, text=True, stderr=subprocess.PIPE,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
        )  # fmt: skip
        try:
            wait_until(lambda: events(cluster.timeline(), "launch"), 30, "a launch")
        finally:
            run.send_signal(signum)
            _, stderr = run.communicate(timeout=30)
            code = run.returncode
        timeline = cluster.timeline()

    assert code == 0, stderr
    assert "Traceback" not in stderr
    # What the operator may do next: resume (run again) or remove (uninstall).
    assert (
        f"stopped ({signal.Signals(signum).name}): the framework stays registered in Mesos and "
        "its tasks keep running for up to 60 s (service.failover_timeout_seconds); run "
        "`calico-dcos run` again with the same options to resume, or `calico-dcos uninstall` "
        "with them to remove it"
    ) in stderr  # options_env's failover timeout
    assert not events(timeline, "framework_removed")
    assert "TEARDOWN" not in {e.get("type") for e in events(timeline, "call")}


def test_run_with_sdk_uninstall_tears_down_wipes_and_stays_up_healthy(tmp_path):
    from tests.integration.harness import events, options_env, running_cluster, wait_until

    with running_cluster(agents=1, public_agents=0) as cluster:
        port = free_port()
        env = options_env(tmp_path / "state", cluster.master_url) | {"SDK_UNINSTALL": "true"}
        env["CALICO_SERVICE_API_PORT"] = str(port)
        run = subprocess.Popen([*CLI, "run"], env={**os.environ, **env}, text=True)
        try:
            wait_until(lambda: events(cluster.timeline(), "framework_removed"), 30, "teardown")
            wait_until(lambda: _get(port, "/v1/plan").status_code == 200, 10, "a COMPLETE plan")
            wait_until(lambda: _get(port, "/v1/health").status_code == 200, 10, "healthy")
            plan = _get(port, "/v1/plan").json()
            still_up = run.poll() is None
        finally:
            run.send_signal(signal.SIGTERM)
            code = run.wait(30)

    assert plan["status"] == "COMPLETE" and still_up and code == 0
    store = open_store(str(tmp_path / "state"))
    assert store.get_framework_id() is None and store.load_agents() == {}


def _get(port: int, path: str):
    import requests

    try:
        return requests.get(f"http://127.0.0.1:{port}{path}", timeout=5)
    except requests.ConnectionError:
        return requests.Response()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _Scheduler:
    """Just the read interface `Progress` uses, with a step that moves on at each wait."""

    def __init__(self, statuses: list[str]) -> None:
        self.statuses = statuses
        self.status = statuses[0]
        self.failure = None
        self.plan = self

    @property
    def complete(self) -> bool:
        return self.status == "COMPLETE"

    def wait(self, timeout: float) -> bool:
        self.status = self.statuses.pop(0) if self.statuses else self.status
        return False

    def plan_view(self) -> dict:
        steps = [{"id": "t", "name": "cni", "status": self.status, "message": ""}]
        done = "COMPLETE" if self.complete else "IN_PROGRESS"
        return {"phases": [{"id": "S1", "name": "agent-1", "status": done, "steps": steps}]}

    def warnings(self) -> list[str]:
        return []

    def lost_at(self, agent_id: str) -> float | None:
        return None

    def summary(self) -> dict:
        message = f"{int(self.complete)} of 1 agents done"
        return {"message": message, "degraded": False, "problems": [], "restarting": [],
                "budget": 1, "interrupted": False}  # fmt: skip


def test_progress_not_on_a_terminal_prints_each_change_once_then_the_total():
    from calico_dcos.commands.local import Progress

    log = io.StringIO()
    code = Progress(_Scheduler(["STARTED", "STARTED", "COMPLETE"]), log).follow(until_done=True)

    assert code == 0
    lines = log.getvalue().splitlines()
    assert lines[:2] == [
        "agent-1          cni         running",
        "agent-1          cni         done",
    ]
    assert lines[2].startswith("1 of 1 agents done in ")
    assert len(lines) == 3


def test_progress_with_serve_says_where_it_still_serves_and_how_to_stop():
    from calico_dcos.commands.local import Progress

    log = io.StringIO()
    scheduler = _Scheduler(["STARTED", "COMPLETE", "COMPLETE", "COMPLETE"])
    waits = iter([False] * 4 + [True])  # the scheduler stops after a few more reads
    scheduler.wait = lambda timeout, _wait=scheduler.wait: _wait(timeout) or next(waits)
    Progress(scheduler, log).follow(until_done=False, serving="http://127.0.0.1:1234/")

    serving = [line for line in log.getvalue().splitlines() if "still serving" in line]
    assert len(serving) == 1
    assert "http://127.0.0.1:1234/" in serving[0] and "Ctrl-C stops" in serving[0]


def test_local_refuses_no_agents_or_a_negative_count_before_starting_anything(tmp_path):
    for args in (
        ["--agents", "0"], ["--agents", "-2"], ["--public-agents", "-1"],
        ["--allocation-interval", "0"], ["--allocation-interval", "nan"],
    ):  # fmt: skip
        result = cli("local", *args, "--workdir", str(tmp_path / "w"), timeout=30)
        assert result.returncode == 2, result.stdout + result.stderr
        assert "Invalid value for '--" in result.stderr
        assert not (tmp_path / "w").exists()


def test_run_under_marathon_refuses_a_state_directory_inside_the_container(tmp_path):
    env = {"CALICO_SERVICE_STATE": str(tmp_path / "state"), "MARATHON_APP_ID": "/calico"}

    result = cli("run", "--master", "127.0.0.1:1", env=env, timeout=30)

    assert result.returncode == 2
    assert "invalid option service.state:" in result.stderr
    assert "Marathon app /calico" in result.stderr and "zk://" in result.stderr
    assert not (tmp_path / "state").exists()


def test_uninstall_shows_its_plan_line_per_change_then_says_it_is_done(tmp_path):
    from tests.integration.harness import options_env, running_cluster

    with running_cluster(agents=1, public_agents=0) as cluster:
        env = options_env(tmp_path / "state", cluster.master_url)
        env["CALICO_SERVICE_API_PORT"] = str(free_port())
        result = cli("uninstall", env=env, timeout=90)

    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[-1] == "Uninstalled: the framework is torn down and its state deleted"
    assert "deregister-service wipe-state  done  state deleted" in lines
    assert "\x1b" not in result.stdout
    # The master closes the subscription of the framework it tears down: expected, no warning.
    assert "WARNING" not in result.stdout + result.stderr, result.stdout + result.stderr


def test_by_hand_devcluster_writes_the_options_run_needs_and_run_converges_with_them(tmp_path):
    """README's by-hand path: `calico-dcos devcluster` in one terminal, then the `run` command
    it prints in another; nothing else to set. Without etcd (`--no-etcd`): the proxies'
    fixed agent addresses (127.0.1.N:2379) belong to `local`'s own end-to-end test."""
    from tests.integration.harness import wait_until

    devcluster = subprocess.Popen(
        [*CLI, "devcluster", "--agents", "1", "--public-agents", "0", "--port", "0",
         "--no-etcd", "--workdir", str(tmp_path / "dc")],
        stdout=subprocess.PIPE, text=True, env=os.environ,
    )  # fmt: skip
    run = None
    try:
        printed = devcluster_banner(devcluster)
        command = next(line for line in printed if "calico-dcos run --options" in line).split()
        page = next(line for line in printed if "status page:" in line)
        port = int(page.split("http://127.0.0.1:")[1].split("/")[0])
        run = subprocess.Popen([*CLI, *command[1:]], env=os.environ, stderr=subprocess.DEVNULL)
        wait_until(lambda: _get(port, "/v1/plan").status_code == 200, 90, "a complete plan")
    finally:
        for process in (run, devcluster):
            if process is not None:
                process.send_signal(signal.SIGTERM)
        codes = [process.wait(30) for process in (run, devcluster) if process is not None]

    assert codes == [0, 0]
    # As README runs it: `calico-dcos` is not on PATH after `make`, the venv's script is.
    assert command[:3] == [CLI[0], "run", "--options"]


def test_zookeeper_unreachable_stops_run_naming_service_state(tmp_path):
    # connect_timeout=1: the default 15 s would be waited out, proving nothing more.
    env = {"CALICO_SERVICE_STATE": f"zk://127.0.0.1:{free_port()}/calico?connect_timeout=1"}

    result = cli("run", "--master", "127.0.0.1:1", env=env, timeout=60)

    assert result.returncode == 1
    reason = [line for line in result.stderr.splitlines() if line.startswith("calico-dcos: ")]
    assert len(reason) == 1, result.stderr
    assert "cannot reach ZooKeeper" in reason[0] and "check service.state (zk://" in reason[0]


def test_an_api_port_in_use_stops_run_naming_service_api_port(tmp_path):
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {
            "CALICO_SERVICE_STATE": str(tmp_path / "state"),
            "CALICO_SERVICE_API_PORT": str(port),
        }
        result = cli("run", "--master", "127.0.0.1:1", env=env, timeout=60)

    assert result.returncode == 1
    assert f"cannot serve the API on port {port}" in result.stderr
    assert "service.api_port" in result.stderr and "Traceback" not in result.stderr


def test_a_master_that_never_answers_is_named_by_its_option(tmp_path, monkeypatch, caplog):
    import threading

    from calico_dcos import service as service_module
    from calico_dcos.options import load_options
    from tests.integration.harness import options_env, wait_until

    monkeypatch.setattr(service_module, "NOT_SUBSCRIBED_WARNING_SECONDS", 0.5)
    master = f"127.0.0.1:{free_port()}"  # nothing listens there
    options = load_options(None, options_env(tmp_path / "state", master))
    service = service_module.start_service(
        options, host="127.0.0.1", port=0, artifacts_dir=tmp_path / "a"
    )

    def stop_once_warned() -> None:
        wait_until(lambda: "service.master" in caplog.text, 30, "the warning")
        service.scheduler.request_stop()

    previous = signal.getsignal(signal.SIGTERM)
    threading.Thread(target=stop_once_warned, daemon=True).start()
    try:
        code = service_module.wait_for_signal(service, master)
    finally:
        signal.signal(signal.SIGTERM, previous)

    assert code == 0
    warning = next(r.getMessage() for r in caplog.records if "service.master" in r.getMessage())
    assert warning.startswith("not subscribed to a Mesos master after 0 s; still trying")
    assert master in warning


def test_local_strict_converges_over_https_with_a_service_account(tmp_path):
    """Issue 18: `calico-dcos local --strict` shows strict mode on a laptop: the embedded
    master wants HTTPS and a DC/OS token; the scheduler logs in as a service account."""
    env = {"CALICO_ROLLOUT_MAX_CONCURRENT_RESTARTS": "100%", **LOCAL_FAST}

    result = cli(
        "local", "--strict", "--agents", "1", "--public-agents", "1", "--workdir", str(tmp_path),
        env=env,
    )  # fmt: skip

    assert result.returncode == 0, result.stdout + result.stderr
    assert "strict mode: master https://127.0.0.1:" in result.stdout
    lines = result.stdout.strip().splitlines()
    assert lines[-3].startswith("2 of 2 agents done in ")
    assert (
        lines[-1] == f"work dir kept: {tmp_path.resolve()} (host roots, sandboxes, scheduler.log)"
    )
    log = (tmp_path / "scheduler.log").read_text()
    assert "strict mode: logged in as service account 'calico-dcos-principal'" in log
    credential = tmp_path / "service-account.json"
    assert credential.stat().st_mode & 0o077 == 0
    key_line = json.loads(credential.read_text())["private_key"].splitlines()[1]
    assert key_line not in log and key_line not in result.stdout + result.stderr


def test_a_combination_that_cannot_work_is_refused_by_validate_and_at_start_up(tmp_path):
    """Calico 2.6 has no VXLAN (calico_dcos/matrix.py): both paths name the option, the reason
    and its source, before anything registers with Mesos."""
    options = tmp_path / "options.yaml"
    options.write_text("calico:\n  ipv4pool_encapsulation: vxlan\n")

    validated = cli("config", "validate", str(options), timeout=30)
    started = cli("run", "--options", str(options), "--master", "127.0.0.1:1", timeout=30)

    for result in (validated, started):
        assert result.returncode != 0
        said = result.stdout + result.stderr
        assert "calico.ipv4pool_encapsulation" in said and "VXLAN only from v3.7" in said
        assert "source: projectcalico/felix config/config_params.go" in said
    assert started.returncode == 2


def test_local_restarted_on_its_workdir_starts_a_fresh_plan_saying_so(tmp_path):
    """The trial: `local` again on the same --workdir resumed the earlier embedded cluster's
    state, whose agents had the same names under IDs gone with that cluster, and listed
    "agent-1 WAITING" beside "agent-1: gone from the cluster" (`commands.local.
    set_aside_earlier_state`)."""
    args = ("local", "--agents", "1", "--public-agents", "0", "--workdir", str(tmp_path))
    first = cli(*args, env=LOCAL_FAST)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "earlier embedded cluster" not in first.stdout

    again = cli(*args, env=LOCAL_FAST)
    assert again.returncode == 0, again.stdout + again.stderr
    [aside] = tmp_path.glob("state.earlier-*")
    assert (
        f"  state: {tmp_path / 'state'} held the plan of an earlier embedded cluster (1 agent, "
        f"none in this one: every start makes a new cluster, with new agent IDs); moved to "
        f"{aside.name}, and this run starts a fresh plan"
    ) in again.stdout
    assert "1 of 1 agents done" in again.stdout
    assert "gone" not in again.stdout


def test_devcluster_strict_prints_the_master_as_service_master_takes_it(tmp_path):
    """Strict mode talks to the master over TLS only, so the banner's master is the
    https:// URL that `service.master` takes there (a trial pasted the bare host:port and met
    the strict-mode error); the options file it writes says the same."""
    devcluster = subprocess.Popen(
        [*CLI, "devcluster", "--agents", "1", "--public-agents", "0", "--port", "0",
         "--no-etcd", "--strict", "--workdir", str(tmp_path / "dc")],
        stdout=subprocess.PIPE, text=True, env=os.environ,
    )  # fmt: skip
    try:
        printed = devcluster_banner(devcluster)
    finally:
        devcluster.send_signal(signal.SIGTERM)
        code = devcluster.wait(30)

    [banner] = [line for line in printed if line.startswith("Mesos master: ")]
    master = banner.split()[2]
    written = (tmp_path / "dc" / "scheduler-options.yaml").read_text()
    assert code == 0
    assert master.startswith("https://127.0.0.1:")
    assert f"master: {master}" in written


def devcluster_banner(devcluster: subprocess.Popen) -> list[str]:
    """What `calico-dcos devcluster` prints up to its "Ctrl-C here" line."""
    printed: list[str] = []
    while not any(line.startswith("Ctrl-C here") for line in printed):
        line = devcluster.stdout.readline()
        assert line, "".join(printed)
        printed.append(line)
    return printed
