"""install.sh and uninstall.sh on a simulated host: same result as the framework's installer
steps, idempotent, and a byte-for-byte revert.

The host's `systemctl` and `docker` are the devcluster's stand-ins (no systemd or Docker
engine can run on a test machine): `daemon-reload` loads the unit files, `enable` makes the
`WantedBy=` symlinks, `restart docker` checks daemon.json, and every call is logged.
"""

import json
import sys

from calico_dcos.devcluster.hostroot import set_fault
from tests.units.manual_host import HOSTILE, Host, make_bundle, make_unchecked_bundle

CALICO_DOCS_UNIT = b"""[Unit]
Description=calico-node, as Calico's docs once had it
[Service]
ExecStart=/usr/bin/docker run --net=host --privileged --name=calico-node calico/node
"""


def restarts(calls: list[list[str]]) -> list[str]:
    return [c[2] for c in calls if c[:2] == ["systemctl", "restart"]]


def test_install_twice_changes_nothing_and_uninstall_puts_the_host_back_byte_for_byte(tmp_path):
    bundle, _ = make_bundle(tmp_path, etcd=True)
    host = Host(tmp_path / "host", daemon_json={"log-driver": "journald"})
    unit_file = host.root / "etc/systemd/system/calico-node.service"
    unit_file.write_bytes(CALICO_DOCS_UNIT)  # an older manual install, enabled: put back
    unit_file.chmod(0o640)
    wants = host.root / "etc/systemd/system/multi-user.target.wants/calico-node.service"
    wants.symlink_to("/etc/systemd/system/calico-node.service")
    before = host.snapshot()

    first = host.run(bundle / "install.sh")
    assert first.returncode == 0, first.stderr
    installed = host.snapshot()
    assert json.loads((host.root / "etc/docker/daemon.json").read_text()) == {
        "log-driver": "journald",
        "cluster-store": "etcd://localhost:2379",
    }
    units = ("calico-etcd-proxy", "calico-libnetwork", "calico-node")
    for unit in units:
        assert host.unit_state(unit) == "active"
        link = host.root / f"etc/systemd/system/multi-user.target.wants/{unit}.service"
        assert link.is_symlink()
    assert (host.root / "etc/calico-dcos").stat().st_mode & 0o777 == 0o700
    assert (host.root / "etc/calico-dcos/calico-node.env").stat().st_mode & 0o777 == 0o600
    assert restarts(host.calls()) == ["docker", "dcos-mesos-slave"]
    assert ["systemctl", "start", "calico-node.service"] in host.calls()

    calls_before = len(host.calls())
    second = host.run(bundle / "install.sh")
    assert second.returncode == 0, second.stderr
    assert host.snapshot() == installed
    assert restarts(host.calls()[calls_before:]) == []

    removed = host.run(bundle / "uninstall.sh")
    assert removed.returncode == 0, removed.stderr
    assert host.snapshot() == before
    for unit in units:
        assert host.unit_state(unit) == "inactive"
    again = host.run(bundle / "uninstall.sh")
    assert again.returncode == 0, again.stderr
    assert "nothing to do" in again.stderr
    assert host.snapshot() == before


def test_a_changed_option_rewrites_and_restarts_only_what_it_affects(tmp_path):
    bundle, _ = make_bundle(tmp_path / "v1")
    host = Host(tmp_path / "host")
    before = host.snapshot()
    assert host.run(bundle / "install.sh").returncode == 0
    bundle2, _ = make_bundle(tmp_path / "v2", {"node": {"image": "calico/node:v2.6.11"}})

    calls_before = len(host.calls())
    result = host.run(bundle2 / "install.sh")
    assert result.returncode == 0, result.stderr
    later = host.calls()[calls_before:]
    assert ["systemctl", "restart", "calico-node.service"] in later
    assert ["systemctl", "start", "calico-libnetwork.service"] in later
    assert restarts(later) == ["calico-node.service"]
    assert b"calico/node:v2.6.11" in (host.root / "etc/calico-dcos/calico-node.sh").read_bytes()

    # The second bundle's uninstall.sh puts back what the first install found.
    assert host.run(bundle2 / "uninstall.sh").returncode == 0
    assert host.snapshot() == before


def test_a_step_disabled_later_is_stopped_disabled_and_its_files_put_back(tmp_path):
    bundle, _ = make_bundle(tmp_path / "v1")
    host = Host(tmp_path / "host")
    before = host.snapshot()
    assert host.run(bundle / "install.sh").returncode == 0
    bundle2, _ = make_bundle(tmp_path / "v2", {"node": {"enable": False}})
    fresh = Host(tmp_path / "fresh")
    assert fresh.run(bundle2 / "install.sh").returncode == 0

    calls_before = len(host.calls())
    result = host.run(bundle2 / "install.sh")
    assert result.returncode == 0, result.stderr
    later = host.calls()[calls_before:]
    assert ["systemctl", "stop", "calico-node.service"] in later
    assert ["systemctl", "disable", "calico-node.service"] in later
    assert host.unit_state("calico-node") == "inactive"
    assert host.snapshot() == fresh.snapshot()  # as if v2 had been the only install
    assert restarts(later) == []

    assert host.run(bundle2 / "uninstall.sh").returncode == 0
    assert host.snapshot() == before


def test_a_public_agent_restarts_dcos_mesos_slave_public(tmp_path):
    bundle, rendered = make_bundle(tmp_path, public=True)
    host = Host(tmp_path / "host", public=True)
    result = host.run(bundle / "install.sh")
    assert result.returncode == 0, result.stderr
    assert restarts(host.calls()) == ["docker", "dcos-mesos-slave-public"]
    for daemon in rendered.daemons:
        text = (bundle / "root/etc/systemd/system" / daemon.unit).read_text()
        assert "Before=dcos-mesos-slave-public.service" in text.splitlines()
    assert host.run(bundle / "uninstall.sh").returncode == 0
    assert restarts(host.calls())[-2:] == ["docker", "dcos-mesos-slave-public"]


