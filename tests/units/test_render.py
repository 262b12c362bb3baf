"""The units and scripts `calico-dcos units` renders: systemd accepts them, each enabled
daemon step has its unit and each disabled one none, and a TaskInfo field the manual path
cannot carry is refused rather than dropped."""

import shutil
import subprocess
from pathlib import Path

import pytest

from calico_dcos import units
from calico_dcos.options import Options, load_options
from tests.units.manual_host import make_bundle

DAEMONS = {
    "etcd-proxy": "calico-etcd-proxy",
    "libnetwork": "calico-libnetwork",
    "node": "calico-node",
}
# What a DC/OS agent has that this machine has not: its Docker and Mesos agent units.
HOST_UNITS = ("docker.service", "dcos-mesos-slave.service", "dcos-mesos-slave-public.service")


def systemd_units_dir() -> Path:
    """systemd's own unit files (Debian's systemd package; scripts/system-deps.sh)."""
    for candidate in ("/usr/lib/systemd/system", "/lib/systemd/system"):
        if (Path(candidate) / "multi-user.target").exists():
            return Path(candidate)
    raise AssertionError("systemd's units are missing: run scripts/system-deps.sh")


def verify(bundle: Path, unit_names: list[str], root: Path) -> subprocess.CompletedProcess:
    """`systemd-analyze verify --root` on a tree standing for the agent: the bundle's files
    where install.sh puts them, systemd's own units, stub Docker and agent units, and
    /usr/bin/docker (verify checks that every Exec*= program exists and is executable)."""
    shutil.copytree(bundle / "root", root, symlinks=True)
    shutil.copytree(systemd_units_dir(), root / "usr/lib/systemd/system", symlinks=True)
    for name in HOST_UNITS:
        (root / "usr/lib/systemd/system" / name).write_text(
            f"[Unit]\nDescription=stands for {name}\n[Service]\nExecStart=/usr/bin/docker\n"
        )
    docker = root / "usr/bin/docker"
    docker.parent.mkdir(parents=True, exist_ok=True)
    docker.write_text("#!/bin/sh\n")
    docker.chmod(0o755)
    paths = [f"/etc/systemd/system/{name}" for name in unit_names]
    return subprocess.run(
        ["systemd-analyze", "verify", f"--root={root}", *paths],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("public", [False, True], ids=["private", "public"])
def test_every_unit_passes_systemd_analyze_verify(tmp_path, public):
    bundle, rendered = make_bundle(tmp_path, public=public, etcd=True)
    names = [d.unit for d in rendered.daemons]
    assert names == [
        "calico-etcd-proxy.service",
        "calico-libnetwork.service",
        "calico-node.service",
    ]
    result = verify(bundle, names, tmp_path / "verify-root")
    assert result.returncode == 0, result.stderr
    assert result.stderr == "" and result.stdout == ""  # not even a warning


def test_verify_catches_a_broken_unit(tmp_path):
    """The check above can fail: an unknown key and a missing program are reported."""
    bundle, rendered = make_bundle(tmp_path)
    unit = bundle / "root/etc/systemd/system/calico-node.service"
    unit.write_text(unit.read_text().replace("RestartSec=5", "RestartSec=5\nBogus=1"))
    (bundle / "root/etc/calico-dcos/calico-libnetwork.sh").unlink()
    result = verify(bundle, [d.unit for d in rendered.daemons], tmp_path / "verify-root")
    assert "Unknown key 'Bogus'" in result.stderr
    assert "calico-libnetwork.sh" in result.stderr and result.returncode != 0


@pytest.mark.parametrize("disabled", ["etcd-proxy", "docker", "cni", "libnetwork", "node"])
def test_a_disabled_step_leaves_its_unit_or_command_out(tmp_path, disabled):
    option = {"etcd-proxy": ("etcd", "run_proxy")}.get(disabled, (disabled, "enable"))
    bundle, rendered = make_bundle(tmp_path, {option[0]: {option[1]: False}}, etcd=True)
    unit_files = sorted(p.name for p in (bundle / "root/etc/systemd/system").iterdir())
    wanted = [f"{t}.service" for s, t in DAEMONS.items() if s != disabled]
    assert unit_files == wanted
    scripts = sorted(p.name for p in (bundle / "root/etc/calico-dcos").glob("*.sh"))
    assert scripts == [f"{t}.sh" for s, t in DAEMONS.items() if s != disabled]
    install = (bundle / "install.sh").read_text()
    setup = (bundle / "setup.sh").read_text()
    assert ("installer.pyz docker" in setup) == (disabled != "docker")
    assert ("installer.pyz cni" in setup) == (disabled != "cni")
    if disabled in DAEMONS:
        assert DAEMONS[disabled] not in install
        for unit in unit_files:
            assert DAEMONS[disabled] not in (bundle / "root/etc/systemd/system" / unit).read_text()
    assert rendered.setup_steps == [f"calico-{s}" for s in ("docker", "cni") if s != disabled]


def test_without_docker_and_cni_there_is_no_installer_to_run(tmp_path):
    bundle, rendered = make_bundle(
        tmp_path, {"docker": {"enable": False}, "cni": {"enable": False}}
    )
    assert "installer.pyz" not in (bundle / "setup.sh").read_text()
    uninstall = (bundle / "uninstall.sh").read_text()  # reverts only what the installer did
    before, guarded = uninstall.split('if [ -d "$ROOT/etc/calico/installer" ]; then\n', 1)
    assert "installer.pyz" not in before
    assert "installer.pyz uninstall" in guarded.split("\nfi\n", 1)[0]
    assert "/etc/calico/installer" not in (bundle / "install.sh").read_text()


def test_a_taskinfo_field_the_units_cannot_carry_is_refused(monkeypatch):
    """Another change to steps.py (say, a new `docker.parameters`) must not be silently lost."""
    options = load_options(None, {})
    real = units.steps.build_task_info

    def with_parameters(step, *args):
        task = real(step, *args)
        if step.name == "node":
            task["container"]["docker"]["parameters"] = [{"key": "ulimit", "value": "x"}]
        return task

    monkeypatch.setattr(units.steps, "build_task_info", with_parameters)
    with pytest.raises(
        units.UnitsError,
        match=r"^node: the calico-node TaskInfo has "
        r"container\.docker\.parameters",
    ):
        units.render(options, public=False)


def test_a_line_break_in_an_environment_value_is_refused_with_its_option():
    raw = load_options(None, {}).raw
    raw["node"]["extra_env"] = "FELIX_X=a\nb"
    with pytest.raises(units.UnitsError, match=r"^node: environment variable FELIX_X"):
        units.render(Options(raw), public=False)


def unit_lines(bundle: Path, unit: str) -> dict[str, str]:
    lines = (bundle / "root/etc/systemd/system" / unit).read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))


