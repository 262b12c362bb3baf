"""The artifacts agents fetch are built deterministically and work."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile

from calico_dcos import artifacts
from calico_dcos.installer import MIN_PYTHON
from tests.helpers.agent_python import find_python, version_of


def test_zipapp_builds_to_the_same_bytes_and_name_twice(tmp_path):
    first = artifacts.build_installer_zipapp(tmp_path / "a")
    second = artifacts.build_installer_zipapp(tmp_path / "b")

    assert first.sha256 == second.sha256
    assert first.path.name == second.path.name == f"installer-{first.sha256[:12]}.pyz"
    assert first.path.read_bytes() == second.path.read_bytes()
    with zipfile.ZipFile(first.path) as archive:
        names = archive.namelist()
        assert {info.date_time for info in archive.infolist()} == {artifacts.FIXED_TIME}
    assert names[0] == "__main__.py" and "calico_installer/cli.py" in names


def test_zipapp_runs_on_the_agents_python_and_newer_ones(tmp_path, agent_python):
    built = artifacts.build_installer_zipapp(tmp_path)
    assert version_of(agent_python) == MIN_PYTHON
    for python in {agent_python, sys.executable, shutil.which("python3")}:
        result = subprocess.run(
            [python, str(built.path), "--help"],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env={"PATH": os.defpath},
        )

        assert result.returncode == 0, result.stderr
        for command in ("docker", "cni", "ip", "uninstall", "detect"):
            assert command in result.stdout


def test_every_installer_source_compiles_under_the_agents_python(agent_python):
    """A syntax error would otherwise show only on the path a test happens to import."""
    sources = [str(path) for path in artifacts.installer_sources()]
    code = "import sys; [compile(open(p).read(), p, 'exec') for p in sys.argv[1:]]"
    result = subprocess.run([agent_python, "-c", code, *sources], capture_output=True, text=True)

    assert result.returncode == 0, result.stderr


def test_zipapp_refuses_a_python_older_than_it_claims_by_name(tmp_path):
    """DC/OS 1.10's Python 3.5 (or any older) gets a reason, not a SyntaxError traceback."""
    built = artifacts.build_installer_zipapp(tmp_path)
    old = find_python("2.7")  # the oldest Python on the build machines, older than 3.5

    result = subprocess.run(
        [old, str(built.path), "ip", "--can-reach", "127.0.0.1:1"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )

    assert result.returncode == 1
    assert "needs Python >= 3.6 (DC/OS >= 1.11)" in result.stderr
    assert "SyntaxError" not in result.stderr


def test_etcd_tarball_is_deterministic_and_holds_a_working_etcd(tmp_path):
    etcd = shutil.which("etcd")
    version = artifacts.etcd_version(etcd)

    first = artifacts.build_etcd_tarball(etcd, tmp_path / "a", version)
    second = artifacts.build_etcd_tarball(etcd, tmp_path / "b", version)

    assert first.name == f"etcd-v{version}-linux-amd64.tar.gz"
    assert first.read_bytes() == second.read_bytes()
    with tarfile.open(first) as tar:
        assert tar.getnames() == [
            f"etcd-v{version}-linux-amd64",
            f"etcd-v{version}-linux-amd64/etcd",
        ]
        tar.extractall(tmp_path / "x", filter="data")
    extracted = tmp_path / "x" / f"etcd-v{version}-linux-amd64" / "etcd"
    assert artifacts.etcd_version(extracted) == version


def test_cni_standins_answer_version_and_refuse_networks(tmp_path):
    paths = artifacts.build_cni_standins(tmp_path)

    for name, path in paths.items():
        version = subprocess.run([path], env={"CNI_COMMAND": "VERSION"}, capture_output=True)
        add = subprocess.run([path], env={"CNI_COMMAND": "ADD"}, capture_output=True)

        assert version.returncode == 0 and json.loads(version.stdout)["cniVersion"] == "0.3.1"
        assert add.returncode == 1 and "stand-in" in json.loads(add.stdout)["msg"]
        assert "STAND-IN" in path.read_text() and name == path.name
