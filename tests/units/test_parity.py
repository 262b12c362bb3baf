"""One options file, both paths: the framework's TaskInfos and the manual path's units and
scripts run the same commands, with the same flags, images, volumes and environment.

The TaskInfos are built here as the scheduler builds them for a DC/OS agent, whose Mesos
hostname is the address `detect_ip` prints (dcos/dcos gen/dcos-config.yaml,
MESOS_HOSTNAME_LOOKUP=false). The container scripts are run against the `docker` stand-in,
which records the `docker run` command line; nothing else here is faked.
"""

import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from calico_dcos.devcluster.fetcher import fetch_all
from calico_dcos.options import load_options
from calico_dcos.plans import revert_task_info
from calico_dcos.steps import AgentView, build_task_info, enabled_steps
from calico_dcos.units import REPORT_URL_ENV
from tests.units.manual_host import HOST_IP, Host, make_bundle

OPTIONS = {
    "node": {
        "extra_env": "FELIX_LOGSEVERITYSCREEN=info,NODENAME_SUFFIX=x",
        "ignore_loose_rpf": True,
    },
    "etcd": {
        "endpoints": "http://127.0.0.1:2379,http://10.0.0.2:2379",
        "listen_address": "agent-ip",
    },
    "agents": {"override_existing_calico": True},
}


def framework_tasks(options, public: bool) -> dict[str, dict]:
    agent = AgentView("0f1e-S3", HOST_IP, public)
    url = "http://10.0.0.5:10001"
    tasks = {
        s.name: build_task_info(s, options, agent, f"calico-{s.name}__t__1", "*", url)
        for s in enabled_steps(options)
    }
    tasks["uninstall"] = revert_task_info(options, agent, "calico-uninstall__t__1", "*", url)
    return tasks


def env_of(task: dict) -> dict[str, str]:
    variables = task["command"].get("environment", {}).get("variables", [])
    return {v["name"]: v["value"] for v in variables}


def sh_c_commands(script: str) -> list[str]:
    """The `sh -c VALUE` commands a generated script runs, VALUE unquoted as sh would."""
    found = []
    for line in script.splitlines():
        if "/bin/sh -c " in line:
            words = shlex.split(line.split("/bin/sh -c ", 1)[1].rstrip(")"))
            found.append(words[0])
    return found


def sourced_env(path) -> dict[str, str]:
    """What `set -a; . FILE` exports: each name the file sets, read back through sh."""
    names = [line.split("=", 1)[0] for line in path.read_text().splitlines() if line]
    script = 'set -a; . "$1"; shift; for n; do eval "printf \'%s\\0\' \\"\\$$n\\""; done'
    out = subprocess.run(
        ["/bin/sh", "-c", script, "sh", str(path), *names],
        capture_output=True, text=True, env={}, check=True,
    ).stdout  # fmt: skip
    return dict(zip(names, out.split("\0")[:-1], strict=True))


def docker_env_file(path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if line)


def fetched_names(task, directory) -> set[str]:
    """What Mesos' fetcher (the devcluster's) puts in a sandbox for this TaskInfo."""
    directory.mkdir(parents=True)
    uris = [u for u in task["command"].get("uris", []) if "installer.pyz" not in u["value"]]
    fetch_all(uris, directory)
    names = {str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file()}
    has_installer = len(uris) != len(task["command"].get("uris", []))
    return names | ({"installer.pyz"} if has_installer else set())


@pytest.mark.parametrize("public", [False, True], ids=["private", "public"])
def test_units_and_scripts_run_exactly_what_the_taskinfos_say(tmp_path, public):
    bundle, rendered = make_bundle(tmp_path, OPTIONS, public=public, etcd=True)
    options = load_options(str(tmp_path / "options.json"), {})
    tasks = framework_tasks(options, public)
    assert [d.step for d in rendered.daemons] == ["etcd-proxy", "libnetwork", "node"]

    # etcd-proxy: the same shell command, in a directory holding what the fetcher fetched.
    proxy = tasks["etcd-proxy"]
    script = (bundle / "root/etc/calico-dcos/calico-etcd-proxy.sh").read_text()
    assert sh_c_commands(script) == [proxy["command"]["value"]]
    assert "$LIBPROCESS_IP" in proxy["command"]["value"]  # listen_address agent-ip
    assert 'LIBPROCESS_IP=$("$ROOT/opt/mesosphere/bin/detect_ip")' in script
    sandbox = bundle / "root/opt/calico-dcos/calico-etcd-proxy"
    installed = {str(p.relative_to(sandbox)) for p in sandbox.rglob("*") if p.is_file()}
    assert installed == fetched_names(proxy, tmp_path / "fetched-proxy")

    # docker, cni and the revert: the same installer command lines and environment.
    setup = (bundle / "setup.sh").read_text()
    assert sh_c_commands(setup) == [tasks[s]["command"]["value"] for s in ("docker", "cni")]
    assert ("--public" in tasks["cni"]["command"]["value"].split()) == public
    uninstall = (bundle / "uninstall.sh").read_text()
    assert sh_c_commands(uninstall) == [tasks["uninstall"]["command"]["value"]]
    for step, name in (("docker", "calico-docker"), ("cni", "calico-cni"),
                       ("uninstall", "calico-uninstall")):  # fmt: skip
        wanted = {k: v for k, v in env_of(tasks[step]).items() if k != REPORT_URL_ENV}
        assert sourced_env(bundle / f"sandboxes/{name}.env") == wanted
        sandbox = bundle / "sandboxes" / name
        names = {str(p.relative_to(sandbox)) for p in sandbox.rglob("*") if p.is_file()}
        assert names == fetched_names(tasks[step], tmp_path / f"fetched-{name}")

    # libnetwork and node: the same image, privileges, network, volumes and environment.
    host = Host(tmp_path / "host", public=public)
    shutil.copytree(bundle / "root", host.root, dirs_exist_ok=True)
    for step in ("libnetwork", "node"):
        task = tasks[step]
        ran = host.run(host.root / f"etc/calico-dcos/calico-{step}.sh")
        assert ran.returncode == 0, ran.stderr
        argv = [c for c in host.calls() if c[:2] == ["docker", "run"]][-1][2:]
        docker, command = task["container"]["docker"], task["command"]
        if command.get("shell", True):  # Mesos: --entrypoint /bin/sh <image> -c <value>
            assert argv[-3:] == [docker["image"], "-c", command["value"]]
            assert argv[argv.index("--entrypoint") + 1] == "/bin/sh"
        else:
            assert argv[-1] == docker["image"]
        assert docker["network"] == "HOST" and "--net=host" in argv
        assert docker["privileged"] and "--privileged" in argv
        volumes = [argv[i + 1] for i, a in enumerate(argv) if a == "-v"]
        assert volumes == [
            f"{v['host_path']}:{v['container_path']}" + (":ro" if v["mode"] == "RO" else "")
            for v in task["container"]["volumes"]
        ]
        env_file = next(a.split("=", 1)[1] for a in argv if a.startswith("--env-file="))
        env = docker_env_file(Path(env_file))
        passed = [argv[i + 1] for i, a in enumerate(argv) if a == "-e"]
        env.update({name: HOST_IP for name in passed})  # NODENAME, LIBPROCESS_IP: detect_ip
        assert {k: v for k, v in env.items() if k != "LIBPROCESS_IP"} == env_of(task)
        assert ("LIBPROCESS_IP" in passed) == command.get("shell", True)