def test_units_are_ordered_as_the_chain_and_restart_as_dcos_runs_its_calico(tmp_path):
    bundle, _ = make_bundle(tmp_path, etcd=True)
    proxy = unit_lines(bundle, "calico-etcd-proxy.service")
    node = unit_lines(bundle, "calico-node.service")
    libnetwork = unit_lines(bundle, "calico-libnetwork.service")
    assert proxy["Before"] == "docker.service dcos-mesos-slave.service"
    assert "Requires" not in proxy
    assert libnetwork["After"].split() == [
        "network-online.target",
        "docker.service",
        "calico-etcd-proxy.service",
    ]
    assert node["After"].split()[-2:] == ["calico-etcd-proxy.service", "calico-libnetwork.service"]
    assert node["Requires"] == libnetwork["Requires"] == "docker.service"
    assert node["Wants"].split()[1:] == ["calico-etcd-proxy.service", "calico-libnetwork.service"]
    assert node["Before"] == "dcos-mesos-slave.service"
    for unit in (proxy, node, libnetwork):
        assert (unit["Restart"], unit["RestartSec"], unit["StartLimitIntervalSec"]) == (
            "always",
            "5",
            "0",
        )
        assert unit["WantedBy"] == "multi-user.target"
    assert node["ExecStartPre"] == "-/usr/bin/docker rm -f calico-node"
    assert node["ExecStop"] == "-/usr/bin/docker stop calico-node"
    assert node["ExecStart"] == "/etc/calico-dcos/calico-node.sh"
