"""The step catalog and its TaskInfos; commands are run through /bin/sh with argv-printing fakes."""

import json
import os
import subprocess
import sys

import pytest

from calico_dcos import steps
from calico_dcos.options import Options, load_options, option_names
from calico_dcos.steps import BY_NAME, STEPS, AgentView, build_task_info

# Holds everything a shell could trip on: spaces, both quotes, $(…), backquotes, ;, $VAR, \.
HOSTILE = "a b 'c' \"d\" $(touch pwned) `touch pwned2`; $HOME \\ &"
AGENT = AgentView("M1-S3", "agent-3", False, {"rack": "r1"})
PUBLIC = AgentView("M1-S4", "agent-4", True, {})
ARTIFACTS = "http://10.0.0.5:10001"


def defaults(**overrides):
    """Default options with `section__key=value` overrides, without schema validation, so that
    the builders are shown to quote even values the schema would refuse."""
    raw = load_options(None, {}).raw
    for name, value in overrides.items():
        section, key = name.split("__")
        raw[section][key] = value
    return Options(raw)


def task(step_name, options, agent=AGENT, role="*"):
    step = BY_NAME[step_name]
    return build_task_info(step, options, agent, f"calico-{step_name}__x__1", role, ARTIFACTS)


def env_of(task_info):
    return {v["name"]: v["value"] for v in task_info["command"]["environment"]["variables"]}


