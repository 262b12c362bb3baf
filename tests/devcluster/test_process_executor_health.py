"""Health checks follow Mesos' HealthChecker: grace period, changes only, kill on failures."""

from __future__ import annotations

import asyncio
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from calico_dcos.devcluster.health import HealthJudge, HealthPolicy, Verdict, make_probe
from tests.devcluster.test_process_executor import scenario, task
from tests.helpers.wait import wait_until_async


def judge(**policy) -> HealthJudge:
    return HealthJudge(HealthPolicy(**{"grace": 10.0, "consecutive_failures": 3, **policy}), 0.0)


def test_mesos_defaults_and_task_values():
    assert HealthPolicy.from_health_check({}) == HealthPolicy(15.0, 10.0, 20.0, 3, 10.0)
    given = {
        "delay_seconds": 1,
        "interval_seconds": 2,
        "timeout_seconds": 3,
        "consecutive_failures": 4,
        "grace_period_seconds": 5,
    }
    assert HealthPolicy.from_health_check(given) == HealthPolicy(1, 2, 3, 4, 5)


def test_failures_inside_the_grace_period_are_ignored_until_the_first_success():
    checks = judge()
    assert checks.record(False, now=5.0) == Verdict()
    assert checks.record(True, now=6.0) == Verdict(healthy=True)
    assert checks.record(False, now=7.0) == Verdict(healthy=False)


def test_failures_after_the_grace_period_count_and_only_changes_are_reported():
    checks = judge(consecutive_failures=2)
    assert checks.record(False, now=11.0) == Verdict(healthy=False)
    assert checks.record(True, now=12.0) == Verdict(healthy=True)
    assert checks.record(True, now=13.0) == Verdict()
    assert checks.record(False, now=14.0) == Verdict(healthy=False)
    assert checks.record(False, now=15.0) == Verdict(healthy=None, kill=True)


class Ok(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's name)
        self.send_response(200 if self.path == "/readiness" else 503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def test_http_and_tcp_checks_probe_the_agent_address(tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), Ok)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]

    def probe(spec: dict) -> bool:
        return asyncio.run(make_probe(spec, {}, tmp_path, "127.0.0.1")())

    try:
        assert probe({"type": "HTTP", "http": {"port": port, "path": "/readiness"}})
        assert not probe({"type": "HTTP", "http": {"port": port, "path": "/liveness"}})
        assert probe({"type": "TCP", "tcp": {"port": port}})
    finally:
        server.shutdown()
        server.server_close()
    assert not probe({"type": "TCP", "tcp": {"port": port}})
    assert not probe({"type": "HTTP", "http": {"port": port}})


def test_command_check_uses_the_given_environment(tmp_path):
    spec = {"type": "COMMAND", "command": {"value": 'test "$NODENAME" = agent-1'}}
    env = {"PATH": "/usr/bin:/bin", "NODENAME": "agent-1"}
    assert asyncio.run(make_probe(spec, env, tmp_path, "127.0.0.1")())
    assert not asyncio.run(make_probe(spec, {"PATH": "/bin"}, tmp_path, "127.0.0.1")())


@scenario
async def test_a_check_that_times_out_counts_as_a_failure_and_kills_the_task(executor, agent):
    hung = task("hung", "exec sleep 30")
    hung["health_check"] = {
        "type": "COMMAND",
        "command": {"value": "exec sleep 30"},
        "delay_seconds": 0,
        "timeout_seconds": 0.2,
        "consecutive_failures": 1,
        "grace_period_seconds": 0,
    }
    hung["kill_policy"] = {"grace_period": {"nanoseconds": 100_000_000}}
    await executor.launch(agent, hung)
    await wait_until_async(lambda: "TASK_KILLED" in agent.states("hung"))
    assert [u["healthy"] for u in agent.updates] == [None, None, False, False]
