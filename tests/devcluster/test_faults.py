"""Fault injection and the agent's reliable status updates."""

from __future__ import annotations

import math
import re

import pytest
import requests

from calico_dcos.devcluster.agent import agent_ip
from calico_dcos.devcluster.cluster import DevCluster
from tests.helpers.devcluster import (
    Framework,
    command_task,
    framework_info,
    running_cluster,
    wait_until,
)


def launch_daemon(cluster, fw: Framework, task_id: str, agent_index: int = 0) -> dict:
    offer = fw.offer_from(cluster.agents[agent_index].agent_id)
    fw.driver.launchTasks([offer["id"]], [command_task(offer, task_id, name="daemon")])
    return fw.wait_for_state(task_id, "TASK_RUNNING")


def test_unacknowledged_update_is_retried_with_the_same_uuid_until_acknowledged(cluster):
    with Framework(cluster, implicit_acknowledgements=False) as fw:
        offer = fw.offer_from(cluster.agents[0].agent_id)
        fw.driver.launchTasks([offer["id"]], [command_task(offer, "r-1", name="daemon")])
        wait_until(lambda: fw.states("r-1").count("TASK_STARTING") >= 2, what="a retry")
        starting = [u for u in fw.updates if u["state"] == "TASK_STARTING"]
        assert len({u["uuid"] for u in starting}) == 1
        assert "TASK_RUNNING" not in fw.states("r-1")
        fw.driver.acknowledgeStatusUpdate(starting[0])
        fw.wait_for_state("r-1", "TASK_RUNNING")


def test_removed_agent_rescinds_its_outstanding_offer(cluster, framework):
    offer = framework.offer_from(cluster.agents[1].agent_id)
    requests.post(f"{cluster.base_url}/devcluster/agents/{offer['agent_id']['value']}/remove")
    wait_until(lambda: offer["id"]["value"] in framework.rescinded)


def test_added_agent_is_offered(cluster, framework):
    response = requests.post(f"{cluster.base_url}/devcluster/agents", json={"public": True})
    assert response.status_code == 201
    added = response.json()
    # The fourth agent's address in the cluster's loopback range (127.0.1.4 alone).
    assert added["hostname"] == "public-agent-2"
    assert added["ip"] == agent_ip(4, cluster.master.agent_network)
    offer = framework.offer_from(added["agent_id"])
    assert offer["allocation_info"]["role"] == "slave_public"


def test_restart_of_a_non_checkpointing_framework_loses_its_tasks(cluster):
    """master.cpp `exited` -> `removeFramework(Slave*, Framework*)`: at the disconnection,
    TASK_LOST / REASON_AGENT_DISCONNECTED, even for a PARTITION_AWARE framework."""
    info = framework_info(
        checkpoint=False, capabilities=[{"type": "MULTI_ROLE"}, {"type": "PARTITION_AWARE"}]
    )
    with Framework(cluster, info) as fw:
        launch_daemon(cluster, fw, "nc-1")
        agent = cluster.agents[0]
        cluster.restart_agent(agent.agent_id)
        lost = fw.wait_for_state("nc-1", "TASK_LOST")
        assert lost["reason"] == "REASON_AGENT_DISCONNECTED"
        assert lost["message"] == f"Agent {agent.hostname} disconnected"


def test_fail_next_task_over_http(cluster, framework):
    url = f"{cluster.base_url}/devcluster/faults/fail-next-task"
    armed = requests.post(url, json={"name_regex": "daemon", "message": "boom"})
    # it says what it armed, as hold-next-task does (it used to answer an empty 202)
    assert (armed.status_code, armed.text) == (
        202,
        "armed: the next task launched whose name matches 'daemon' fails (STARTING, then "
        "FAILED) (1 armed)\n",
    )
    offer = framework.offer_from(cluster.agents[0].agent_id)
    framework.driver.launchTasks([offer["id"]], [command_task(offer, "f-1", name="daemon")])
    assert framework.wait_for_state("f-1", "TASK_FAILED")["message"] == "boom"


def test_dropped_stream_resubscribes_and_keeps_tasks(cluster, framework):
    launch_daemon(cluster, framework, "s-1")
    url = f"{cluster.base_url}/devcluster/frameworks/{framework.framework_id}/disconnect"
    assert requests.post(url).status_code == 202
    wait_until(lambda: framework.registrations >= 2, what="re-subscription")
    framework.driver.reconcileTasks([{"task_id": {"value": "s-1"}}])
    wait_until(lambda: framework.states("s-1").count("TASK_RUNNING") >= 2)