def argv_printer(path):
    """A tiny fake program (stands in for etcd and the agent's python) that prints its argv."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!{sys.executable}\nimport json, sys\nprint(json.dumps(sys.argv[1:]))\n")
    path.chmod(0o755)
    return path


def run_in_sandbox(task_info, sandbox):
    """Run the command the way the Mesos command executor does: `sh -c value` in the sandbox."""
    assert task_info["command"]["shell"] is True
    result = subprocess.run(
        ["/bin/sh", "-c", task_info["command"]["value"]],
        cwd=sandbox,
        env={"PATH": os.environ["PATH"], "LIBPROCESS_IP": "127.0.1.7", "HOME": "/nonexistent"},
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert result.returncode == 0, result.stderr
    assert not (sandbox / "pwned").exists()
    assert not (sandbox / "pwned2").exists()
    return json.loads(result.stdout)


def test_chain_order_kinds_and_restarts():
    assert [(s.name, s.kind, s.restarts) for s in STEPS] == [
        ("etcd-proxy", "daemon", None),
        ("docker", "oneshot", "docker"),
        ("cni", "oneshot", "agent"),
        ("libnetwork", "daemon", None),
        ("node", "daemon", None),
    ]
    assert [s.name for s in STEPS if s.health_checked] == ["node"]


def test_disabled_steps_leave_the_chain():
    options = load_options(
        None, {"CALICO_DOCKER_ENABLE": "false", "CALICO_ETCD_RUN_PROXY": "false"}
    )
    assert [s.name for s in steps.enabled_steps(options)] == ["cni", "libnetwork", "node"]


def test_every_fingerprint_input_is_an_option():
    for step in STEPS:
        assert set(step.depends_on) <= set(option_names()), step.name


def changed_fingerprints(**overrides):
    before, after = defaults(), defaults(**overrides)
    return {s.name for s in STEPS if s.fingerprint(before) != s.fingerprint(after)}


def test_node_image_changes_only_the_node_fingerprint():
    assert changed_fingerprints(node__image="calico/node:v3.27.0") == {"node"}


def test_etcd_endpoints_feed_docker_cni_libnetwork_and_node():
    changed = changed_fingerprints(etcd__endpoints="http://10.0.0.1:2379")
    assert changed == {"docker", "cni", "libnetwork", "node"}


def test_options_that_change_no_installed_thing_change_no_fingerprint():
    assert changed_fingerprints(rollout__stability_seconds=5, service__log_level="debug") == set()
    assert changed_fingerprints(docker__cpus=0.5, cni__mem=256) == set()


def test_fingerprint_is_a_stable_sha256():
    fingerprint = BY_NAME["cni"].fingerprint(defaults())
    assert fingerprint == BY_NAME["cni"].fingerprint(load_options(None, {}))
    assert len(fingerprint) == 64 and int(fingerprint, 16) >= 0


@pytest.mark.parametrize("step", [s.name for s in STEPS])
def test_task_info_shape_resources_and_labels(step):
    options = defaults()
    info = task(step, options, PUBLIC, role="slave_public")
    assert info["name"] == f"calico-{step}"
    assert info["task_id"] == {"value": f"calico-{step}__x__1"}
    assert info["agent_id"] == {"value": "M1-S4"}
    assert "executor" not in info and "command" in info
    section = BY_NAME[step].section
    assert info["resources"] == [
        {
            "name": name,
            "type": "SCALAR",
            "scalar": {"value": options[section][name]},
            "role": "slave_public",
            "allocation_info": {"role": "slave_public"},
        }
        for name in ("cpus", "mem")
    ]
    assert info["labels"]["labels"] == [
        {"key": "calico_dcos.step", "value": step},
        {"key": "calico_dcos.fingerprint", "value": BY_NAME[step].fingerprint(options)},
    ]
    json.dumps(info)


def etcd_sandbox(tmp_path):
    sandbox = tmp_path / "sandbox"
    argv_printer(sandbox / "etcd-v3.4.23-linux-amd64" / "etcd")
    return sandbox


def test_etcd_v2_proxy_by_srv_discovery_on_localhost_by_default(tmp_path):
    """The default profile, calico-2.6, on the Universe etcd package (_etcd-server by SRV)."""
    info = task("etcd-proxy", defaults())
    assert info["command"]["uris"] == [
        {
            "value": "https://github.com/etcd-io/etcd/releases/download/v3.5.17/etcd-v3.5.17-linux-amd64.tar.gz",
            "extract": True,
            "executable": False,
            "cache": True,
        }
    ]
    assert run_in_sandbox(info, etcd_sandbox(tmp_path)) == [
        "--proxy=on",
        "--discovery-srv=etcd.mesos",
        "--listen-client-urls=http://127.0.0.1:2379",
    ]


def test_etcd_v3_proxy_to_static_endpoints_on_the_agent_ip(tmp_path):
    options = defaults(
        calico__profile="calico-v3",
        etcd__cluster_endpoints=f"http://e1:2379,{HOSTILE}",
        etcd__listen_address="agent-ip",
        etcd__listen_port=12379,
    )
    assert run_in_sandbox(task("etcd-proxy", options), etcd_sandbox(tmp_path)) == [
        "grpc-proxy",
        "start",
        f"--endpoints=http://e1:2379,{HOSTILE}",
        "--listen-addr=127.0.1.7:12379",
    ]


def test_etcd_v2_proxy_static_and_srv(tmp_path):
    sandbox = etcd_sandbox(tmp_path)
    static = defaults(
        etcd__proxy_mode="v2", etcd__cluster_endpoints="http://e1:2380,http://e2:2380"
    )
    assert run_in_sandbox(task("etcd-proxy", static), sandbox) == [
        "--proxy=on",
        "--initial-cluster=m0=http://e1:2380,m1=http://e2:2380",
        "--listen-client-urls=http://127.0.0.1:2379",
    ]
    srv = defaults(etcd__proxy_mode="v2", etcd__discovery_srv=HOSTILE)
    assert run_in_sandbox(task("etcd-proxy", srv), sandbox)[1] == f"--discovery-srv={HOSTILE}"


def test_etcd_binary_found_when_the_tarball_has_no_top_directory(tmp_path):
    sandbox = tmp_path / "sandbox"
    argv_printer(sandbox / "etcd")
    assert run_in_sandbox(task("etcd-proxy", defaults()), sandbox)[0] == "--proxy=on"


def installer_sandbox(tmp_path):
    """A sandbox and an agent python whose path itself needs quoting."""
    sandbox = tmp_path / "sandbox"
    sandbox.mkdir()
    python = argv_printer(tmp_path / "agent's python $(x)" / "python3")
    return sandbox, str(python)


def test_docker_step_runs_the_installer_with_every_value_intact(tmp_path):
    sandbox, python = installer_sandbox(tmp_path)
    options = defaults(
        service__agent_python=python,
        docker__cluster_store=HOSTILE,
        rollout__stability_seconds=0.5,
        agents__override_existing_calico=True,
    )
    info = task("docker", options)
    assert run_in_sandbox(info, sandbox) == [
        "./installer.pyz",
        "docker",
        "--stability-seconds",
        "0.5",
        "--force",
    ]
    assert info["command"]["uris"] == [
        {"value": f"{ARTIFACTS}/v1/artifacts/installer.pyz", "executable": False}
    ]
    assert env_of(info) == {
        "ETCD_ENDPOINTS": "http://localhost:2379",
        "CALICO_DCOS_REPORT_URL": f"{ARTIFACTS}/v1/agents/M1-S3/report",
        "CALICO_DCOS_CLUSTER_STORE": HOSTILE,
    }


def test_docker_cluster_store_derived_from_the_endpoints():
    options = defaults(etcd__endpoints="http://a:2379,http://b:2379")
    assert env_of(task("docker", options))["CALICO_DCOS_CLUSTER_STORE"] == "etcd://a:2379,b:2379"


@pytest.mark.parametrize("step", ["docker", "cni"])
def test_etcd_credentials_never_reach_the_installers_command_line(step):
    """Issue 13 case 5: argv is world-readable on the agent (`ps`) and in Mesos' state."""
    endpoint = "https://user:pw@192.0.2.2:2379"
    info = task(step, defaults(etcd__endpoints=endpoint))
    assert "pw" not in info["command"]["value"]
    assert env_of(info)["ETCD_ENDPOINTS"] == endpoint


