"""The support matrix, one test per fact: the TaskInfo it requires or the error it refuses with.

Each fact, and where it was read, is in calico_dcos/matrix.py, steps.py and installer/cni.py;
docs/support-matrix.md shows them as a table. Options go through `load_options`, the same
validation as `calico-dcos config validate` and the scheduler's start-up.
"""

import pytest

from calico_dcos import matrix
from calico_dcos.operator_api import warnings_for
from calico_dcos.options import OptionsError, load_options
from calico_dcos.steps import BY_NAME, AgentView, build_task_info

AGENT = AgentView("M1-S3", "10.0.0.3")
ARTIFACTS = "http://10.0.0.5:10001"
CLUSTER = "http://10.0.0.11:2379,http://10.0.0.12:2379"
# calico-v3 on an etcd v3 cluster that does not serve v2: no Docker cluster store.
V3 = {
    "CALICO_CALICO_PROFILE": "calico-v3",
    "CALICO_ETCD_CLUSTER_ENDPOINTS": CLUSTER,
    "CALICO_DOCKER_ENABLE": "false",
    "CALICO_LIBNETWORK_ENABLE": "false",
}
# calico-v3 on an etcd that serves v2 too, as DC/OS 2.x runs its own.
V3_WITH_V2 = {
    "CALICO_CALICO_PROFILE": "calico-v3",
    "CALICO_ETCD_CLUSTER_ENDPOINTS": CLUSTER,
    "CALICO_ETCD_CLUSTER_SERVES_V2": "true",
}


def options(**env):
    return load_options(None, env)


def errors(**env) -> dict[str, str]:
    with pytest.raises(OptionsError) as refused:
        load_options(None, env)
    return dict(refused.value.errors)


def task(step: str, opts) -> dict:
    return build_task_info(BY_NAME[step], opts, AGENT, f"calico-{step}__x__1", "*", ARTIFACTS)


def env_of(info: dict) -> dict[str, str]:
    return {v["name"]: v["value"] for v in info["command"]["environment"]["variables"]}


def argv_of(info: dict) -> str:
    return info["command"]["value"]


# The defaults are one profile: Calico 2.6 on the Universe etcd package.


def test_the_defaults_are_the_calico_2_6_profile_and_valid():
    defaults = options()
    profile = matrix.profile_of(defaults)

    assert profile is matrix.CALICO_26
    assert matrix.proxy_mode(defaults) == "v2"
    assert matrix.node_image(defaults) == "calico/node:v2.6.12"
    assert matrix.libnetwork_image(defaults) == "calico/libnetwork-plugin:v1.1.3"
    assert profile.dcos == ("1.11", "1.12", "1.13")


# etcd


def test_calico_2_6_proxies_etcd_v2_found_by_srv_as_the_universe_package_publishes_it():
    """_etcd-server._tcp.etcd.mesos, which etcd's v2 proxy looks up (embed/config.go)."""
    command = argv_of(task("etcd-proxy", options()))

    assert "--proxy=on" in command and "--discovery-srv=etcd.mesos" in command
    assert "grpc-proxy" not in command


def test_calico_v3_proxies_the_given_etcd_v3_cluster_with_grpc_proxy():
    command = argv_of(task("etcd-proxy", options(**V3)))

    assert f"grpc-proxy start --endpoints={CLUSTER}" in command
    assert "discovery-srv" not in command


def test_calico_v3_without_cluster_endpoints_is_refused_with_the_reason_and_source():
    found = errors(CALICO_CALICO_PROFILE="calico-v3", CALICO_DOCKER_ENABLE="false",
                   CALICO_LIBNETWORK_ENABLE="false")  # fmt: skip

    message = found["etcd.cluster_endpoints"]
    assert "etcd v3 cluster" in message and "_etcd-client._tcp" in message
    assert "source: etcd-io/etcd@v3.4.23:etcdmain/grpc_proxy.go" in message
    assert "master.dcos.thisdcos.directory:2379" in message  # the fix, on DC/OS 2.x


