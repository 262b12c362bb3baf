"""The devcluster's authorizer (`devcluster/authorizer.py`): per-principal grants, checked
where a Mesos master and agent check them (REGISTER_FRAMEWORK at SUBSCRIBE, RUN_TASK at
LAUNCH, VIEW_FRAMEWORK in GET_FRAMEWORKS, VIEW_FLAGS in GET_FLAGS, ACCESS_SANDBOX at an
agent's `/files/read`). Real sockets: frameworks authenticate with HTTP Basic credentials
(a Mesos master's `--credentials`), and a principal never granted anything may do all."""

from __future__ import annotations

import json

import pytest
import requests

from calico_dcos.devcluster.authorizer import Authorizer
from tests.helpers.devcluster import Framework, command_task, framework_info, running_cluster

SECRETS = {"runner": "s1", "watcher": "s2", "onlooker": "s3"}


def test_each_principal_may_take_only_the_actions_granted_to_it(tmp_path):
    """ "runner" may register but neither launch nor view flags or frameworks; "watcher"
    was granted nothing, so it may do everything (permissive); "onlooker" may only view
    the flags, so its SUBSCRIBE is refused with Mesos' words."""
    with running_cluster(
        agents=1, public_agents=0, credentials=SECRETS, executor="process"
    ) as cluster:
        cluster.grant("runner", {"REGISTER_FRAMEWORK"})
        cluster.grant("onlooker", {"VIEW_FLAGS"})
        cluster.grant(None, ())  # requests without a principal (the agents': no auth here)
        api = f"{cluster.base_url}/api/v1"

        def operator(principal: str, kind: str) -> requests.Response:
            auth = (principal, SECRETS[principal])
            return requests.post(api, json={"type": kind}, auth=auth, timeout=5)

        info = framework_info(principal="runner", roles=["*"])
        with Framework(cluster, info, principal="runner", secret="s1") as runner:
            offer = runner.offer_from(cluster.agents[0].agent_id)
            runner.driver.launchTasks([offer["id"]], [command_task(offer, "t-1")])
            refused = runner.wait_for_state("t-1", "TASK_ERROR")
            flags = {p: operator(p, "GET_FLAGS") for p in ("runner", "watcher", "onlooker")}
            listed = {p: operator(p, "GET_FRAMEWORKS").json() for p in ("runner", "watcher")}
            framework_id = runner.framework_id
        subscribe = {
            "type": "SUBSCRIBE",
            "subscribe": {"framework_info": framework_info(principal="onlooker")},
        }
        unregistered = requests.post(
            f"{api}/scheduler", json=subscribe, auth=("onlooker", "s3"), timeout=5
        )
        agent = cluster.agents[0]
        sandbox = requests.get(
            f"http://{agent.ip}:{agent.port}/files/read",
            params={"path": f"/frameworks/{framework_id}/executors/t-1/runs/latest/stderr"},
            timeout=5,
        )
        timeline = cluster.timeline()

    assert refused["reason"] == "REASON_TASK_UNAUTHORIZED"
    assert refused["message"] == (
        f"Principal 'runner' no authorized to launch task t-1 of framework {framework_id} "
        "under user 'nobody'"
    )
    assert not [e for e in timeline if e["event"] == "launch"]
    assert [(p, r.status_code) for p, r in flags.items()] == [
        ("runner", 403), ("watcher", 200), ("onlooker", 200),
    ]  # fmt: skip
    assert listed["runner"] == {"type": "GET_FRAMEWORKS", "get_frameworks": {}}
    [seen] = listed["watcher"]["get_frameworks"]["frameworks"]
    assert seen["framework_info"]["id"]["value"] == framework_id
    assert unregistered.status_code == 200  # the stream opens, says why, and ends
    # the ID of a framework not yet registered is empty, as Mesos prints an unset one
    events = [json.loads(line) for line in unregistered.text.splitlines() if line.startswith("{")]
    assert events == [
        {
            "type": "ERROR",
            "error": {
                "message": "Not authorized to register framework  with roles { *, slave_public }"
            },
        }
    ]
    assert sandbox.status_code == 403
    assert [e["principal"] for e in timeline if e["event"] == "forbidden"] == [None]


def test_a_grant_names_known_actions_and_a_denial_to_all_outranks_a_grant():
    authorizer = Authorizer()
    authorizer.grant("calico", {"VIEW_FLAGS", "REGISTER_FRAMEWORK"})
    assert authorizer.allows("calico", "VIEW_FLAGS")
    assert not authorizer.allows("calico", "RUN_TASK")
    assert authorizer.allows("someone", "RUN_TASK")  # never granted: permissive
    authorizer.deny_to_all("VIEW_FLAGS")  # the deny-view-flags fault
    assert not authorizer.allows("calico", "VIEW_FLAGS")
    assert not authorizer.allows("someone", "VIEW_FLAGS")
    with pytest.raises(ValueError, match="unknown action.*VIEW_FLAG:.*checks REGISTER_FRAMEWORK"):
        authorizer.grant("calico", {"VIEW_FLAG"})