def test_cni_step_on_a_public_agent_with_hostile_values(tmp_path):
    sandbox, python = installer_sandbox(tmp_path)
    options = defaults(
        service__agent_python=python,
        cni__plugins_dir=HOSTILE + "/plugins",
        cni__config_dir=HOSTILE + "/conf",
        etcd__endpoints=HOSTILE,
        cni__calico_uri="file:///srv/art/calico%20bin",
        cni__log_level="debug",
    )
    info = task("cni", options, PUBLIC)
    assert run_in_sandbox(info, sandbox) == [
        "./installer.pyz",
        "cni",
        "--plugins-dir", HOSTILE + "/plugins",
        "--config-dir", HOSTILE + "/conf",
        "--config-name", "calico.cni",
        "--network-name", "calico",
        "--log-level", "debug",
        "--calico-bin", "./calico%20bin",
        "--calico-ipam-bin", "./calico-ipam",
        "--default-profile", "allow-all",
        "--etcd-api", "v2",
        "--public",
        "--stability-seconds", "30",
    ]  # fmt: skip
    assert info["command"]["uris"][1:] == [
        {"value": "file:///srv/art/calico%20bin", "executable": True},
        {
            "value": "https://github.com/projectcalico/cni-plugin/releases/download/v1.11.8/calico-ipam",
            "executable": True,
            "cache": True,
        },
    ]
    assert env_of(info)["CALICO_DCOS_REPORT_URL"] == f"{ARTIFACTS}/v1/agents/M1-S4/report"


def test_cni_step_on_a_private_agent_has_no_public_flag(tmp_path):
    sandbox, python = installer_sandbox(tmp_path)
    argv = run_in_sandbox(task("cni", defaults(service__agent_python=python)), sandbox)
    assert "--public" not in argv and "--force" not in argv


def test_libnetwork_runs_privileged_on_the_host_network_with_docker_sockets():
    info = task("libnetwork", defaults(libnetwork__image="me/plugin:1"))
    assert info["container"] == {
        "type": "DOCKER",
        "docker": {"image": "me/plugin:1", "network": "HOST", "privileged": True},
        "volumes": [
            {"container_path": p, "host_path": p, "mode": "RW"}
            for p in ("/run/docker/plugins", "/var/run/docker.sock")
        ],
    }
    assert info["command"]["shell"] is False and "value" not in info["command"]
    assert env_of(info) == {"ETCD_ENDPOINTS": "http://localhost:2379"}


