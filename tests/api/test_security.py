"""Issue 14, probed as an attacker on the cluster network would: nothing unauthenticated
changes the plan or the store, and no request can make the scheduler exit.

The scheduler is the real one (pymesos over loopback sockets to a DevCluster with synthetic
tasks) with its state in a real ZooKeeper, where a ~1 MB report used to crash it; the store
is read back through a second kazoo client, so "unchanged" means ZooKeeper's own nodes.
"""

from __future__ import annotations

import logging
import uuid

import pytest
import requests
from kazoo.client import KazooClient

from calico_dcos import api
from calico_dcos.api_guard import MAX_REQUEST_BYTES
from calico_dcos.commands.run import start_or_exit
from calico_dcos.options import load_options
from calico_dcos.report_auth import (
    REPORT_TOKEN_ENV,
    REPORT_URL_ENV,
    ReportKey,
    with_report_token,
)
from calico_dcos.store import StateCorrupt
from calico_dcos.store.file import FileStore
from tests.api.operator_harness import operator_service
from tests.helpers.zookeeper import ZooKeeperServer
from tests.integration.harness import converged, running_cluster, wait_until

TOKEN = "0p3rator-t0ken"
OVERSIZED = b'{"calico_present": true, "found": ["' + b"x" * 1_000_000 + b'"]}'


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    """A converged scheduler with an operator token, its state in ZooKeeper."""
    workdir = tmp_path_factory.mktemp("security")
    root = f"/security-{uuid.uuid4().hex[:8]}"
    with (
        ZooKeeperServer() as zookeeper,
        running_cluster(agents=2, public_agents=1) as cluster,
        operator_service(
            cluster, workdir, TOKEN, service_state=f"zk://{zookeeper.hosts}{root}"
        ) as (service, url),
    ):
        wait_until(converged(service), 20, "convergence")
        client = KazooClient(hosts=zookeeper.hosts)
        client.start(timeout=10)
        try:
            yield service, url, lambda: znodes(client, root)
        finally:
            client.stop()
            client.close()


def znodes(client: KazooClient, path: str) -> dict[str, bytes]:
    """Every node's data under `path`, but the leader lock's (its nodes are sessions')."""
    found = {path: client.get(path)[0]}
    for child in client.get_children(path):
        if child != "leader":
            found.update(znodes(client, f"{path}/{child}"))
    return found


def concrete_routes(app, agent_id: str) -> list[tuple[str, str]]:
    """(method, path) of every route the app serves, with its placeholders filled in."""
    fill = {"agent_id": agent_id, "agent": agent_id, "name": "installer.pyz"}
    routes = []
    for route in app.router.routes():
        info = route.resource.get_info()
        path = info.get("path") or info.get("formatter")
        if path is None:  # the static directory
            path = info["prefix"].rstrip("/") + "/status.js"
        routes.append((route.method, path.format(**fill)))
    return routes


def attacks(method: str, path: str, agent_id: str, tokens: tuple[str, str]) -> list[tuple]:
    """(what, method, headers, body, statuses that refuse it) for one route.

    Every request is otherwise well-formed (a valid report, a known phase and step), so
    that only the credential or the size stops it; `tokens` are the report tokens of the
    agent and of another one. GET routes are open by design: they may answer, but must
    change nothing."""
    own_token, other_agent_token = tokens
    report = b'{"calico_present": true, "step": "docker", "found": ["x"]}'
    is_report = path.endswith("/report")
    if path.startswith("/v1/plan") and method == "POST":
        path += f"?phase={agent_id}&step=docker"
    wrong = {"Authorization": "Bearer wrong-token"}
    right = {"Authorization": f"Bearer {own_token if is_report else TOKEN}"}
    if method in ("GET", "HEAD"):
        return [
            ("no credential", method, path, {}, b"", None),
            ("oversized body", method, path, right, OVERSIZED, {413}),
            ("POST to a GET route", "POST", path, {}, report, {405}),
            ("oversized POST to a GET route", "POST", path, right, OVERSIZED, {405, 413}),
        ]
    refused = {401}
    cases = [
        ("no credential", method, path, {}, report, {401}),
        ("wrong credential", method, path, wrong, report, {403} if is_report else refused),
        ("oversized body", method, path, right, OVERSIZED, {413}),
    ]
    if is_report:
        other = {"Authorization": f"Bearer {other_agent_token}"}
        cases.append(("another agent's token", method, path, other, report, {403}))
    else:
        cases.append(("a report token", method, path, {"Authorization": "Bearer x"}, b"", refused))
    return cases