@pytest.mark.parametrize(
    ("env", "mode"),
    [({"CALICO_ETCD_PROXY_MODE": "v3"}, "v3"), ({**V3, "CALICO_ETCD_PROXY_MODE": "v2"}, "v2")],
)
def test_a_proxy_that_does_not_speak_the_profiles_etcd_api_is_refused(env, mode):
    message = errors(**env)["etcd.proxy_mode"]

    assert f"the {mode} proxy serves only the {mode} API" in message
    assert "set it to 'auto'" in message


# Docker's cluster store and the libnetwork plugin


def test_calico_2_6_points_docker_at_the_agents_v2_proxy():
    assert env_of(task("docker", options()))["CALICO_DCOS_CLUSTER_STORE"] == (
        "etcd://localhost:2379"
    )


@pytest.mark.parametrize("step", ["docker", "libnetwork"])
def test_calico_v3_refuses_docker_steps_on_an_etcd_without_the_v2_api(step):
    env = {**V3, f"CALICO_{step.upper()}_ENABLE": "true"}

    message = errors(**env)[f"{step}.enable"]

    assert "speaks only the etcd v2 API" in message and "docker/libkv" in message
    assert "etcd.cluster_serves_v2" in message and f"set {step}.enable to false" in message


def test_calico_v3_points_docker_straight_at_a_cluster_serving_v2_as_dcos_2_does():
    """Not at the agent's grpc-proxy, which serves only v3."""
    store = env_of(task("docker", options(**V3_WITH_V2)))["CALICO_DCOS_CLUSTER_STORE"]

    assert store == "etcd://10.0.0.11:2379,10.0.0.12:2379"


def test_calico_2_6_runs_upstream_libnetwork_v1_1_3_as_an_image():
    info = task("libnetwork", options())

    assert info["container"]["docker"]["image"] == "calico/libnetwork-plugin:v1.1.3"


def test_calico_v3_runs_d2iq_libnetwork_fork_binary_checked_against_dcos_sha1():
    info = task("libnetwork", options(**V3_WITH_V2))

    assert "container" not in info
    assert info["command"]["uris"] == [
        {
            "value": "https://github.com/mesosphere/libnetwork-plugin/releases/download/"
            "v1.1.3-2-d2iq/libnetwork-plugin-amd64",
            "executable": True,
            "cache": True,  # checked against the sha1 before it runs: fixed content
        }
    ]
    assert argv_of(info) == (
        "echo '2db71bf79ac47e7eba2a59ed81440b47defb29ce  libnetwork-plugin-amd64' "
        "| sha1sum -c - && exec ./libnetwork-plugin-amd64"
    )
    env = env_of(info)
    assert env["CALICO_LIBNETWORK_NAMESPACE"] == "default"
    assert env["CALICO_LIBNETWORK_HOSTNAME"] == AGENT.hostname
    assert env["DATASTORE_TYPE"] == "etcdv3"


# CNI


def test_default_plugin_uris_are_release_assets_with_checksums_where_published():
    v26 = task("cni", options())["command"]
    v3 = task("cni", options(**V3))["command"]

    assert [u["value"] for u in v26["uris"][1:]] == [
        "https://github.com/projectcalico/cni-plugin/releases/download/v1.11.8/calico",
        "https://github.com/projectcalico/cni-plugin/releases/download/v1.11.8/calico-ipam",
    ]
    assert "--calico-checksum" not in v26["value"]  # none published for v1.11.8
    assert [u["value"] for u in v3["uris"][1:]] == [
        "https://github.com/projectcalico/cni-plugin/releases/download/v3.14.0/calico-amd64",
        "https://github.com/projectcalico/cni-plugin/releases/download/v3.14.0/calico-ipam-amd64",
    ]
    assert "--calico-checksum sha1:1579ebf178f72292a1bc8fab0d74a88ab0921084" in v3["value"]
    assert "--calico-ipam-checksum sha1:7eeaf366c30c279c4688a220083cb5f123616042" in v3["value"]


