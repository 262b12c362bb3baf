"""Option values with spaces, quotes and `$(…)` survive the whole path to the host.

The way a real agent runs a step: the scheduler's TaskInfo (`steps.py`) gives a shell command,
the shell runs the fetched installer zipapp with the agent's Python, and the installer writes
the host's files. These option values would break apart, or run commands, if any quoting on
that path were missing.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from urllib.parse import unquote, urlsplit

from calico_dcos.options import load_options
from calico_dcos.steps import BY_NAME, AgentView, build_task_info

HOSTILE = "a b 'single' $(touch PWNED) `touch PWNED` ; touch PWNED"


def hostile_options(agent, tmp_path):
    return load_options(None, {
        "CALICO_SERVICE_AGENT_PYTHON": agent.python,
        "CALICO_ROLLOUT_STABILITY_SECONDS": "0",
        "CALICO_CALICO_DEFAULT_PROFILE_POLICY": "plugin-default",  # no etcd here
        "CALICO_DOCKER_CLUSTER_STORE": f"etcd://10.0.0.1:2379/{HOSTILE}",
        "CALICO_CNI_PLUGINS_DIR": f"/opt/cni {HOSTILE}/",
        "CALICO_CNI_CONFIG_DIR": f"/etc/cni {HOSTILE}/",
        "CALICO_CNI_CALICO_URI": (agent.sandbox / "calico").as_uri(),
        "CALICO_CNI_CALICO_IPAM_URI": (agent.sandbox / "calico-ipam").as_uri(),
    })  # fmt: skip


def run_step(agent, name: str, options, tmp_path) -> subprocess.CompletedProcess:
    """Run a step's TaskInfo command in a sandbox, as the devcluster's process executor does."""
    view = AgentView("5f1c-S0", "agent-0")
    task = build_task_info(BY_NAME[name], options, view, f"calico-{name}__x__1", "*", "http://s")
    command = task["command"]
    sandbox = tmp_path / f"sandbox of {name}"
    sandbox.mkdir()
    shutil.copy(agent.zipapp, sandbox / "installer.pyz")
    for uri in command["uris"][1:]:  # the first one is the installer, served by the scheduler
        shutil.copy(unquote(urlsplit(uri["value"]).path), sandbox)
    variables = {v["name"]: v["value"] for v in command["environment"]["variables"]}
    return subprocess.run(
        ["/bin/sh", "-c", command["value"]], cwd=sandbox, env=agent.environ(None, variables),
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_hostile_option_values_reach_the_host_intact(agent, tmp_path):
    options = hostile_options(agent, tmp_path)

    docker = run_step(agent, "docker", options, tmp_path)
    cni = run_step(agent, "cni", options, tmp_path)

    assert docker.returncode == 0, docker.stderr
    assert cni.returncode == 0, cni.stderr
    daemon_json = json.loads(agent.path("/etc/docker/daemon.json").read_text())
    assert daemon_json["cluster-store"] == f"etcd://10.0.0.1:2379/{HOSTILE}"
    assert (
        agent.path(f"/opt/cni {HOSTILE}/calico").read_bytes()
        == (agent.sandbox / "calico").read_bytes()
    )
    config = json.loads(agent.path(f"/etc/cni {HOSTILE}/calico.cni").read_text())
    assert config["ipam"] == {"type": "calico-ipam"}
    assert not list(tmp_path.rglob("PWNED"))
