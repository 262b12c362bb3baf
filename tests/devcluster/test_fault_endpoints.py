"""Every `/devcluster/` control endpoint over real HTTP, with its answers to bad requests.

(test_faults.py covers add, remove, fail-next-task and disconnect in their use; here each
endpoint is called as a person or a stand-in would, and what it did is checked.)
"""

from __future__ import annotations

import requests

from tests.helpers.devcluster import Framework, wait_until


def test_agents_lists_every_agent(cluster):
    agents = requests.get(f"{cluster.base_url}/devcluster/agents").json()
    assert [a["hostname"] for a in agents] == ["agent-1", "agent-2", "public-agent-1"]
    assert [a["public"] for a in agents] == [False, False, True]
    assert all(a["connected"] for a in agents)


def test_restart_over_http_disconnects_and_reregisters_the_agent(cluster):
    agent_id = cluster.agents[0].agent_id
    response = requests.post(f"{cluster.base_url}/devcluster/agents/{agent_id}/restart")
    assert response.status_code == 202
    events = lambda: [e["event"] for e in cluster.timeline() if e.get("agent_id") == agent_id]  # noqa: E731
    wait_until(lambda: "agent_reregistered" in events(), what="re-registration")
    assert events().index("agent_disconnected") < events().index("agent_reregistered")


def test_unknown_agent_or_framework_is_404(cluster):
    for path in ("agents/nope/restart", "agents/nope/remove", "frameworks/nope/disconnect"):
        response = requests.post(f"{cluster.base_url}/devcluster/{path}")
        assert response.status_code == 404, path


def test_bad_bodies_are_400_with_the_reason(cluster):
    url = f"{cluster.base_url}/devcluster"
    response = requests.post(f"{url}/faults/fail-next-task", json={"name_regex": 3})
    assert (response.status_code, response.text) == (400, "Expecting 'name_regex'")
    response = requests.post(f"{url}/agents", data=b"{not json", timeout=5)
    assert response.status_code == 400 and "Body is not JSON" in response.text
    response = requests.post(f"{url}/failover", json={"old_master": "later"})
    assert response.status_code == 400 and "'old_master' must be" in response.text


def test_failover_over_http_moves_the_leader_and_the_old_port_redirects(cluster, framework):
    old_url = cluster.base_url
    response = requests.post(f"{old_url}/devcluster/failover")
    assert response.status_code == 200
    new_url = response.json()["master_url"]
    assert new_url == cluster.master_url and f"http://{new_url}" != old_url
    call = requests.post(f"{old_url}/api/v1/scheduler", json={}, allow_redirects=False)
    assert call.status_code == 307
    assert call.headers["Location"] == f"//{new_url}/api/v1/scheduler"
    wait_until(lambda: framework.registrations >= 2, what="the framework on the new master")


def test_failover_over_http_with_the_old_master_gone_closes_its_port(cluster):
    old_url = cluster.base_url
    response = requests.post(f"{old_url}/devcluster/failover", json={"old_master": "gone"})
    assert response.status_code == 200
    assert f"http://{response.json()['master_url']}" == cluster.base_url != old_url

    def refused() -> bool:
        try:
            requests.get(f"{old_url}/version", timeout=1)
        except requests.ConnectionError:
            return True
        return False

    wait_until(refused, what="the old port closed")
    assert requests.get(f"{cluster.base_url}/version").ok
    with Framework(cluster) as fw:
        assert fw.registrations == 1


def test_refuse_next_call_over_http_answers_that_call_only(cluster):
    from tests.helpers.raw_client import RawScheduler

    url = f"{cluster.base_url}/devcluster/faults/refuse-next-call"
    assert requests.post(url, json={"type": "REVIVE", "status": 400, "message": "no"}).ok
    assert requests.post(url, json={"status": "x"}).status_code == 400
    with RawScheduler(cluster.base_url) as raw:
        refused = raw.call("REVIVE")
        assert (refused.status_code, refused.text) == (400, "no")
        assert raw.call("REVIVE").status_code == 202


def test_partition_and_heal_unknown_agent_is_404(cluster):
    for fault in ("partition", "heal"):
        response = requests.post(f"{cluster.base_url}/devcluster/agents/nope/{fault}")
        assert response.status_code == 404


def test_the_iam_outage_fault_is_strict_mode_only_and_checks_its_status(cluster):
    """`POST faults/iam-unavailable` is 404 without an IAM (not strict); in strict mode a
    status that is neither 429 nor a 5xx is 400 naming what is allowed, and the armed
    outage answers logins with the status until `DELETE` lifts it (over HTTPS)."""
    from tests.helpers.devcluster import running_cluster

    url = f"{cluster.base_url}/devcluster/faults/iam-unavailable"
    assert requests.post(url, timeout=5).status_code == 404
    with running_cluster(agents=0, public_agents=0, strict=True) as strict:
        url, ca = f"{strict.base_url}/devcluster/faults/iam-unavailable", strict.ca_bundle
        login = lambda: requests.post(strict.login_endpoint, json={}, verify=ca, timeout=5)  # noqa: E731
        refused = requests.post(url, json={"status": 200}, verify=ca, timeout=5)
        wrong_type = requests.post(url, json={"status": "503"}, verify=ca, timeout=5)
        armed = requests.post(url, json={"status": 502}, verify=ca, timeout=5)
        during = login()
        lifted = requests.delete(url, verify=ca, timeout=5)
        after = login()

    assert refused.status_code == 400 and "429 or a 5xx status, not 200" in refused.text
    assert wrong_type.status_code == 400 and "integer 'status'" in wrong_type.text
    assert (armed.status_code, armed.text) == (
        202,
        "armed: from now on every login is answered 502\n",
    )
    assert during.status_code == 502 and during.json()["code"] == "ERR_UNAVAILABLE"
    assert lifted.status_code == 200 and "(1 refused so far)" in lifted.text
    assert after.status_code == 401  # answered again: `{}` is refused as no login
