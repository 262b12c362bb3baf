"""The installer's pure parts, without any host."""

from __future__ import annotations

import ast
import socket

import pytest
from click.testing import CliRunner

from calico_dcos import artifacts
from calico_dcos.commands.installer import installer
from calico_dcos.installer import MIN_PYTHON, cni, detect, docker, ip
from calico_dcos.installer.cli import HOST_ROOT_ENV
from calico_dcos.installer.cli import main as installer_main
from calico_dcos.installer.hostfs import HostRoot, InstallerError


@pytest.mark.parametrize(
    "text, version",
    [
        ("Docker version 19.03.15, build 99e3ed8", (19, 3)),
        ("Docker version 20.10.7, build f0df350", (20, 10)),
        ("Docker version 24.0.7, build afdd53b", (24, 0)),
    ],
)
def test_docker_version_is_read_from_docker_version_output(text, version):
    assert docker.parse_version(text) == version


def test_unreadable_docker_version_fails():
    with pytest.raises(InstallerError):
        docker.parse_version("command not found")


@pytest.mark.parametrize("path", ["../etc", "/../../etc/passwd", "a/../../b"])
def test_host_paths_never_leave_the_host_root(tmp_path, path):
    with pytest.raises(InstallerError, match="leaves the host root"):
        HostRoot(tmp_path).path(path)


def test_host_paths_are_read_below_the_root(tmp_path):
    assert HostRoot(tmp_path).path("/opt/mesosphere/") == tmp_path / "opt/mesosphere"


@pytest.mark.parametrize(
    "network, problem",
    [
        (cni.Network("", "http://a:2379", "info"), "--network-name"),
        (cni.Network("calico", "", "info"), "at least one endpoint"),
        (cni.Network("calico", "http://a:2379,a:2379", "info"), "must start with http"),
    ],
)
def test_invalid_network_options_are_refused(network, problem):
    with pytest.raises(cni.UsageError, match=problem):
        cni.render_config(network)


@pytest.mark.parametrize(
    "environ, agent_id",
    [
        ({"MESOS_AGENT_ID": "A-S1", "MESOS_TASK_ID": "calico-cni__B-S2__4f2a__1"}, "A-S1"),
        ({"MESOS_TASK_ID": "calico-cni__B-S2__4f2a__1"}, "B-S2"),
        ({}, ""),
    ],
)
def test_agent_id_comes_from_mesos_or_our_task_id(environ, agent_id):
    assert detect.agent_id(environ) == agent_id


def test_ip_prints_the_source_address_of_the_first_reachable_peer():
    with socket.socket() as closed, socket.socket() as listening:
        closed.bind(("127.0.0.1", 0))
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        targets = [closed.getsockname(), listening.getsockname()]

        assert ip.source_address(targets, timeout=2) == "127.0.0.1"


def test_ip_fails_when_no_peer_is_reachable():
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        with pytest.raises(InstallerError, match="none of"):
            ip.source_address([closed.getsockname()], timeout=2)


@pytest.mark.parametrize(
    "target, parsed", [("10.0.0.1:2379", ("10.0.0.1", 2379)), ("[fd00::1]:443", ("fd00::1", 443))]
)
def test_ip_targets_parse(target, parsed):
    assert ip.parse_target(target) == parsed


def test_calico_dcos_installer_passes_arguments_and_exit_codes(tmp_path):
    runner = CliRunner()

    help_result = runner.invoke(installer, ["--help"])
    bad = runner.invoke(installer, ["ip", "--host-root", str(tmp_path), "--can-reach", "nope"])

    assert help_result.exit_code == 0 and "uninstall" in help_result.output
    assert bad.exit_code == 2


def test_ip_command_prints_only_the_address_on_stdout(tmp_path, capfd):
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        host, port = listening.getsockname()

        code = installer_main(["ip", "--host-root", str(tmp_path), "--can-reach", f"{host}:{port}"])

    assert (code, capfd.readouterr().out) == (0, "127.0.0.1\n")


@pytest.mark.parametrize("source", artifacts.installer_sources(), ids=lambda p: p.name)
def test_installer_parses_as_the_agents_python_for_older_agents(source):
    """Agents run the zipapp on DC/OS's Python 3.6, which has no postponed annotations (3.7).

    The compile under a real 3.6 is test_every_installer_source_compiles_under_the_agents_python;
    this one names the file and the construct at once.
    """
    text = source.read_text()

    tree = ast.parse(text, filename=str(source), feature_version=MIN_PYTHON)
    future = [
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module == "__future__"
        for alias in node.names
    ]
    assert "annotations" not in future


def test_missing_host_root_is_bad_usage(tmp_path, capsys):
    code = installer_main(["detect", "--host-root", str(tmp_path / "nowhere")])

    assert code == 2 and "--host-root" in capsys.readouterr().err


def test_host_root_defaults_to_the_environment_variable(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(HOST_ROOT_ENV, str(tmp_path / "agent-host"))

    code = installer_main(["detect"])

    assert code == 2 and str(tmp_path / "agent-host") in capsys.readouterr().err


def test_explicit_host_root_wins_over_the_environment_variable(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(HOST_ROOT_ENV, str(tmp_path / "agent-host"))

    code = installer_main(["detect", "--host-root", str(tmp_path)])

    assert code == 0 and capsys.readouterr().out.strip() == "Calico not found"


def test_help_names_the_host_root_variable(capsys):
    installer_main(["detect", "--help"])

    assert HOST_ROOT_ENV in capsys.readouterr().out
