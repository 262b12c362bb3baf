"""`calico-dcos units`: what it says and writes, and its errors."""

import json

from click.testing import CliRunner

from calico_dcos.cli import main
from tests.units.manual_host import options_file


def invoke(*args: str):
    return CliRunner().invoke(main, ["units", *args])


def test_it_writes_a_root_only_bundle_and_replaces_its_own(tmp_path):
    path = options_file(tmp_path, {})
    out = tmp_path / "bundle"
    first = invoke("--options", str(path), "--output", str(out), "--agent-kind", "public")
    assert first.exit_code == 0, first.output
    assert "calico-libnetwork.service, calico-node.service" in first.output
    assert out.stat().st_mode & 0o777 == 0o700
    for script in ("install.sh", "uninstall.sh", "setup.sh"):
        assert (out / script).stat().st_mode & 0o777 == 0o700
    for env in out.rglob("*.env"):
        assert env.stat().st_mode & 0o777 == 0o600, env
    text = (out / "root/etc/systemd/system/calico-node.service").read_text()
    assert "Before=dcos-mesos-slave-public.service" in text

    again = invoke("--options", str(path), "--output", str(out))
    assert again.exit_code == 0, again.output
    assert (
        "Before=dcos-mesos-slave.service"
        in (out / "root/etc/systemd/system/calico-node.service").read_text()
    )
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".bundle")]


def test_bad_options_are_named_with_their_path(tmp_path):
    path = tmp_path / "options.json"
    path.write_text(json.dumps({"node": {"networking_backend": "ospf"}, "cni": {"nope": 1}}))
    result = invoke("--options", str(path), "--output", str(tmp_path / "out"))
    assert result.exit_code == 1
    assert "unknown option cni.nope" in result.output
    assert "invalid option node.networking_backend" in result.output
    assert not (tmp_path / "out").exists()


def test_it_never_overwrites_a_directory_it_did_not_write(tmp_path):
    path = options_file(tmp_path, {})
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine/notes.txt").write_text("keep")
    result = invoke("--options", str(path), "--output", str(tmp_path / "mine"))
    assert result.exit_code == 1
    assert "not empty and not a calico-dcos units bundle" in result.output
    assert (tmp_path / "mine/notes.txt").read_text() == "keep"


def test_an_unreachable_uri_is_an_error_that_says_which(tmp_path):
    path = options_file(tmp_path, {"cni": {"calico_uri": "file:///nonexistent/calico"}})
    result = invoke("--options", str(path), "--output", str(tmp_path / "out"))
    assert result.exit_code == 1
    assert "file:///nonexistent/calico" in result.output
    assert "check cni.calico_uri" in result.output
    assert not (tmp_path / "out").exists()


def test_an_etcd_binary_that_cannot_be_fetched_names_etcd_binary_uri(tmp_path):
    """The trial's case: only the etcd release could not be fetched; the error named no
    option ("check the option that names this URI")."""
    uri = "file:///nonexistent/etcd-v3.5.17-linux-amd64.tar.gz"
    path = options_file(tmp_path, {"etcd": {"run_proxy": True, "binary_uri": uri}})
    result = invoke("--options", str(path), "--output", str(tmp_path / "out"))
    assert result.exit_code == 1
    assert f"Failed to fetch '{uri}'" in result.output
    assert "; check etcd.binary_uri" in result.output, result.output


def test_public_units_need_public_agents_included(tmp_path):
    """agents.include_public false: the framework leaves public agents alone, and so does this."""
    path = options_file(tmp_path, {"agents": {"include_public": False}})
    result = invoke(
        "--options", str(path), "--output", str(tmp_path / "out"), "--agent-kind", "public"
    )
    assert result.exit_code == 1
    assert "agents.include_public" in result.output
    private = invoke("--options", str(path), "--output", str(tmp_path / "out"))
    assert private.exit_code == 0, private.output