def test_every_route_without_or_with_a_wrong_credential_or_oversized_changes_nothing(
    secured, caplog
):
    service, url, snapshot = secured
    scheduler = service.scheduler
    agents = sorted(scheduler.agent_records())
    target, other = agents[0], agents[1]
    tokens = (scheduler.report_key.token(target), scheduler.report_key.token(other))
    routes = concrete_routes(service.api.app, target)
    assert {(m, p.split("?")[0]) for m, p in routes} >= {
        ("POST", f"/v1/agents/{target}/report"),
        ("POST", "/v1/plan/interrupt"),
        ("POST", "/v1/plans/deploy/force-complete"),
        ("GET", "/v1/artifacts/installer.pyz"),
    }
    before, writes, records = snapshot(), scheduler.store.writes, scheduler.agent_records()

    answers = []
    for method, path in routes:
        for what, verb, where, headers, body, refused in attacks(method, path, target, tokens):
            response = requests.request(verb, url + where, headers=headers, data=body, timeout=10)
            answers.append((what, verb, where.split("?")[0], response.status_code))
            if refused is not None:
                assert response.status_code in refused, (what, verb, where, response.text)

    assert len(answers) >= 4 * len(routes) and len(OVERSIZED) > MAX_REQUEST_BYTES
    assert snapshot() == before
    assert scheduler.store.writes == writes
    assert scheduler.agent_records() == records
    assert not scheduler.plan.interrupted and scheduler.failure is None
    assert requests.get(f"{url}/v1/health", timeout=5).status_code == 200
    assert not [r for r in caplog.records if any(t in r.getMessage() for t in tokens)]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{", "expected a JSON object"),
        (b"[" * 5000 + b"]" * 5000, "expected a JSON object"),
        (b'{"calico_present": true, "step": "docker", "found": [[[[[[[[["x"]]]]]]]]]}', "deeper"),
        (b'{"calico_present": false, "step": "docker"}', '"calico_present": true'),
        (b'{"calico_present": true, "step": "rm -rf /"}', "step 'rm -rf /' is none of"),
        (b'{"calico_present": true, "step": "cni", "found": "x"}', "a list of strings"),
        (b'{"calico_present": true, "step": "cni", "extra": 1}', "unknown report fields"),
        (b'{"calico_present": true, "step": "cni", "agent_id": "someone-else"}', "agent of"),
        (
            b'{"calico_present": true, "step": "cni", "found": ["' + b"x" * 300 + b'"]}',
            "at most 16 items of at most 256 characters",
        ),
        (
            b'{"calico_present": true, "step": "cni", "found": [' + b'"x",' * 16 + b'"x"]}',
            "at most 16 items",
        ),
    ],
    ids=lambda value: value[:24].decode() if isinstance(value, bytes) else "",
)
def test_a_bad_report_with_the_right_token_is_refused_saying_why_and_changes_nothing(
    secured, body, reason
):
    service, url, snapshot = secured
    agent_id = sorted(service.scheduler.agent_records())[0]
    token = service.scheduler.report_key.token(agent_id)
    before = snapshot()

    response = requests.post(
        f"{url}/v1/agents/{agent_id}/report",
        data=body,
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )

    assert response.status_code == 400 and reason in response.text
    assert snapshot() == before and service.scheduler.failure is None


def test_a_streamed_body_over_the_bound_is_refused_with_413(secured):
    """No Content-Length (chunked): aiohttp's client_max_size stops the read."""
    service, url, snapshot = secured
    agent_id = sorted(service.scheduler.agent_records())[0]
    token = service.scheduler.report_key.token(agent_id)
    before = snapshot()

    response = requests.post(
        f"{url}/v1/agents/{agent_id}/report",
        data=(OVERSIZED[i : i + 65536] for i in range(0, len(OVERSIZED), 65536)),
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )

    assert response.status_code == 413
    assert snapshot() == before and service.scheduler.failure is None


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "Bearer  "])
def test_the_bearer_scheme_is_case_insensitive(secured, scheme):
    service, url, _ = secured
    headers = {"Authorization": f"{scheme} {TOKEN} "}

    interrupted = requests.post(f"{url}/v1/plan/interrupt", headers=headers, timeout=5)
    was = service.scheduler.summary()["interrupted"]
    resumed = requests.post(f"{url}/v1/plan/continue", headers=headers, timeout=5)

    assert (interrupted.status_code, was, resumed.status_code) == (200, True, 200)
    assert not service.scheduler.summary()["interrupted"]


def test_the_agents_own_token_reports_and_is_stored_bounded(secured):
    """Last: it takes an agent out of the plan, as a real report does."""
    service, url, snapshot = secured
    agent_id = sorted(service.scheduler.agent_records())[0]
    token = service.scheduler.report_key.token(agent_id)
    report = {"agent_id": agent_id, "step": "docker", "calico_present": True, "found": ["x"]}

    response = requests.post(
        f"{url}/v1/agents/{agent_id}/report",
        json=report,
        headers={"Authorization": f"bearer {token}"},
        timeout=5,
    )

    assert response.status_code == 202
    record = service.scheduler.agent_records()[agent_id]
    assert record["calico_present"] == {"step": "docker", "found": ["x"]}
    stored = snapshot()
    node = next(data for path, data in stored.items() if path.endswith(f"/agents/{agent_id}"))
    assert b'"calico_present"' in node and len(node) < 16 * 1024
    assert not [data for data in stored.values() if token.encode() in data]


