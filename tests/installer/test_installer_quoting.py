"""Option values with spaces, quotes and `$(…)` arrive intact: no shell ever reads them."""

from __future__ import annotations

import json
import subprocess
import sys

NASTY = """a b "double" 'single' $(touch PWNED) `touch PWNED` ; touch PWNED"""


def test_nasty_values_arrive_intact_through_the_zipapp(agent, tmp_path):
    store = f"etcd://10.0.0.1:2379/{NASTY}"
    plugins_dir = f"/opt/cni plugins/{NASTY}/"
    config_dir = f"/etc/cni 'net' $(x)/{NASTY}/"
    fetched = agent.sandbox / NASTY
    fetched.mkdir()
    for name in ("calico", "calico-ipam"):
        (fetched / name).write_bytes((agent.sandbox / name).read_bytes())

    docker = agent.docker(store)
    cni = agent.run(
        "cni",
        "--plugins-dir",
        plugins_dir,
        "--config-dir",
        config_dir,
        "--config-name",
        f"{NASTY}.cni",
        "--network-name",
        NASTY,
        "--etcd-endpoints",
        f"http://10.0.0.1:2379/{NASTY}",
        "--log-level",
        NASTY,
        "--calico-bin",
        str(fetched / "calico"),
        "--calico-ipam-bin",
        str(fetched / "calico-ipam"),
        "--stability-seconds",
        "0",
    )

    assert docker.returncode == 0, docker.stderr
    assert cni.returncode == 0, cni.stderr
    assert json.loads(agent.path("/etc/docker/daemon.json").read_text())["cluster-store"] == store
    assert agent.path(plugins_dir + "calico").read_bytes() == (fetched / "calico").read_bytes()
    config = json.loads(agent.path(config_dir + f"{NASTY}.cni").read_text())
    assert (config["name"], config["log_level"]) == (NASTY, NASTY)
    assert config["etcd_endpoints"] == f"http://10.0.0.1:2379/{NASTY}"
    assert not list(tmp_path.rglob("PWNED"))


def test_nasty_values_arrive_intact_through_calico_dcos_installer(agent, tmp_path):
    store = f"etcd://10.0.0.1:2379/{NASTY}"
    argv = [
        sys.executable,
        "-m",
        "calico_dcos.cli",
        "installer",
        "docker",
        "--host-root",
        str(agent.root),
        "--cluster-store",
        store,
        "--stability-seconds",
        "0",
    ]

    result = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        cwd=agent.sandbox,
        env=agent.environ(None, None),
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    assert json.loads(agent.path("/etc/docker/daemon.json").read_text())["cluster-store"] == store
    assert not list(tmp_path.rglob("PWNED"))
