"""Every option the schema accepts is one its reader accepts (issue 13, case 1).

Each case is a boundary: the last value the reader takes, and the first it refuses.
"""

import pytest

from calico_dcos.options import OptionsError, load_options


def errors_for(env: dict[str, str]) -> dict[str, str]:
    try:
        load_options(None, env)
    except OptionsError as exc:
        return dict(exc.errors)
    return {}


def test_an_etcd_endpoint_without_a_scheme_is_refused_naming_the_option():
    errors = errors_for({"CALICO_ETCD_ENDPOINTS": "192.0.2.10:2379"})
    assert "must start with http:// or https://" in errors["etcd.endpoints"]
    assert "http://192.0.2.10:2379" in errors["etcd.endpoints"]


ACCEPTED = [
    ("CALICO_ETCD_ENDPOINTS", "http://192.0.2.10:2379"),
    ("CALICO_ETCD_ENDPOINTS", "https://etcd-1.example:2379, https://[2001:db8::1]:2379"),
    ("CALICO_ETCD_ENDPOINTS", "https://user:pw@192.0.2.2:2379"),
    ("CALICO_ETCD_CLUSTER_ENDPOINTS", "http://192.0.2.1:2380,http://192.0.2.2:2380"),
    ("CALICO_ETCD_CLUSTER_ENDPOINTS", "http://192.0.2.1:2379"),
    ("CALICO_ETCD_DISCOVERY_SRV", "etcd.mesos"),
    ("CALICO_ETCD_BINARY_URI", "/opt/mirror/etcd-v3.5.17-linux-amd64.tar.gz"),
    ("CALICO_ETCD_BINARY_URI", "file:///opt/mirror/etcd.tar.gz"),
    ("CALICO_ETCD_BINARY_URI", "hdfs://namenode/etcd.tar.gz"),
    ("CALICO_DOCKER_CLUSTER_STORE", "etcd://192.0.2.1:2379,192.0.2.2:2379"),
    ("CALICO_DOCKER_CLUSTER_STORE", "consul://192.0.2.1:8500/docker"),
    ("CALICO_CNI_PLUGINS_DIR", "/opt/cni/bin"),
    ("CALICO_NODE_IMAGE", "calico/node:v2.6.12"),  # the default profile is calico-2.6
    ("CALICO_NODE_IMAGE", "registry.example:5000/mirror/calico-node@sha256:" + "a" * 64),
    ("CALICO_LIBNETWORK_IMAGE", "mesosphere/libnetwork-plugin:v1.1.3-2-d2iq"),
    ("CALICO_NODE_IP_AUTODETECTION_METHOD", "interface=eth.*,ens.*"),
    ("CALICO_NODE_IP_AUTODETECTION_METHOD", "cidr=10.0.0.0/8,192.0.2.0/24"),
    ("CALICO_NODE_IP_AUTODETECTION_METHOD", "can-reach=192.0.2.1"),
    ("CALICO_SERVICE_MASTER", "zk://192.0.2.1:2181,192.0.2.2:2181/mesos"),
    ("CALICO_SERVICE_MASTER", "leader.mesos:5050"),
    ("CALICO_SERVICE_STATE", "/var/lib/calico-dcos"),
    ("CALICO_SERVICE_USER", "nobody"),
    ("CALICO_SERVICE_AGENT_PYTHON", "python3"),
    ("CALICO_SERVICE_ARTIFACTS_URL", "http://192.0.2.9:10000"),
]


@pytest.mark.parametrize(("variable", "value"), ACCEPTED)
def test_values_every_reader_accepts_pass(variable, value):
    assert errors_for({variable: value}) == {}


REFUSED = [
    ("CALICO_ETCD_ENDPOINTS", "192.0.2.10:2379", "etcd.endpoints", "http:// or https://"),
    ("CALICO_ETCD_ENDPOINTS", "etcd://192.0.2.10:2379", "etcd.endpoints", "http:// or https://"),
    ("CALICO_ETCD_ENDPOINTS", "http://192.0.2.10:2379/v2", "etcd.endpoints", "no path"),
    ("CALICO_ETCD_ENDPOINTS", "http://192.0.2.10:99999", "etcd.endpoints", "out of range"),
    ("CALICO_ETCD_ENDPOINTS", " , ", "etcd.endpoints", "at least one"),
    ("CALICO_ETCD_CLUSTER_ENDPOINTS", "192.0.2.1", "etcd.cluster_endpoints", "needs URLs"),
    ("CALICO_ETCD_DISCOVERY_SRV", "etcd..mesos", "etcd.discovery_srv", "not a DNS domain"),
    ("CALICO_ETCD_BINARY_URI", "etcd.tar.gz", "etcd.binary_uri", "absolute path"),
    ("CALICO_ETCD_BINARY_URI", "docker://etcd", "etcd.binary_uri", "does not fetch"),
    ("CALICO_CNI_CALICO_URI", "https://example.org/", "cni.calico_uri", "names no file"),
    ("CALICO_DOCKER_CLUSTER_STORE", "192.0.2.1:2379", "docker.cluster_store", "etcd://"),
    ("CALICO_CNI_PLUGINS_DIR", "opt/cni/bin", "cni.plugins_dir", "absolute path"),
    ("CALICO_CNI_CONFIG_DIR", "./cni", "cni.config_dir", "absolute path"),
    ("CALICO_NODE_IMAGE", "Calico/Node:v3", "node.image", "image reference"),
    ("CALICO_NODE_IMAGE", "calico/node:", "node.image", "image reference"),
    ("CALICO_NODE_IP_AUTODETECTION_METHOD", "interface=eth(", "node.ip_autodetection_method",
     "bad regex"),
    ("CALICO_NODE_IP_AUTODETECTION_METHOD", "cidr=10.0.0.0/33", "node.ip_autodetection_method",
     "10.0.0.0/33"),
    ("CALICO_SERVICE_MASTER", "http://leader.mesos:5050", "service.master", "no http:// master"),
    ("CALICO_SERVICE_STATE", "zk://master.mesos:2181", "service.state", "needs a path"),
    ("CALICO_SERVICE_USER", "Root User", "service.user", "not a user name"),
    ("CALICO_SERVICE_AGENT_PYTHON", "bin/python3", "service.agent_python", "absolute path"),
    ("CALICO_SERVICE_ARTIFACTS_URL", "192.0.2.9:10000", "service.artifacts_url", "http(s)://"),
]  # fmt: skip