# The report key and token, without the network


def test_a_report_token_is_good_for_its_agent_only_and_survives_a_restart(tmp_path):
    store = FileStore(tmp_path)
    key = ReportKey.load_or_create(store)
    again = ReportKey.load_or_create(FileStore(tmp_path))  # a restarted scheduler

    assert again.token("a1b2-S0") == key.token("a1b2-S0") != key.token("a1b2-S1")
    assert again.verify("a1b2-S0", key.token("a1b2-S0"))
    assert not again.verify("a1b2-S1", key.token("a1b2-S0"))
    assert not again.verify("a1b2-S0", None) and not again.verify("a1b2-S0", "")
    assert not again.verify("a1b2-S0", key.token("a1b2-S0") + "\udcff")
    assert repr(key) == "ReportKey(***)" and key.token("a1b2-S0") not in repr(key)
    assert ReportKey.load_or_create(FileStore(tmp_path / "other")).token("a1b2-S0") != (
        key.token("a1b2-S0")
    )


def test_a_stored_report_key_that_is_not_a_key_is_corrupt_not_replaced(tmp_path):
    store = FileStore(tmp_path)
    store.put_meta("report-key", {"key": "short"})

    with pytest.raises(StateCorrupt, match="report-key"):
        ReportKey.load_or_create(store)
    assert store.get_meta("report-key") == {"key": "short"}


def test_only_reporting_tasks_get_the_token_and_the_plans_task_is_left_as_it_was(tmp_path):
    key = ReportKey.load_or_create(FileStore(tmp_path))
    env = {"variables": [{"name": REPORT_URL_ENV, "value": "http://s/v1/agents/A-S1/report"}]}
    reporting = {"agent_id": {"value": "A-S1"}, "command": {"value": "x", "environment": env}}
    daemon = {"agent_id": {"value": "A-S1"}, "command": {"shell": False}}

    given = with_report_token(reporting, key)

    variables = {v["name"]: v["value"] for v in given["command"]["environment"]["variables"]}
    assert variables[REPORT_TOKEN_ENV] == key.token("A-S1")
    assert REPORT_TOKEN_ENV not in str(reporting)
    assert with_report_token(daemon, key) is daemon


# service.api_token_file


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("", "holds no token"),
        ("\n", "holds no token"),
        (" \t\r\n", "holds no token"),
        ("two words\n", "holds a space, control or non-ASCII character"),
        ("t\u00f6ken\n", "holds a space, control or non-ASCII character"),
        (None, "api-token does not exist"),
    ],
    ids=["empty", "a newline", "whitespace", "a space inside", "non-ASCII", "unreadable"],
)
def test_a_token_file_that_would_turn_authentication_off_stops_the_start(
    tmp_path, capsys, content, words
):
    token_file = tmp_path / "api-token"
    if content is not None:
        token_file.write_text(content)
    options = load_options(
        None,
        {
            "CALICO_SERVICE_API_TOKEN_FILE": str(token_file),
            "CALICO_SERVICE_STATE": str(tmp_path / "state"),
        },
    )

    with pytest.raises(SystemExit) as stopped:
        start_or_exit(options, host="127.0.0.1", port=0)

    assert stopped.value.code == 2
    error = capsys.readouterr().err
    assert error.startswith("invalid option service.api_token_file: ") and words in error
    assert not (tmp_path / "state").exists()  # it stopped before the store or the API


def test_a_report_is_refused_before_the_scheduler_exists(tmp_path, caplog):
    """While starting, the API answers 503 rather than failing or reaching a missing plan."""
    caplog.set_level(logging.DEBUG)
    app = api.build_app(_Starting())

    async def post(client):
        return await client.post("/v1/agents/A-S1/report", headers={"Authorization": "Bearer x"})

    assert _serve(app, post) == 503


class _Starting:
    """`service._Late` before the scheduler is made: every call raises RuntimeError."""

    counters: dict = {}
    store = None

    def __getattr__(self, name):
        def starting(*args):
            raise RuntimeError("the scheduler is starting")

        return starting


def _serve(app, call) -> int:
    """Run `call(client)` against `app` on a real loopback socket; its status."""
    import asyncio

    from aiohttp.test_utils import TestClient, TestServer

    async def main() -> int:
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            response = await call(client)
            return response.status

    return asyncio.run(main())
