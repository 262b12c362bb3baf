"""The operator API over the real scheduler (pymesos) on a DevCluster with synthetic tasks.

One cluster and scheduler for the module: it converges once, and each test leaves the
plan as it found it (the restart tests are last because they add launches).
"""

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from calico_dcos.operator_api import PAGE_LIMIT, plan_http_status
from tests.api.operator_harness import operator_service
from tests.integration.harness import converged, running_cluster, wait_until

TOKEN = "s3cret-token"
SECRET_URL = "http://root:hunter2@127.0.0.1:2379"
COMMANDS = ["interrupt", "continue", "restart", "force-complete"]
PREFIXES = ["/v1/plan", "/v1/plans/deploy"]


@pytest.fixture(scope="module")
def rollout(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("operator-api")
    options = {"etcd_run_proxy": "true", "etcd_endpoints": SECRET_URL}
    with (
        running_cluster(agents=3, public_agents=1) as cluster,
        operator_service(cluster, workdir, TOKEN, **options) as (service, url),
    ):
        wait_until(converged(service), 20, "convergence")
        yield cluster, service.scheduler, url


def authorized() -> dict:
    return {"Authorization": f"Bearer {TOKEN}"}


def a_hostname(url: str) -> str:
    return requests.get(f"{url}/v1/agents", timeout=5).json()["agents"][0]["hostname"]


def test_plan_has_the_dcos_commons_shape_and_answers_200_when_complete(rollout):
    cluster, _, url = rollout
    for path in PREFIXES:
        response = requests.get(url + path, timeout=5)
        plan = response.json()
        assert response.status_code == 200
        assert plan["status"] == "COMPLETE" and plan["errors"] == []
        assert set(plan) >= {"phases", "strategy", "errors", "status"}
        assert {phase["id"] for phase in plan["phases"]} == {a.agent_id for a in cluster.agents}
        for phase in plan["phases"]:
            assert set(phase) >= {"id", "name", "strategy", "status", "steps"}
            names = [step["name"] for step in phase["steps"]]
            assert names == ["etcd-proxy", "docker", "cni", "libnetwork", "node"]
            assert all(set(s) >= {"id", "name", "status", "message"} for s in phase["steps"])


def test_plan_status_codes_follow_dcos_commons():
    assert plan_http_status({"status": "COMPLETE", "errors": []}) == 200
    assert plan_http_status({"status": "IN_PROGRESS", "errors": []}) == 202
    assert plan_http_status({"status": "WAITING", "errors": []}) == 202
    assert plan_http_status({"status": "ERROR", "errors": ["agent-1: cni: bad"]}) == 417


@pytest.mark.parametrize("prefix", PREFIXES)
@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("header", [None, "Bearer wrong-token", f"Basic {TOKEN}", TOKEN])
def test_every_mutating_endpoint_refuses_without_the_token(rollout, prefix, command, header):
    _, scheduler, url = rollout
    params = {"phase": a_hostname(url), "step": "docker"}
    headers = {"Authorization": header} if header else {}
    before = scheduler.agent_records()

    response = requests.post(f"{url}{prefix}/{command}", params=params, headers=headers, timeout=5)

    assert response.status_code == 401
    assert "Bearer" in response.headers["WWW-Authenticate"]
    if header == "Bearer wrong-token":  # a token, not this one: refused, never echoed
        assert response.text.startswith("the token was refused: it is not the one")
        assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
        assert "wrong-token" not in response.text
    else:
        assert "needs Authorization: Bearer <token>" in response.text
    assert "service.api_token_file" in response.text
    assert scheduler.agent_records() == before
    assert not scheduler.plan.interrupted


def test_interrupt_and_continue_the_whole_rollout(rollout):
    _, scheduler, url = rollout
    response = requests.post(f"{url}/v1/plan/interrupt", headers=authorized(), timeout=5)
    assert response.status_code == 200
    assert response.json()["message"].startswith(
        "Received cmd: interrupt: the plan interrupted by an operator: running tasks go on; "
        "nothing is launched, replaced or relaunched anywhere until `calico-dcos plan continue`"
    )
    assert scheduler.summary()["interrupted"]

    resumed = requests.post(f"{url}/v1/plans/deploy/continue", headers=authorized(), timeout=5)
    assert resumed.json()["message"] == "Received cmd: continue: the plan continues"
    assert not scheduler.summary()["interrupted"]


def test_interrupt_and_continue_one_phase_by_hostname(rollout):
    _, scheduler, url = rollout
    hostname = a_hostname(url)
    requests.post(
        f"{url}/v1/plan/interrupt", params={"phase": hostname}, headers=authorized(), timeout=5
    ).raise_for_status()
    interrupted = [r["hostname"] for r in scheduler.agent_records().values() if r["interrupted"]]
    assert interrupted == [hostname]

    requests.post(
        f"{url}/v1/plan/continue", params={"phase": hostname}, headers=authorized(), timeout=5
    ).raise_for_status()
    assert not any(r["interrupted"] for r in scheduler.agent_records().values())


@pytest.mark.parametrize(
    ("command", "params", "status", "words"),
    [
        ("restart", {"phase": "agent-1"}, 400, "needs ?phase"),
        ("force-complete", {"step": "docker"}, 400, "needs ?phase"),
        ("restart", {"phase": "no-such-agent", "step": "docker"}, 404, "no agent"),
        (
            "force-complete",
            {"phase": "PHASE", "step": "no-such-step"},
            404,
            "unknown step no-such-step (the steps are etcd-proxy, docker, cni, libnetwork, node)",
        ),
    ],
)
def test_bad_commands_say_what_is_wrong(rollout, command, params, status, words):
    _, _, url = rollout
    params = {k: a_hostname(url) if v == "PHASE" else v for k, v in params.items()}
    response = requests.post(
        f"{url}/v1/plan/{command}", params=params, headers=authorized(), timeout=5
    )
    assert response.status_code == status
    assert words in response.text


def test_agents_show_each_step_task_state_attempts_and_time(rollout):
    cluster, _, url = rollout
    agents = requests.get(f"{url}/v1/agents", timeout=5).json()["agents"]
    assert sorted(a["agent_id"] for a in agents) == sorted(a.agent_id for a in cluster.agents)
    for agent in agents:
        node = agent["steps"]["node"]
        assert node["task_id"].startswith(f"calico-node__{agent['agent_id']}__")
        assert node["state"] == "TASK_RUNNING" and node["attempts"] == 1 and node["updated"] > 0

    one = agents[0]
    by_id = requests.get(f"{url}/v1/agents/{one['agent_id']}", timeout=5).json()
    by_hostname = requests.get(f"{url}/v1/agents/{one['hostname']}", timeout=5).json()
    assert by_id == by_hostname == one
    assert requests.get(f"{url}/v1/agents/nobody", timeout=5).status_code == 404


def test_agents_plan_and_status_answer_a_page_at_a_time(rollout):
    """No answer grows with the cluster: at most PAGE_LIMIT agents or phases, from ?offset=;
    the plan's status and the counts still speak for every agent."""
    cluster, _, url = rollout
    ids = sorted(a.agent_id for a in cluster.agents)
    pages = [requests.get(f"{url}/v1/agents", params={"offset": o, "limit": 2}, timeout=5).json()
             for o in (0, 2)]  # fmt: skip
    assert [len(page["agents"]) for page in pages] == [2, len(ids) - 2]
    assert sorted(a["agent_id"] for page in pages for a in page["agents"]) == ids
    assert {page["total"] for page in pages} == {len(ids)}

    plan = requests.get(f"{url}/v1/plan", params={"offset": 1, "limit": 1}, timeout=5)
    status = requests.get(f"{url}/v1/status", params={"limit": 2}, timeout=5).json()["plan"]
    assert plan.status_code == 200 and plan.json()["status"] == "COMPLETE"
    assert len(plan.json()["phases"]) == 1 and len(status["phases"]) == 2
    for doc, offset in ((plan.json(), 1), (status, 0)):
        assert doc["phases_total"] == doc["phases_complete"] == len(ids)
        assert doc["phases_offset"] == offset
    whole = requests.get(f"{url}/v1/plan", timeout=5).json()
    assert len(whole["phases"]) == len(ids)  # under PAGE_LIMIT: one page, as before

    for params, words in (
        ({"limit": PAGE_LIMIT + 1}, f"limit='{PAGE_LIMIT + 1}': expected a whole number from 1"),
        ({"offset": "-1"}, "offset='-1': expected a whole number from 0"),
        ({"limit": "many"}, "limit='many'"),
    ):
        for path in ("/v1/agents", "/v1/plan", "/v1/status"):
            refused = requests.get(url + path, params=params, timeout=5)
            assert refused.status_code == 400 and words in refused.text


def test_options_are_the_effective_ones_with_passwords_masked(rollout):
    _, _, url = rollout
    response = requests.get(f"{url}/v1/options", timeout=5)
    options = response.json()
    assert options["etcd"]["endpoints"] == "http://root:***@127.0.0.1:2379"
    assert options["etcd"]["run_proxy"] is True
    assert "hunter2" not in response.text


def test_metrics_of_a_converged_rollout_carry_every_figure_operators_asked_for(rollout):
    _, scheduler, url = rollout
    response = requests.get(f"{url}/metrics", timeout=5)
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }
    received = samples[("calico_dcos_offers_received_total", ())]
    accepted = samples[("calico_dcos_offers_accepted_total", ())]
    assert received >= accepted >= 20  # 4 agents x 5 steps
    rescinded = samples[("calico_dcos_offers_rescinded_total", ())]
    held = samples[("calico_dcos_offers_held", ())]
    declined = samples[("calico_dcos_offers_declined_total", ())]
    assert declined + accepted + rescinded + held <= received
    # Counted as each DECLINE is taken: never more than the offers the master recorded as
    # declined, and as many once the last DECLINE's answer is in.
    cluster = rollout[0]
    master_declined = lambda: len([e for e in cluster.timeline() if e["event"] == "decline"])  # noqa: E731
    assert 0 < declined <= master_declined()
    counted = lambda: scheduler.counters["offers_declined"]  # noqa: E731
    wait_until(lambda: counted() == master_declined(), 10, "every DECLINE counted")
    assert samples[("calico_dcos_launches_total", (("step", "cni"),))] >= 4
    assert samples[("calico_dcos_tasks", (("state", "TASK_RUNNING"), ("step", "node")))] == 4
    assert samples[("calico_dcos_tasks", (("state", "TASK_FINISHED"), ("step", "docker")))] == 4
    assert samples[("calico_dcos_agents", (("status", "COMPLETE"),))] == 4
    assert samples[("calico_dcos_condition", (("condition", "Available"),))] == 1
    assert samples[("calico_dcos_restarts_in_flight", ())] == 0
    assert samples[("calico_dcos_mesos_calls_total", (("type", "RECONCILE"),))] >= 1
    assert samples[("calico_dcos_reconciliation_rounds_total", ())] >= 1
    writes = samples[("calico_dcos_state_writes_total", ())]
    assert writes == scheduler.store.writes > 0
    assert samples[("calico_dcos_state_written_bytes_total", ())] == scheduler.store.bytes_written
    converge = samples[("calico_dcos_convergence_seconds", ())]
    assert 0 < converge < 20 and converge == scheduler.convergence_seconds()