@pytest.mark.parametrize(("variable", "value", "option", "words"), REFUSED)
def test_values_a_reader_refuses_are_errors_naming_the_option(variable, value, option, words):
    errors = errors_for({variable: value})
    assert option in errors, errors
    assert words in errors[option]


def test_the_v2_proxy_needs_urls_where_grpc_proxy_takes_host_and_port():
    given = {"CALICO_ETCD_CLUSTER_ENDPOINTS": "192.0.2.1:2380"}
    calico_v3 = {
        "CALICO_CALICO_PROFILE": "calico-v3",
        "CALICO_DOCKER_ENABLE": "false",
        "CALICO_LIBNETWORK_ENABLE": "false",
    }
    assert errors_for({**given, **calico_v3}) == {}
    errors = errors_for(given)  # calico-2.6, whose proxy is etcd's v2 proxy
    assert "http://192.0.2.1:2380" in errors["etcd.cluster_endpoints"]


def test_discovery_srv_is_not_checked_when_nothing_reads_it():
    assert errors_for({"CALICO_ETCD_DISCOVERY_SRV": "", "CALICO_ETCD_RUN_PROXY": "false"}) == {}
    given = {
        "CALICO_ETCD_DISCOVERY_SRV": "",
        "CALICO_ETCD_CLUSTER_ENDPOINTS": "http://192.0.2.1:2379",
    }
    assert errors_for(given) == {}


def test_a_misspelled_environment_variable_is_an_error_naming_the_closest_option():
    """The line starts with the variable at fault, not with the option it should have been."""
    with pytest.raises(OptionsError) as refused:
        load_options(None, {"CALICO_ROLLOUT_MAX_CONCURENT_RESTARTS": "10%"})
    assert refused.value.lines() == [
        "unknown environment variable CALICO_ROLLOUT_MAX_CONCURENT_RESTARTS: names no option; "
        "did you mean CALICO_ROLLOUT_MAX_CONCURRENT_RESTARTS?"
    ]


def test_a_misspelled_section_in_a_variable_is_an_error_too():
    errors = errors_for({"CALICO_ROLOUT_MAX_CONCURRENT_RESTARTS": "2"})
    assert errors["CALICO_ROLOUT_MAX_CONCURRENT_RESTARTS"] == (
        "names no option; did you mean CALICO_ROLLOUT_MAX_CONCURRENT_RESTARTS?"
    )


def test_a_bad_value_from_the_environment_names_the_variable():
    errors = errors_for({"CALICO_ROLLOUT_MAX_CONCURRENT_RESTARTS": "150%"})
    message = errors["rollout.max_concurrent_restarts"]
    assert message.endswith(
        "(from the environment variable CALICO_ROLLOUT_MAX_CONCURRENT_RESTARTS)"
    )


def test_an_unknown_variable_far_from_every_option_is_still_an_error():
    errors = errors_for({"CALICO_NODE_FOO": "1"})
    assert errors["CALICO_NODE_FOO"] == "names no option"


def test_calico_variables_outside_the_option_sections_are_not_options():
    env = {"CALICO_DCOS_REPORT_URL": "http://x", "CALICO_INSTALLER_HOST_ROOT": "/tmp/h"}
    assert errors_for(env) == {}


def test_the_same_rule_applies_to_a_file(tmp_path):
    path = tmp_path / "options.yaml"
    path.write_text("etcd:\n  endpoints: 192.0.2.10:2379\n")
    with pytest.raises(OptionsError) as caught:
        load_options(str(path), {})
    assert [option for option, _ in caught.value.errors] == ["etcd.endpoints"]


def test_credentials_in_the_proxys_upstream_are_refused_without_showing_them():
    errors = errors_for({"CALICO_ETCD_CLUSTER_ENDPOINTS": "https://user:s3cret@192.0.2.1:2379"})
    assert "no credentials in URLs" in errors["etcd.cluster_endpoints"]
    assert "s3cret" not in errors["etcd.cluster_endpoints"]


def test_an_error_about_an_endpoint_never_shows_its_password():
    errors = errors_for({"CALICO_ETCD_ENDPOINTS": "etcd://user:s3cret@192.0.2.1:2379"})
    assert "user:***@" in errors["etcd.endpoints"] and "s3cret" not in errors["etcd.endpoints"]


def test_calicos_own_variables_are_not_taken_for_misspelled_options():
    """Except those that are an option's key without its section (CALICO_NETWORKING_BACKEND:
    node.networking_backend), which the scheduler does not pass on to calico-node: those
    get a did-you-mean (tests/unit/test_options_trial.py)."""
    assert errors_for({"CALICO_NODENAME": "a1", "CALICO_IPV4POOL_IPIP": "Always"}) == {}