def test_given_plugin_uris_carry_only_their_given_checksum():
    given = options(
        **V3,
        CALICO_CNI_CALICO_URI="https://mirror.example/calico",
        CALICO_CNI_CALICO_CHECKSUM="sha256:" + "a" * 64,
    )
    command = argv_of(task("cni", given))

    assert "--calico-checksum sha256:" + "a" * 64 in command
    assert "--calico-ipam-checksum sha1:7eeaf366" in command  # the profile's own ipam URI


def test_a_malformed_checksum_is_refused_naming_the_option():
    assert "cni.calico_checksum" in errors(CALICO_CNI_CALICO_CHECKSUM="md5:abc")


def test_the_agent_is_not_restarted_on_mesos_1_2_and_later():
    """MESOS-6567: every supported DC/OS runs Mesos >= 1.5 (matrix.DCOS_RELEASES)."""
    defaults = options()

    assert "--restart-agent" not in argv_of(task("cni", defaults))
    assert BY_NAME["cni"].restarts_with(defaults) is None
    assert min(r.mesos for r in matrix.supported_releases()) == (1, 5)


def test_the_agent_restart_is_there_for_older_agents_and_counts_against_the_budget():
    old = options(CALICO_CNI_RESTART_AGENT="true")

    assert "--restart-agent" in argv_of(task("cni", old))
    assert BY_NAME["cni"].restarts_with(old) == "agent"


# The IPv4 pool and encapsulation


def test_calico_2_6_pool_ipip_by_default_with_nat_as_dcos_2_sets_it():
    env = env_of(task("node", options()))

    assert env["CALICO_IPV4POOL_CIDR"] == "172.29.0.0/16"
    assert env["CALICO_IPV4POOL_IPIP"] == "always"
    assert env["CALICO_IPV4POOL_NAT_OUTGOING"] == "true"
    assert env["CALICO_NETWORKING_BACKEND"] == "bird"
    assert "CALICO_IPV4POOL_VXLAN" not in env  # Calico 2.6 has no VXLAN


@pytest.mark.parametrize(
    ("encapsulation", "ipip", "vxlan", "backend"),
    [("vxlan", "never", "always", "vxlan"), ("ipip", "always", "never", "bird"),
     ("none", "never", "never", "bird")],
)  # fmt: skip
def test_calico_v3_pool_encapsulation_and_backend(encapsulation, ipip, vxlan, backend):
    opts = options(**V3, CALICO_CALICO_IPV4POOL_ENCAPSULATION=encapsulation,
                   CALICO_CALICO_IPV4POOL_CIDR="10.32.0.0/12")  # fmt: skip
    env = env_of(task("node", opts))

    assert env["CALICO_IPV4POOL_CIDR"] == "10.32.0.0/12"
    assert (env["CALICO_IPV4POOL_IPIP"], env["CALICO_IPV4POOL_VXLAN"]) == (ipip, vxlan)
    assert env["CALICO_NETWORKING_BACKEND"] == backend


def test_vxlan_with_calico_2_6_is_refused_since_vxlan_came_in_3_7():
    message = errors(CALICO_CALICO_IPV4POOL_ENCAPSULATION="vxlan")["calico.ipv4pool_encapsulation"]

    assert "VXLAN only from v3.7" in message and "VXLANEnabled" in message


def test_a_backend_that_cannot_route_the_pool_is_refused():
    found = errors(**V3, CALICO_CALICO_IPV4POOL_ENCAPSULATION="vxlan",
                   CALICO_NODE_NETWORKING_BACKEND="bird")  # fmt: skip

    assert "set it to 'auto'" in found["node.networking_backend"]


@pytest.mark.parametrize("cidr", ["172.29.0.1/16", "fd00::/64", "172.29.0.0/33", "calico"])
def test_a_pool_that_is_no_ipv4_network_is_refused(cidr):
    assert "calico.ipv4pool_cidr" in errors(CALICO_CALICO_IPV4POOL_CIDR=cidr)


# calico-node