def test_hostile_option_values_arrive_as_text_and_never_run(tmp_path):
    """Even values the options schema refuses: the scripts and env files carry them as text."""
    endpoints = f"http://127.0.0.1:2379/{HOSTILE}"
    options = {
        "node": {
            "extra_env": f"FELIX_X={HOSTILE}",
            "ip_autodetection_method": f"can-reach={HOSTILE}",
            "image": f"calico/node:{HOSTILE}",
        },
        "libnetwork": {"image": f"calico/libnetwork:{HOSTILE}"},
        # By SRV (the default profile's v2 proxy), not manual_host's static members.
        "etcd": {"endpoints": endpoints, "discovery_srv": HOSTILE, "cluster_endpoints": ""},
        "docker": {"cluster_store": f"etcd://{HOSTILE}"},
    }
    bundle, rendered = make_unchecked_bundle(tmp_path, options, etcd=True)
    host = Host(tmp_path / "host")
    result = host.run(bundle / "install.sh")
    assert result.returncode == 0, result.stderr

    for daemon in rendered.daemons:
        unit = (bundle / "root/etc/systemd/system" / daemon.unit).read_text()
        assert "touch" not in unit and "127.0.0.1" not in unit
    daemon_json = json.loads((host.root / "etc/docker/daemon.json").read_text())
    assert daemon_json["cluster-store"] == f"etcd://{HOSTILE}"
    config = json.loads((host.root / "opt/mesosphere/etc/dcos/network/cni/calico.cni").read_text())
    assert config["etcd_endpoints"] == endpoints
    env = (host.root / "etc/calico-dcos/calico-node.env").read_text().splitlines()
    assert f"FELIX_X={HOSTILE}" in env
    assert f"IP_AUTODETECTION_METHOD=can-reach={HOSTILE}" in env
    assert f"ETCD_ENDPOINTS={endpoints}" in env

    for name in ("calico-node", "calico-libnetwork"):
        ran = host.run(host.root / f"etc/calico-dcos/{name}.sh")
        assert ran.returncode == 0, ran.stderr
    runs = [c for c in host.calls() if c[:2] == ["docker", "run"]]
    images = [run[run.index("-c") - 1] if "--entrypoint" in run else run[-1] for run in runs]
    assert images == [f"calico/node:{HOSTILE}", f"calico/libnetwork:{HOSTILE}"]

    # The proxy's script, with an argv printer standing in for the etcd it found in the tarball.
    etcd = next((host.root / "opt/calico-dcos/calico-etcd-proxy").glob("*/etcd"))
    etcd.write_text(f"#!{sys.executable}\nimport json, sys\nprint(json.dumps(sys.argv[1:]))\n")
    ran = host.run(host.root / "etc/calico-dcos/calico-etcd-proxy.sh")
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout) == [
        "--proxy=on", f"--discovery-srv={HOSTILE}", "--listen-client-urls=http://127.0.0.1:2379"
    ]  # fmt: skip
    removed = host.run(bundle / "uninstall.sh")
    assert removed.returncode == 0, removed.stderr


def test_on_a_dcos_2_host_with_its_own_calico_nothing_changes_unless_overridden(tmp_path):
    """As on the framework path: the installer's `detect` finds DC/OS 2.x's own Calico units
    and install.sh changes nothing; agents.override_existing_calico installs on top."""
    bundle, _ = make_bundle(tmp_path / "default")
    host = Host(tmp_path / "host", dcos_calico=True)
    before = host.snapshot()
    result = host.run(bundle / "install.sh")
    assert result.returncode == 0, result.stderr
    assert "Calico is already present" in result.stderr
    assert "unit dcos-calico-felix is active" in result.stderr
    assert host.snapshot() == before
    assert restarts(host.calls()) == []

    forced, _ = make_bundle(tmp_path / "forced", {"agents": {"override_existing_calico": True}})
    result = host.run(forced / "install.sh")
    assert result.returncode == 0, result.stderr
    assert restarts(host.calls()) == ["docker", "dcos-mesos-slave"]
    assert host.unit_state("calico-node") == "active"


def test_docker_that_does_not_come_back_is_rolled_back_and_the_chain_stops(tmp_path):
    """The installer's own rollback, as on the framework path: daemon.json is put back, the
    cni step and the Docker plugins never start, and uninstall.sh still restores the host."""
    bundle, _ = make_bundle(tmp_path)
    host = Host(tmp_path / "host", daemon_json={"log-driver": "journald"})
    before = host.snapshot()
    set_fault(host.root, "docker-fails-to-start")

    failed = host.run(bundle / "install.sh")
    assert failed.returncode != 0
    assert "daemon.json rolled back" in failed.stderr
    assert json.loads((host.root / "etc/docker/daemon.json").read_text()) == {
        "log-driver": "journald"
    }
    assert "dcos-mesos-slave" not in restarts(host.calls())
    assert host.unit_state("calico-node") == "inactive"

    removed = host.run(bundle / "uninstall.sh")
    assert removed.returncode == 0, removed.stderr
    assert host.snapshot() == before

    set_fault(host.root, "docker-fails-to-start", on=False)
    fixed = host.run(bundle / "install.sh")
    assert fixed.returncode == 0, fixed.stderr
    assert host.unit_state("calico-node") == "active"
