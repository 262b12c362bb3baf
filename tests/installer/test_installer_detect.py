"""A host that already runs Calico (DC/OS 2.x units, or a hand-written CNI config) is left alone."""

from __future__ import annotations

import json

from tests.installer.installer_host import CONFIG_DIR

FOREIGN_CONFIG = {"name": "calico", "type": "calico", "ipam": {"type": "calico-ipam"}}


def test_dcos_calico_host_changes_nothing_and_is_reported(make_agent, report_url):
    url, bodies, _ = report_url
    agent = make_agent(dcos_calico=True, agent_id="5f1c-S7")
    before = agent.files()
    env = {"CALICO_DCOS_REPORT_URL": url, "MESOS_TASK_ID": "calico-docker__5f1c-S7__4f2a9c01__1"}

    docker_result = agent.docker(env=env)
    cni_result = agent.cni()

    for result in (docker_result, cni_result):
        assert result.returncode == 0, result.stderr
        assert "Calico is already present" in result.stderr
    assert agent.files() == before
    assert agent.restarts("docker") == 0 and agent.restarts("dcos-mesos-slave") == 0
    assert bodies == [
        {
            "agent_id": "5f1c-S7",
            "step": "docker",
            "calico_present": True,
            "found": [
                "unit dcos-calico-felix is active",
                "unit dcos-calico-bird is active",
                "unit file /etc/systemd/system/dcos-calico-felix.service",
            ],
        }
    ]


def test_the_report_carries_the_tasks_token_and_fits_the_schedulers_bounds(make_agent, report_url):
    """The scheduler accepts a report only with the agent's token from the task's environment
    (calico_dcos/report_auth.py), and refuses more findings than api.MAX_FOUND_ITEMS."""
    from calico_dcos import api

    url, bodies, authorizations = report_url
    agent = make_agent(dcos_calico=True, agent_id="5f1c-S7")
    for i in range(api.MAX_FOUND_ITEMS + 4):
        config = dict(FOREIGN_CONFIG, name="x" * 300)
        agent.path(CONFIG_DIR + f"calico-{i:02}.conf").write_text(json.dumps(config))
    env = {
        "CALICO_DCOS_REPORT_URL": url,
        "CALICO_DCOS_REPORT_TOKEN": "4f2a" * 16,
        "MESOS_TASK_ID": "calico-cni__5f1c-S7__4f2a9c01__1",
    }

    result = agent.cni(env=env)

    assert result.returncode == 0, result.stderr
    assert "4f2a" * 16 not in result.stderr
    [body] = bodies
    assert authorizations == ["Bearer " + "4f2a" * 16]
    assert len(body["found"]) == api.MAX_FOUND_ITEMS
    assert max(len(item) for item in body["found"]) <= api.MAX_FOUND_CHARS
    assert api.parse_report("5f1c-S7", body)["found"] == body["found"]


def test_force_installs_on_a_host_with_calico(make_agent):
    agent = make_agent(dcos_calico=True)

    result = agent.docker("etcd://10.0.0.1:2379", "--force")

    assert result.returncode == 0, result.stderr
    assert agent.restarts("docker") == 1


def test_hand_written_calico_cni_config_stops_the_cni_step(agent):
    agent.path(CONFIG_DIR + "calico.conf").write_text(json.dumps(FOREIGN_CONFIG))
    before = agent.files()

    result = agent.cni()
    detect = agent.run("detect")

    assert result.returncode == 0, result.stderr
    assert agent.files() == before
    assert agent.restarts("dcos-mesos-slave") == 0
    assert detect.stdout.strip() == (
        "CNI config /opt/mesosphere/etc/dcos/network/cni/calico.conf "
        "(type calico, not written by this installer)"
    )


def test_unreachable_report_url_is_only_logged(make_agent):
    agent = make_agent(dcos_calico=True)

    result = agent.docker(env={"CALICO_DCOS_REPORT_URL": "http://127.0.0.1:1/v1/reports"})

    assert result.returncode == 0, result.stderr
    assert "could not report" in result.stderr


def test_detect_on_a_clean_host_finds_nothing(agent):
    result = agent.run("detect")

    assert (result.returncode, result.stdout) == (0, "Calico not found\n")
