"""Credentials in etcd URLs reach the installer through its environment, never its argv, and
its output never shows the password (issue 13, case 5). Runs the built zipapp on a simulated
host with the project's systemctl/docker stand-ins."""

import json

SECRET_STORE = "etcd://user:s3cret@10.0.0.1:2379"
SECRET_ENDPOINTS = "https://user:s3cret@10.0.0.1:2379"


def test_docker_takes_the_cluster_store_from_the_environment(agent):
    result = agent.run("docker", "--stability-seconds", "0", "--timeout-seconds", "20",
                       env={"CALICO_DCOS_CLUSTER_STORE": SECRET_STORE})  # fmt: skip
    assert result.returncode == 0, result.stderr
    daemon = json.loads(agent.path("/etc/docker/daemon.json").read_text())
    assert daemon["cluster-store"] == SECRET_STORE
    assert "s3cret" not in result.stderr
    assert "user:***@10.0.0.1" in result.stderr


def test_cni_takes_the_etcd_endpoints_from_the_environment(agent):
    result = agent.run(
        "cni", "--calico-bin", str(agent.sandbox / "calico"),
        "--calico-ipam-bin", str(agent.sandbox / "calico-ipam"),
        "--stability-seconds", "0", "--timeout-seconds", "20",
        env={"ETCD_ENDPOINTS": SECRET_ENDPOINTS},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    config = json.loads(agent.path("/opt/mesosphere/etc/dcos/network/cni/calico.cni").read_text())
    assert config["etcd_endpoints"] == SECRET_ENDPOINTS
    assert "s3cret" not in result.stderr


def test_without_flag_or_variable_the_command_says_what_to_give(agent):
    result = agent.run("docker", env={"CALICO_DCOS_CLUSTER_STORE": ""})
    assert result.returncode == 2
    assert "give --cluster-store or set $CALICO_DCOS_CLUSTER_STORE" in result.stderr