def test_node_container_environment_and_felix_bird_health_check():
    options = defaults(
        calico__profile="calico-v3",
        node__extra_env="FELIX_LOGSEVERITYSCREEN=info,IP=10.0.0.9",
        node__ip_autodetection_method="can-reach=8.8.8.8",
    )
    info = task("node", options)
    assert info["container"]["docker"] == {
        "image": "calico/node:v3.14.0",
        "network": "HOST",
        "privileged": True,
    }
    assert {(v["host_path"], v["mode"]) for v in info["container"]["volumes"]} == {
        ("/lib/modules", "RO"),
        ("/run", "RW"),
        ("/var/run/calico", "RW"),
        ("/var/lib/calico", "RW"),
        ("/var/log/calico", "RW"),
        ("/run/docker/plugins", "RW"),
        ("/var/run/docker.sock", "RW"),
    }
    assert env_of(info) == {
        "ETCD_ENDPOINTS": "http://localhost:2379",
        "DATASTORE_TYPE": "etcdv3",
        "NODENAME": "agent-3",
        "IP": "10.0.0.9",
        "IP_AUTODETECTION_METHOD": "can-reach=8.8.8.8",
        "CALICO_NETWORKING_BACKEND": "bird",
        "CALICO_LIBNETWORK_ENABLED": "false",
        "CALICO_IPV4POOL_CIDR": "172.29.0.0/16",
        "CALICO_IPV4POOL_IPIP": "always",
        "CALICO_IPV4POOL_VXLAN": "never",
        "CALICO_IPV4POOL_NAT_OUTGOING": "true",
        "FELIX_HEALTHENABLED": "true",
        "FELIX_LOGSEVERITYSCREEN": "info",
    }
    check = info["health_check"]
    assert check["type"] == "COMMAND"
    assert "calico-node -felix-ready -bird-ready" in check["command"]["value"]
    assert "calico-node -felix-live -bird-live" in check["command"]["value"]
    assert check["grace_period_seconds"] >= check["interval_seconds"] > 0


def test_node_health_check_timing_derives_from_its_interval_option():
    default = task("node", defaults())["health_check"]
    fast = task("node", load_options(None, {"CALICO_NODE_HEALTH_CHECK_INTERVAL_SECONDS": "1"}))

    assert (default["delay_seconds"], default["interval_seconds"]) == (10, 10)
    assert default["grace_period_seconds"] == 60
    timing = ("delay_seconds", "interval_seconds", "timeout_seconds", "grace_period_seconds")
    assert [fast["health_check"][key] for key in timing] == [1, 1, 1, 6]


def test_health_check_interval_changes_only_the_node_fingerprint():
    assert changed_fingerprints(node__health_check_interval_seconds=1) == {"node"}


def test_node_without_bird_checks_felix_only_and_strict_rpf_omits_the_override():
    """calico-2.6 has no VXLAN (refused by validation); the builder still drops BIRD."""
    info = task(
        "node", defaults(calico__ipv4pool_encapsulation="vxlan", node__ignore_loose_rpf=False)
    )
    assert "bird" not in info["health_check"]["command"]["value"]
    assert "FELIX_IGNORELOOSERPF" not in env_of(info)
    assert env_of(info)["CALICO_NETWORKING_BACKEND"] == "vxlan"


@pytest.mark.parametrize("step", ["docker", "cni"])
def test_the_installer_accepts_the_arguments_a_step_builds(tmp_path, step):
    from calico_dcos.installer.cli import build_parser

    sandbox, python = installer_sandbox(tmp_path)
    options = defaults(service__agent_python=python, agents__override_existing_calico=True)
    argv = run_in_sandbox(task(step, options, PUBLIC), sandbox)
    args = build_parser().parse_args(argv[1:])
    assert args.stability_seconds == 30.0
    assert args.force is True


def test_only_uris_whose_content_is_fixed_go_through_the_agents_fetcher_cache():
    """Mesos never refreshes a cached URI (apache/mesos docs/fetcher.md): a versioned release
    asset or a checksummed file is cached, the scheduler's installer and an operator's
    unversioned, unchecked file are not."""

    def cached(step, options):
        return {u["value"].rsplit("/", 1)[-1]: u.get("cache", False)
                for u in task(step, options)["command"]["uris"]}  # fmt: skip

    mirror = "http://mirror.example/etcd.tar.gz"
    assert cached("etcd-proxy", defaults()) == {"etcd-v3.5.17-linux-amd64.tar.gz": True}
    assert cached("etcd-proxy", defaults(etcd__binary_uri=mirror)) == {"etcd.tar.gz": False}
    assert cached("docker", defaults()) == {"installer.pyz": False}
    assert cached("cni", defaults()) == {"installer.pyz": False, "calico": True,
                                         "calico-ipam": True}  # fmt: skip
    given = defaults(
        cni__calico_uri="http://mirror.example/calico",
        cni__calico_checksum="sha1:" + "a" * 40,
        cni__calico_ipam_uri="http://mirror.example/calico-ipam",
    )
    assert cached("cni", given) == {"installer.pyz": False, "calico": True, "calico-ipam": False}