def test_status_document_carries_the_rp_filter_warning(rollout):
    _, _, url = rollout
    doc = requests.get(f"{url}/v1/status", timeout=5).json()
    assert doc["service"] == "calico"
    assert doc["summary"]["available"] is True
    assert any("rp_filter" in warning for warning in doc["warnings"])


def test_status_page_and_its_assets_are_served(rollout):
    _, _, url = rollout
    page = requests.get(url + "/", timeout=5)
    assert page.status_code == 200 and 'src="static/status.js"' in page.text
    for asset in ("status.js", "status.css"):
        assert requests.get(f"{url}/static/{asset}", timeout=5).status_code == 200


@pytest.mark.parametrize(
    ("step", "index"),
    [("node", 0), ("cni", 1)],
    ids=["a running daemon is replaced", "a finished one-shot runs again"],
)
def test_restart_runs_the_step_again_on_that_agent_only(rollout, step, index):
    cluster, service_scheduler, url = rollout
    agent, task_name = cluster.agents[index], f"calico-{step}"
    before = {a.agent_id: _launches(cluster, a.agent_id, task_name) for a in cluster.agents}

    response = requests.post(
        f"{url}/v1/plan/restart",
        params={"phase": agent.hostname, "step": step},
        headers=authorized(),
        timeout=5,
    )

    assert response.status_code == 200
    wait_until(
        lambda: _launches(cluster, agent.agent_id, task_name) == before[agent.agent_id] + 1,
        10,
        f"a second {step} launch",
    )
    wait_until(lambda: service_scheduler.plan.complete, 10, "convergence again")
    after = {a.agent_id: _launches(cluster, a.agent_id, task_name) for a in cluster.agents}
    assert {k: v - before[k] for k, v in after.items()} == {
        a.agent_id: int(a.agent_id == agent.agent_id) for a in cluster.agents
    }


def _launches(cluster, agent_id: str, name: str) -> int:
    return sum(
        1
        for e in cluster.timeline()
        if e["event"] == "launch" and e["agent_id"] == agent_id and e["task_name"] == name
    )
