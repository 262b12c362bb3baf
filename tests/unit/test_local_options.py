"""`calico-dcos local`'s options: what the user gives wins over what `local` picks, the
embedded master is `local`'s own, and the banner says what the scheduler really runs with.

Pure: no cluster starts; the stand-ins' URIs and the etcd member's URLs are given, as
`local` gives them once its embedded cluster and etcd are up."""

from __future__ import annotations

from pathlib import Path

import pytest

from calico_dcos.commands.local import LocalEtcd, local_options, say_what_is_real
from calico_dcos.options import OptionsError, load_options

URIS = {
    "cni.calico_uri": "file:///art/cni/calico",
    "cni.calico_ipam_uri": "file:///art/cni/calico-ipam",
    "libnetwork.binary_uri": "file:///art/libnetwork-plugin-amd64",
    "etcd.binary_uri": "file:///art/etcd-v3.4.23-linux-amd64.tar.gz",
}
ETCD = LocalEtcd("http://127.0.0.1:40001", "http://127.0.0.1:40002")
MASTER = "127.0.0.1:5050"
IPS = ["127.0.1.1", "127.0.1.2"]


def options_of(environ=None, path=None, tmp=Path("/work")):
    return local_options(path, environ or {}, tmp, URIS, MASTER, ETCD, IPS)


def test_the_users_file_wins_over_what_local_picks(tmp_path):
    """The trial's finding: `service.agent_python` in the file had no effect under local."""
    path = tmp_path / "o.yaml"
    path.write_text(
        "service:\n  agent_python: /nonexistent/python3\n  state: /tmp/mine\n"
        "rollout:\n  stability_seconds: 7\n"
        "calico:\n  default_profile_policy: plugin-default\n"
        "etcd:\n  listen_address: 127.0.0.1\n"
    )
    options = options_of(path=str(path))
    assert options["service"]["agent_python"] == "/nonexistent/python3"
    assert options["service"]["state"] == "/tmp/mine"
    assert options["rollout"]["stability_seconds"] == 7
    assert options["calico"]["default_profile_policy"] == "plugin-default"
    assert options["etcd"]["listen_address"] == "127.0.0.1"
    # What the user left out is local's: its state directory, its stand-ins.
    assert options["cni"]["calico_uri"] == URIS["cni.calico_uri"]
    assert options["rollout"]["retry_backoff_seconds"] == 1


def test_the_users_variables_win_too_and_beat_the_file(tmp_path):
    path = tmp_path / "o.yaml"
    path.write_text("rollout:\n  stability_seconds: 7\n")
    options = options_of({"CALICO_ROLLOUT_STABILITY_SECONDS": "3"}, str(path))
    assert options["rollout"]["stability_seconds"] == 3


def test_local_runs_the_default_profile_through_each_agents_v2_proxy():
    options = options_of()
    assert options["calico"]["profile"] == load_options(None, {})["calico"]["profile"]
    assert options["calico"]["profile"] == "calico-2.6"
    etcd = options["etcd"]
    assert etcd["cluster_endpoints"] == ETCD.peer  # the v2 proxy is given peer URLs
    assert etcd["endpoints"] == "http://127.0.1.1:2379,http://127.0.1.2:2379"
    assert options["libnetwork"]["binary_uri"] == ""  # calico-2.6's plugin is an image


def test_local_follows_the_profile_and_proxy_the_user_picks():
    options = options_of({"CALICO_CALICO_PROFILE": "calico-v3", "CALICO_ETCD_RUN_PROXY": "false"})
    etcd = options["etcd"]
    assert (options["calico"]["profile"], etcd["run_proxy"]) == ("calico-v3", False)
    assert etcd["cluster_endpoints"] == ETCD.client and etcd["cluster_serves_v2"] is True
    assert etcd["endpoints"] == ETCD.client  # no proxies: Calico reaches the member itself
    assert options["libnetwork"]["binary_uri"] == URIS["libnetwork.binary_uri"]


def test_the_embedded_master_is_locals_and_a_users_master_is_an_error_naming_it(tmp_path):
    assert options_of()["service"]["master"] == MASTER
    path = tmp_path / "o.yaml"
    path.write_text("service:\n  master: 10.0.0.1:5050\n")
    with pytest.raises(OptionsError) as refused:
        options_of(path=str(path))
    (line,) = refused.value.lines()
    assert line.startswith("invalid option service.master: calico-dcos local runs the scheduler")
    with pytest.raises(OptionsError) as refused:
        options_of({"CALICO_SERVICE_STRICT": "true"})
    assert "--strict" in refused.value.lines()[0]
    assert "CALICO_SERVICE_STRICT" in refused.value.lines()[0]


def test_the_banner_is_built_from_the_options_the_scheduler_runs_with(capsys):
    """The trial's finding: with CALICO_CALICO_PROFILE=calico-2.6 CALICO_ETCD_RUN_PROXY=false
    it still said 'proxied on every agent' and 'profile calico-v3', with a libnetwork binary."""

    class Agent:
        hostname, ip, agent_id = "agent-1", "127.0.1.1", "F-S0"

    environ = {"CALICO_CALICO_PROFILE": "calico-2.6", "CALICO_ETCD_RUN_PROXY": "false"}
    say_what_is_real(options_of(environ), f"http://{MASTER}", [Agent()], ETCD)
    banner = capsys.readouterr().out
    assert "profile calico-2.6 (Calico 2.6.12), the default" in banner
    assert "proxied" not in banner and "libnetwork binary" not in banner
    assert "the etcd-proxy step is off (etcd.run_proxy)" in banner
    assert f"Mesos master: {MASTER}" in banner
    assert "agent-1          127.0.1.1       F-S0" in banner
    assert f"POST http://{MASTER}/devcluster/agents/<agent id>/remove" in banner

    say_what_is_real(options_of({"CALICO_CALICO_PROFILE": "calico-v3"}), "", [], ETCD)
    banner = capsys.readouterr().out
    assert "profile calico-v3 (Calico 3.14.0)\n" in banner
    assert "proxied on every agent by the etcd-proxy step (v3 proxy to" in banner
    assert f"libnetwork binary      {URIS['libnetwork.binary_uri']}" in banner