def test_failover_timeout_removes_the_framework_and_kills_its_tasks(cluster):
    with Framework(cluster, framework_info(failover_timeout=0.2)) as fw:
        launch_daemon(cluster, fw, "t-1")
        cluster.silence_framework(fw.framework_id)
        fw.driver.stop(True)
        fw.driver.join()
        fw.driver = None
        wait_until(lambda: cluster.state()["completed_frameworks"])
        assert cluster.state()["frameworks"] == []
        removed = [e for e in cluster.timeline() if e["event"] == "framework_removed"]
        assert removed[0]["message"] == "failover timeout expired"


def test_timeline_endpoint_filters_by_event(cluster, framework):
    entries = requests.get(f"{cluster.base_url}/devcluster/timeline?event=agent_registered")
    assert [e["hostname"] for e in entries.json()] == ["agent-1", "agent-2", "public-agent-1"]
    state = requests.get(f"{cluster.base_url}/master/state").json()
    assert {a["hostname"] for a in state["slaves"]} == {"agent-1", "agent-2", "public-agent-1"}
    assert state["frameworks"][0]["id"] == framework.framework_id


def test_master_slaves_and_get_frameworks_answer_in_the_real_masters_shapes(cluster, framework):
    """`/master/slaves` and the operator API's `GET_FRAMEWORKS` as apache/mesos
    src/master/http.cpp writes them (`SlavesWriter`, `Master::Http::getFrameworks`)."""
    agent = cluster.agents[0]
    slaves = requests.get(f"{cluster.base_url}/master/slaves", timeout=5).json()
    assert {a["hostname"] for a in slaves["slaves"]} == {"agent-1", "agent-2", "public-agent-1"}
    assert slaves["recovered_slaves"] == []
    mine = next(a for a in slaves["slaves"] if a["id"] == agent.agent_id)
    assert mine["pid"] == f"slave(1)@{agent.ip}:{agent.port}"
    assert {"resources", "active", "unreserved_resources_full", "used_resources_full"} <= set(mine)
    one = requests.get(
        f"{cluster.base_url}/master/slaves", params={"slave_id": agent.agent_id}, timeout=5
    ).json()
    assert [a["id"] for a in one["slaves"]] == [agent.agent_id]

    url = f"{cluster.base_url}/api/v1"
    answer = requests.post(url, json={"type": "GET_FRAMEWORKS"}, timeout=5).json()
    assert answer["type"] == "GET_FRAMEWORKS"
    [listed] = answer["get_frameworks"]["frameworks"]
    assert listed["framework_info"]["id"] == {"value": framework.framework_id}
    assert (listed["active"], listed["connected"], "tasks" in listed) == (True, True, False)
    refused = requests.post(url, json={"type": "GET_TASKS"}, timeout=5)
    assert refused.status_code == 501 and "GET_TASKS" in refused.text


def test_get_flags_answers_the_masters_allocation_interval_as_mesos_writes_it():
    """`GET_FLAGS` as apache/mesos src/master/http.cpp `getFlags` answers it: one
    `{"name", "value"}` per flag, a duration in stout's words; `/master/state` has the same
    flags; and 403 "403 Forbidden." for a principal without VIEW_FLAGS."""
    options = {"allocation_interval": 1.5, "offer_timeout": 120.0}
    with running_cluster(agents=1, public_agents=0, **options) as cluster:
        url = f"{cluster.base_url}/api/v1"
        answer = requests.post(url, json={"type": "GET_FLAGS"}, timeout=5).json()
        state = cluster.state()
        cluster.deny_view_flags()
        denied = requests.post(url, json={"type": "GET_FLAGS"}, timeout=5)

    assert answer == {
        "type": "GET_FLAGS",
        "get_flags": {
            "flags": [
                {"name": "allocation_interval", "value": "1500ms"},
                {"name": "offer_timeout", "value": "2mins"},
            ]
        },
    }
    assert state["flags"] == {"allocation_interval": "1500ms", "offer_timeout": "2mins"}
    assert (denied.status_code, denied.text) == (403, "403 Forbidden.")