@pytest.mark.parametrize(("env", "datastore"), [({}, "etcdv2"), (V3, "etcdv3")])
def test_datastore_type_is_what_the_profiles_calico_reads(env, datastore):
    assert env_of(task("node", options(**env)))["DATASTORE_TYPE"] == datastore


def test_run_is_mounted_for_iptables_lock():
    volumes = task("node", options())["container"]["volumes"]

    assert {"container_path": "/run", "host_path": "/run", "mode": "RW"} in volumes


def test_ip_is_the_agents_address_from_dcos_detect_ip_through_libprocess_ip():
    info = task("node", options())

    assert info["command"]["shell"] is True
    assert argv_of(info) == 'IP="${LIBPROCESS_IP:-autodetect}"; export IP; exec start_runit'
    assert "IP" not in env_of(info)


def test_v3_health_check_kills_on_liveness_only_and_is_first_healthy_when_ready():
    check = task("node", options(**V3))["health_check"]["command"]["value"]

    ready, live = "calico-node -felix-ready -bird-ready", "calico-node -felix-live -bird-live"
    assert check.startswith(f"if {ready}; then touch ")
    assert check.endswith(f"&& {live}; fi")


def test_v3_vxlan_checks_felix_alone_since_no_bird_runs():
    opts = options(**V3, CALICO_CALICO_IPV4POOL_ENCAPSULATION="vxlan")
    check = task("node", opts)["health_check"]["command"]["value"]

    assert "-felix-ready" in check and "-felix-live" in check and "bird" not in check


def test_calico_2_6_health_uses_felix_endpoints_since_it_has_no_calico_node_binary():
    info = task("node", options())
    check = info["health_check"]["command"]["value"]

    assert "calico-node" not in check.replace("calico-node-was-ready", "")
    assert "wget -q -O /dev/null http://localhost:9099/readiness" in check
    assert "wget -q -O /dev/null http://localhost:9099/liveness" in check
    assert env_of(info)["FELIX_HEALTHENABLED"] == "true"


def test_loose_rp_filter_is_ignored_and_warned_about_only_where_felix_has_the_setting():
    """Felix v3.12 dropped IgnoreLooseRPF (felix 9eabe46, #2189): the warning would be wrong."""
    v26, v3 = options(), options(**V3)

    assert env_of(task("node", v26))["FELIX_IGNORELOOSERPF"] == "true"
    assert warnings_for(v26) and "rp_filter" in warnings_for(v26)[0]
    assert "FELIX_IGNORELOOSERPF" not in env_of(task("node", v3))
    assert warnings_for(v3) == []


@pytest.mark.parametrize(
    ("env", "image"),
    [({}, "calico/node:v3.14.0"), (V3, "calico/node:v3.11.2"), (V3, "calico/node:v2.6.12")],
)
def test_a_node_image_from_another_calico_is_refused(env, image):
    message = errors(**env, CALICO_NODE_IMAGE=image)["node.image"]

    assert image in message and "source:" in message


def test_a_node_image_without_a_version_tag_is_taken_as_the_profiles():
    digest = "registry.example/calico/node@sha256:" + "b" * 64
    assert matrix.node_image(options(**V3, CALICO_NODE_IMAGE=digest)) == digest


# The default profile's policy is an explicit choice


@pytest.mark.parametrize(
    ("env", "api"),
    [({}, "v2"), ({**V3, "CALICO_CALICO_DEFAULT_PROFILE_POLICY": "allow-all"}, "v3")],
)
def test_allow_all_default_profile_is_created_by_the_cni_step(env, api):
    info = task("cni", options(**env))

    assert "--default-profile allow-all" in argv_of(info)
    assert f"--etcd-api {api}" in argv_of(info)
    if api == "v3":  # the cluster itself: grpc-proxy serves no JSON gateway
        assert env_of(info)["CALICO_DCOS_PROFILE_ETCD_ENDPOINTS"] == CLUSTER


def test_plugin_default_profile_leaves_policy_to_the_cni_plugin():
    info = task("cni", options(CALICO_CALICO_DEFAULT_PROFILE_POLICY="plugin-default"))

    assert "--default-profile plugin-default" in argv_of(info)
