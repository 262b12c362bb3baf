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


def run_cni(agent, endpoints: str):
    """The cni command with the stand-in plugins and `$ETCD_ENDPOINTS` = `endpoints`."""
    return agent.run(
        "cni", "--calico-bin", str(agent.sandbox / "calico"),
        "--calico-ipam-bin", str(agent.sandbox / "calico-ipam"),
        "--stability-seconds", "0", "--timeout-seconds", "20",
        env={"ETCD_ENDPOINTS": endpoints},
    )  # fmt: skip


def test_cni_takes_the_etcd_endpoints_from_the_environment(agent):
    result = run_cni(agent, SECRET_ENDPOINTS)
    assert result.returncode == 0, result.stderr
    config = json.loads(agent.path("/opt/mesosphere/etc/dcos/network/cni/calico.cni").read_text())
    assert config["etcd_endpoints"] == SECRET_ENDPOINTS
    assert "s3cret" not in result.stderr


def test_without_flag_or_variable_the_command_says_what_to_give(agent):
    result = agent.run("docker", env={"CALICO_DCOS_CLUSTER_STORE": ""})
    assert result.returncode == 2
    assert "give --cluster-store or set $CALICO_DCOS_CLUSTER_STORE" in result.stderr


def test_files_holding_a_password_are_readable_by_their_owner_only(agent):
    """daemon.json and the CNI config with an etcd password are 0600 (dockerd and the Mesos
    agent read them as root), and so are the installer's records of what it wrote; without
    a password daemon.json keeps the mode it had."""
    agent.path("/etc/docker/daemon.json").write_text("{}")
    agent.path("/etc/docker/daemon.json").chmod(0o644)
    result = agent.run("docker", "--stability-seconds", "0", "--timeout-seconds", "20",
                       env={"CALICO_DCOS_CLUSTER_STORE": SECRET_STORE})  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert agent.path("/etc/docker/daemon.json").stat().st_mode & 0o777 == 0o600
    state = agent.path("/etc/calico/installer")
    records = [p for p in state.rglob("*") if p.is_file() and b"s3cret" in p.read_bytes()]
    assert records, "the installer keeps a record of the value it wrote"
    leaky = [p for p in records if p.stat().st_mode & 0o077 and "backups" not in p.parts]
    assert not leaky, leaky
    result = run_cni(agent, SECRET_ENDPOINTS)
    assert result.returncode == 0, result.stderr
    config = agent.path("/opt/mesosphere/etc/dcos/network/cni/calico.cni")
    assert config.stat().st_mode & 0o777 == 0o600


def test_without_a_password_the_files_keep_their_modes(agent):
    agent.path("/etc/docker/daemon.json").write_text("{}")
    agent.path("/etc/docker/daemon.json").chmod(0o644)
    result = agent.run("docker", "--stability-seconds", "0", "--timeout-seconds", "20",
                       env={"CALICO_DCOS_CLUSTER_STORE": "etcd://10.0.0.1:2379"})  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert agent.path("/etc/docker/daemon.json").stat().st_mode & 0o777 == 0o644
    result = run_cni(agent, "https://10.0.0.1:2379")
    assert result.returncode == 0, result.stderr
    config = agent.path("/opt/mesosphere/etc/dcos/network/cni/calico.cni")
    assert config.stat().st_mode & 0o777 == 0o644
