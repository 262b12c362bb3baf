"""The cni command as the support matrix needs it, under the agents' Python 3.6.

A config Mesos can read (cniVersion 0.1.0), no agent restart unless asked (Mesos >= 1.2),
plugins checked against their checksums, and the network's allow-all profile written into a
real etcd 3.4: through the v2 API (Calico 2.6) and the v3 JSON gateway (Calico v3), as
Calico's libcalico-go keeps profiles.
"""

import base64
import hashlib
import json

import pytest
import requests

from calico_dcos.commands.local import real_etcd
from calico_dcos.installer import profile
from tests.installer.installer_host import CONFIG_DIR, PLUGINS_DIR


def test_the_config_is_cni_0_1_0_whose_ip4_result_mesos_reads(agent):
    assert agent.cni(restart=False).returncode == 0

    config = json.loads(agent.path(CONFIG_DIR + "calico.cni").read_text())
    assert config["cniVersion"] == "0.1.0"
    assert config["type"] == "calico" and config["ipam"] == {"type": "calico-ipam"}


def test_without_restart_agent_the_files_are_installed_and_the_agent_left_running(agent):
    result = agent.cni(restart=False)

    assert result.returncode == 0, result.stderr
    assert (
        agent.path(PLUGINS_DIR + "calico").read_bytes() == (agent.sandbox / "calico").read_bytes()
    )
    assert agent.restarts("dcos-mesos-slave") == 0
    assert not [call for call in agent.calls() if call[:2] == ["systemctl", "restart"]]
    assert "MESOS-6567" in result.stderr


def test_plugins_matching_their_checksums_are_installed(agent):
    sha1 = hashlib.sha1((agent.sandbox / "calico").read_bytes()).hexdigest()  # noqa: S324
    sha256 = hashlib.sha256((agent.sandbox / "calico-ipam").read_bytes()).hexdigest()

    result = agent.cni("--calico-checksum", f"sha1:{sha1}",
                       "--calico-ipam-checksum", f"sha256:{sha256}", restart=False)  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert f"matches its sha1 {sha1}" in result.stderr


def test_a_plugin_that_does_not_match_its_checksum_installs_nothing(agent):
    wrong = "sha1:" + "0" * 40

    result = agent.cni("--calico-checksum", wrong, restart=False)

    assert result.returncode == 1
    assert "not " + "0" * 40 in result.stderr and "nothing was installed" in result.stderr
    assert not agent.path(PLUGINS_DIR + "calico").exists()
    assert not agent.path(CONFIG_DIR + "calico.cni").exists()


@pytest.fixture
def etcd(tmp_path):
    """A real etcd 3.4 serving the v2 API too (`--enable-v2`)."""
    (tmp_path / "etcd").mkdir()
    with real_etcd(tmp_path / "etcd", enable_v2=True) as client:
        yield client


def v3_get(client: str, key: str) -> dict | None:
    encoded = base64.b64encode(key.encode()).decode()
    kvs = requests.post(f"{client}/v3/kv/range", json={"key": encoded}, timeout=5).json()
    values = [base64.b64decode(kv["value"]).decode() for kv in kvs.get("kvs", [])]
    return json.loads(values[0]) if values else None


@pytest.mark.etcd
def test_allow_all_profile_in_etcd_v2_as_calico_2_6_keeps_it(agent, etcd):
    result = agent.cni("--default-profile", "allow-all", "--etcd-api", "v2",
                       endpoints=etcd, restart=False)  # fmt: skip

    assert result.returncode == 0, result.stderr
    rules = requests.get(f"{etcd}/v2/keys{profile.V2_PREFIX}calico/rules", timeout=5).json()
    assert json.loads(rules["node"]["value"]) == {
        "inbound_rules": [{"action": "allow"}],
        "outbound_rules": [{"action": "allow"}],
    }
    tags = requests.get(f"{etcd}/v2/keys{profile.V2_PREFIX}calico/tags", timeout=5).json()
    assert json.loads(tags["node"]["value"]) == ["calico"]


@pytest.mark.etcd
def test_allow_all_profile_in_etcd_v3_is_created_once_and_never_overwritten(make_agent, etcd):
    first, second = make_agent(), make_agent()
    key = profile.V3_PREFIX + "calico"
    env = {"CALICO_DCOS_PROFILE_ETCD_ENDPOINTS": etcd}

    created = first.cni("--default-profile", "allow-all", "--etcd-api", "v3",
                        endpoints="http://127.0.0.1:9", restart=False, env=env)  # fmt: skip
    stored = v3_get(etcd, key)
    mine = {**stored, "spec": {"ingress": [], "egress": []}}  # an operator's own policy
    encoded = {"key": base64.b64encode(key.encode()).decode(),
               "value": base64.b64encode(json.dumps(mine).encode()).decode()}  # fmt: skip
    requests.post(f"{etcd}/v3/kv/put", json=encoded, timeout=5).raise_for_status()
    again = second.cni("--default-profile", "allow-all", "--etcd-api", "v3",
                       endpoints="http://127.0.0.1:9", restart=False, env=env)  # fmt: skip

    assert created.returncode == 0, created.stderr
    assert stored == {
        "kind": "Profile",
        "apiVersion": "projectcalico.org/v3",
        "metadata": {"name": "calico"},
        "spec": {
            "ingress": [{"action": "Allow", "source": {}, "destination": {}}],
            "egress": [{"action": "Allow", "source": {}, "destination": {}}],
            "labelsToApply": {"calico": ""},
        },
    }
    assert again.returncode == 0, again.stderr
    assert "already there, left as it is" in again.stderr
    assert v3_get(etcd, key) == mine


def test_no_etcd_answering_fails_the_step_so_it_is_retried(agent):
    result = agent.cni("--default-profile", "allow-all", "--etcd-api", "v2",
                       endpoints="http://127.0.0.1:9", restart=False)  # fmt: skip

    assert result.returncode == 1
    assert "no etcd endpoint took the default profile" in result.stderr