def test_deny_faults_over_http_play_an_authorizer_without_the_grant(cluster, framework):
    """`POST /devcluster/faults/deny-view-flags` and `…/deny-view-framework` arm what
    `DevCluster.deny_view_flags` and `deny_view_framework` arm, and say so; `DELETE` lifts
    them, as when the operator grants the permission after all."""
    faults, api = f"{cluster.base_url}/devcluster/faults", f"{cluster.base_url}/api/v1"
    flags = requests.post(f"{faults}/deny-view-flags", timeout=5)
    frameworks = requests.post(f"{faults}/deny-view-framework", timeout=5)

    assert (flags.status_code, frameworks.status_code) == (202, 202)
    assert flags.text == (
        "armed: from now on GET_FLAGS is refused 403, as for a principal without VIEW_FLAGS\n"
    )
    assert "GET_FRAMEWORKS lists no framework" in frameworks.text
    denied = requests.post(api, json={"type": "GET_FLAGS"}, timeout=5)
    assert (denied.status_code, denied.text) == (403, "403 Forbidden.")
    listed = requests.post(api, json={"type": "GET_FRAMEWORKS"}, timeout=5).json()
    assert listed["get_frameworks"].get("frameworks", []) == []

    names = ("deny-view-flags", "deny-view-framework")
    lifted = [requests.delete(f"{faults}/{name}", timeout=5) for name in names]
    assert [r.status_code for r in lifted] == [200, 200]
    assert lifted[0].text == (
        "lifted: VIEW_FLAGS is no longer denied to every principal; grants decide again\n"
    )
    assert requests.post(api, json={"type": "GET_FLAGS"}, timeout=5).status_code == 200
    listed = requests.post(api, json={"type": "GET_FRAMEWORKS"}, timeout=5).json()
    assert [f["framework_info"]["id"]["value"] for f in listed["get_frameworks"]["frameworks"]] == [
        framework.framework_id
    ]


def test_offer_timeout_rescinds_unanswered_offers():
    with running_cluster(offer_timeout=0.2) as cluster, Framework(cluster) as fw:
        first = fw.offer_from(cluster.agents[0].agent_id)
        wait_until(lambda: first["id"]["value"] in fw.rescinded, what="RESCIND")
        wait_until(lambda: fw.offer_from(cluster.agents[0].agent_id)["id"] != first["id"])


def test_hold_next_task_over_http_says_what_it_armed_and_how_many_wait(cluster, framework):
    url = f"{cluster.base_url}/devcluster/faults/hold-next-task"
    first = requests.post(url, json={"name_regex": "daemon"})
    second = requests.post(url, json={"name_regex": "daemon"})

    assert first.status_code == second.status_code == 202
    assert first.text == (
        "armed: the next task launched whose name matches 'daemon' stays STAGING (1 armed)\n"
    )
    assert "(2 armed)" in second.text  # a second POST arms a second hold
    offer = framework.offer_from(cluster.agents[0].agent_id)
    framework.driver.launchTasks([offer["id"]], [command_task(offer, "h-1", name="daemon")])
    wait_until(lambda: len(cluster.master.task_faults.held_launches) == 1, what="one used")


@pytest.mark.parametrize(
    ("keyword", "value", "message"),
    [
        ("allocation_interval", 0, "allocation_interval must be more than 0 seconds, not 0"),
        ("allocation_interval", -1.0, "allocation_interval must be more than 0 seconds"),
        ("allocation_interval", math.nan, "allocation_interval must be a finite number"),
        ("heartbeat_interval", 0, "heartbeat_interval must be more than 0 seconds"),
        ("status_retry_interval", 0, "status_retry_interval must be more than 0 seconds"),
        ("offer_timeout", 0, "offer_timeout must be more than 0 seconds (or None: never)"),
        ("token_lifetime", -5, "token_lifetime must be more than 0 seconds"),
        ("agent_ping_timeout", -1, "agent_ping_timeout must be at least 0 seconds"),
        ("agent_restart_delay", math.inf, "agent_restart_delay must be a finite number"),
        ("synthetic_step", -0.1, "synthetic_step must be at least 0 seconds"),
    ],
)
def test_devcluster_refuses_durations_that_would_spin_or_mean_nothing(
    tmp_path, keyword, value, message
):
    """A 0 s allocation interval (or heartbeat, or status retry) makes that loop run back to
    back on the master's thread: a CPU core for as long as the cluster runs. Tests and
    `calico-dcos local` build DevCluster directly, so it refuses them itself, before it
    makes anything."""
    with pytest.raises(ValueError, match=re.escape(message)):
        DevCluster(workdir=tmp_path / "never", **{keyword: value})
    assert not (tmp_path / "never").exists()
