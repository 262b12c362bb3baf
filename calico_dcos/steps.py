"""The step catalog: the five steps of the per-agent chain and their Mesos v1 TaskInfos.

Pure: options and an agent in, TaskInfo JSON dicts out. The core decides when a step runs;
this module says what it runs. Every option value that reaches a shell is `shlex.quote`d,
so an option holding spaces, quotes or `$(…)` arrives on the agent as the same text.
"""

from __future__ import annotations

import hashlib
import json
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from calico_dcos import options as opts
from calico_dcos.core.records import AgentView

STEP_LABEL = "calico_dcos.step"
FINGERPRINT_LABEL = "calico_dcos.fingerprint"
INSTALLER_PATH = "/v1/artifacts/installer.pyz"


@dataclass(frozen=True)
class Step:
    """One step of the chain. `section` names its options; `depends_on` feeds its fingerprint.

    `health_checked`: a daemon whose TaskInfo has a health check is done only when healthy.
    """

    name: str
    kind: str  # "daemon": done when RUNNING (and healthy); "oneshot": done when FINISHED
    restarts: str | None  # None, "docker" or "agent"
    section: str
    enable_option: str
    depends_on: tuple[str, ...]
    health_checked: bool
    build: Callable[[Step, Mapping, AgentView, str], dict] = field(repr=False, compare=False)

    def enabled(self, options: Mapping) -> bool:
        return bool(_get(options, self.enable_option))

    def fingerprint(self, options: Mapping) -> str:
        """sha256 of the canonical JSON of exactly the options this step depends on."""
        values = {option: _get(options, option) for option in self.depends_on}
        canonical = json.dumps(values, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def resources(self, options: Mapping) -> dict[str, float]:
        return {"cpus": options[self.section]["cpus"], "mem": options[self.section]["mem"]}

    @property
    def task_name(self) -> str:
        return f"calico-{self.name}"


def _get(options: Mapping, option: str) -> Any:
    section, key = option.split(".", 1)
    return options[section][key]


def build_task_info(
    step: Step, options: Mapping, agent: AgentView, task_id: str, role: str, artifacts_url: str
) -> dict:
    """The Mesos v1 TaskInfo that runs `step` on `agent`, on resources of the offer's `role`."""
    fingerprint = step.fingerprint(options)
    task = {
        "name": step.task_name,
        "task_id": {"value": task_id},
        "agent_id": {"value": agent.agent_id},
        "resources": [
            _scalar(name, value, role) for name, value in step.resources(options).items()
        ],
        "labels": {
            "labels": [
                {"key": STEP_LABEL, "value": step.name},
                {"key": FINGERPRINT_LABEL, "value": fingerprint},
            ]
        },
    }
    task.update(step.build(step, options, agent, artifacts_url.rstrip("/")))
    return task


def _scalar(name: str, value: float, role: str) -> dict:
    return {
        "name": name,
        "type": "SCALAR",
        "scalar": {"value": value},
        "role": role,
        "allocation_info": {"role": role},
    }


def _environment(variables: Mapping[str, str]) -> dict:
    return {"variables": [{"name": k, "value": str(v)} for k, v in variables.items()]}


def _basename(uri: str) -> str:
    """The file name the Mesos fetcher gives a URI in the sandbox."""
    return urlsplit(uri).path.rstrip("/").rsplit("/", 1)[-1]


def _quote_all(argv: list[str]) -> str:
    return " ".join(shlex.quote(arg) for arg in argv)


def _etcd_endpoints(options: Mapping) -> str:
    return ",".join(opts.etcd_endpoint_list(options))


# etcd-proxy


def _etcd_proxy(step: Step, options: Mapping, agent: AgentView, artifacts_url: str) -> dict:
    """No ETCD_ENDPOINTS here: etcd reads ETCD_* variables as its own flags."""
    etcd = options["etcd"]
    command = f'{_FIND_ETCD} exec "$etcd" {_etcd_arguments(etcd, options)}'
    return {
        "command": {
            "shell": True,
            "value": command,
            "uris": [{"value": etcd["binary_uri"], "extract": True, "executable": False}],
        }
    }


# The tarball's top directory is its name without `.tar.gz`; look there, below it and at the
# top of the sandbox, so that a tarball laid out differently still works.
_FIND_ETCD = 'for etcd in ./etcd ./*/etcd ./*/bin/etcd; do [ -x "$etcd" ] && break; done;'


def _listen_host(etcd: Mapping) -> str:
    """The proxy's address, already shell-quoted: `$LIBPROCESS_IP` expands, nothing else."""
    if etcd["listen_address"] == "agent-ip":
        return '"$LIBPROCESS_IP"'
    return shlex.quote(etcd["listen_address"])


def _etcd_arguments(etcd: Mapping, options: Mapping) -> str:
    """grpc-proxy (v3) or `--proxy=on` (v2), to static members or by SRV discovery."""
    listen = _listen_host(etcd) + shlex.quote(f":{etcd['listen_port']}")
    cluster = opts.etcd_cluster_list(options)
    if etcd["proxy_mode"] == "v3":
        upstream = "--endpoints=" + ",".join(cluster)
        mode, listen_flag = "grpc-proxy start", f"--listen-addr={listen}"
    else:
        upstream = "--initial-cluster=" + ",".join(f"m{i}={url}" for i, url in enumerate(cluster))
        mode, listen_flag = "--proxy=on", f"--listen-client-urls=http://{listen}"
    if not cluster:
        upstream = "--discovery-srv=" + etcd["discovery_srv"]
    return f"{mode} {shlex.quote(upstream)} {listen_flag}"


# docker and cni: the agent-side installer, fetched from the scheduler


def _installer_command(
    options: Mapping,
    agent: AgentView,
    artifacts_url: str,
    argv: list[str],
    uris: list[dict],
    environment: Mapping[str, str] | None = None,
) -> dict:
    """The installer's command line, and its environment.

    Values that may hold credentials (etcd URLs, the cluster store) travel in the
    environment, never in argv, which every user of the agent sees in `ps`.
    """
    python = options["service"]["agent_python"]
    force = ["--force"] if options["agents"]["override_existing_calico"] else []
    stability = ["--stability-seconds", str(options["rollout"]["stability_seconds"])]
    return {
        "command": {
            "shell": True,
            "value": "exec " + _quote_all([python, "./installer.pyz", *argv, *stability, *force]),
            "uris": [{"value": artifacts_url + INSTALLER_PATH, "executable": False}, *uris],
            "environment": _environment(
                {
                    "ETCD_ENDPOINTS": _etcd_endpoints(options),
                    "CALICO_DCOS_REPORT_URL": f"{artifacts_url}/v1/agents/{agent.agent_id}/report",
                    **(environment or {}),
                }
            ),
        }
    }


def _docker(step: Step, options: Mapping, agent: AgentView, artifacts_url: str) -> dict:
    store = {"CALICO_DCOS_CLUSTER_STORE": opts.derived_cluster_store(options)}
    return _installer_command(options, agent, artifacts_url, ["docker"], [], store)


def _cni(step: Step, options: Mapping, agent: AgentView, artifacts_url: str) -> dict:
    cni = options["cni"]
    argv = [
        "cni",
        "--plugins-dir", cni["plugins_dir"],
        "--config-dir", cni["config_dir"],
        "--config-name", cni["config_name"],
        "--network-name", cni["network_name"],
        "--log-level", cni["log_level"],
        "--calico-bin", "./" + _basename(cni["calico_uri"]),
        "--calico-ipam-bin", "./" + _basename(cni["calico_ipam_uri"]),
    ]  # fmt: skip
    if agent.public:
        argv.append("--public")
    uris = [
        {"value": cni["calico_uri"], "executable": True},
        {"value": cni["calico_ipam_uri"], "executable": True},
    ]
    return _installer_command(options, agent, artifacts_url, argv, uris)


# libnetwork and node: privileged Docker containers on the host network


def _volume(path: str, mode: str = "RW") -> dict:
    return {"container_path": path, "host_path": path, "mode": mode}


def _docker_container(image: str, volumes: list[dict]) -> dict:
    return {
        "type": "DOCKER",
        "docker": {"image": image, "network": "HOST", "privileged": True},
        "volumes": volumes,
    }


def _image_command(variables: Mapping[str, str]) -> dict:
    """Run the image's own entrypoint (`shell: false`, no value) with this environment."""
    return {"shell": False, "environment": _environment(variables)}


_DOCKER_PLUGIN_VOLUMES = (_volume("/run/docker/plugins"), _volume("/var/run/docker.sock"))


def _libnetwork(step: Step, options: Mapping, agent: AgentView, artifacts_url: str) -> dict:
    return {
        "container": _docker_container(options["libnetwork"]["image"], [*_DOCKER_PLUGIN_VOLUMES]),
        "command": _image_command({"ETCD_ENDPOINTS": _etcd_endpoints(options)}),
    }


_NODE_VOLUMES = (
    _volume("/lib/modules", "RO"),
    _volume("/var/run/calico"),
    _volume("/var/lib/calico"),
    _volume("/var/log/calico"),
    *_DOCKER_PLUGIN_VOLUMES,
)


def node_environment(options: Mapping, agent: AgentView) -> dict[str, str]:
    """calico-node's settings; `node.extra_env` comes last and wins.

    CALICO_LIBNETWORK_ENABLED=false: the libnetwork step runs Calico's Docker plugin on its
    own (calico-node v2.x would otherwise start a second one; v3 ignores the variable).
    """
    node = options["node"]
    env = {
        "ETCD_ENDPOINTS": _etcd_endpoints(options),
        "DATASTORE_TYPE": "etcdv3",
        "NODENAME": agent.hostname,
        "IP": "autodetect",
        "IP_AUTODETECTION_METHOD": node["ip_autodetection_method"],
        "CALICO_NETWORKING_BACKEND": node["networking_backend"],
        "CALICO_LIBNETWORK_ENABLED": "false",
        "FELIX_HEALTHENABLED": "true",
    }
    if node["ignore_loose_rpf"]:
        env["FELIX_IGNORELOOSERPF"] = "true"
    env.update(opts.node_extra_env(options))
    return env


HEALTH_GRACE_INTERVALS = 6


def _node_health_check(options: Mapping) -> dict:
    """Felix (and BIRD, when it routes) readiness, every `node.health_check_interval_seconds`.

    The first probe waits one interval; failures count only after six intervals (60 s at the
    default 10 s), generous for the first BGP sessions.
    """
    node = options["node"]
    interval = node["health_check_interval_seconds"]
    flags = "-felix-ready -bird-ready" if node["networking_backend"] == "bird" else "-felix-ready"
    return {
        "type": "COMMAND",
        "command": {"shell": True, "value": f"calico-node {flags}"},
        "delay_seconds": interval,
        "interval_seconds": interval,
        "timeout_seconds": interval,
        "consecutive_failures": 3,
        "grace_period_seconds": HEALTH_GRACE_INTERVALS * interval,
    }


def _node(step: Step, options: Mapping, agent: AgentView, artifacts_url: str) -> dict:
    return {
        "container": _docker_container(options["node"]["image"], [*_NODE_VOLUMES]),
        "command": _image_command(node_environment(options, agent)),
        "health_check": _node_health_check(options),
    }


_ENDPOINTS = ("etcd.endpoints",)
_INSTALLER = ("agents.override_existing_calico",)

# What each step's task fetches (its CommandInfo.uris), by the option that names it, so that a
# failed download names the option to change: the installer comes from the scheduler
# (`service.artifacts_url`, by default the scheduler's own address), the rest from the option.
# "uninstall" is the uninstall's revert task (calico-uninstall__…), the installer alone.
FETCHED_FROM: dict[str, tuple[str, ...]] = {
    "etcd-proxy": ("etcd.binary_uri",),
    "docker": ("service.artifacts_url",),
    "cni": ("service.artifacts_url", "cni.calico_uri", "cni.calico_ipam_uri"),
    "uninstall": ("service.artifacts_url",),
}
# Mesos' fetcher failing says "Failed to fetch all URIs for container '<id>': exited with
# status N" (apache/mesos src/slave/containerizer/fetcher.cpp); the devcluster's fetcher
# "Failed to fetch '<uri>': <why>".
FETCH_FAILED = "Failed to fetch"


def fetch_hint(step: str, message: str) -> str:
    """A task's status message, led by the options that name what it fetches when the
    message says a fetch failed: `cannot download cni.calico_uri, …: Failed to fetch …`."""
    options = FETCHED_FROM.get(step)
    if not options or FETCH_FAILED not in message:
        return message
    return f"cannot download {', '.join(options)}: {message}"


STEPS: tuple[Step, ...] = (
    Step(
        "etcd-proxy", "daemon", None, "etcd", "etcd.run_proxy",
        ("etcd.proxy_mode", "etcd.discovery_srv", "etcd.cluster_endpoints",
         "etcd.listen_address", "etcd.listen_port", "etcd.binary_uri", "etcd.cpus", "etcd.mem"),
        False,
        _etcd_proxy,
    ),
    Step(
        "docker", "oneshot", "docker", "docker", "docker.enable",
        ("docker.cluster_store", *_ENDPOINTS, *_INSTALLER),
        False,
        _docker,
    ),
    Step(
        "cni", "oneshot", "agent", "cni", "cni.enable",
        ("cni.plugins_dir", "cni.config_dir", "cni.config_name", "cni.network_name",
         "cni.calico_uri", "cni.calico_ipam_uri", "cni.log_level", *_ENDPOINTS, *_INSTALLER),
        False,
        _cni,
    ),
    Step(
        "libnetwork", "daemon", None, "libnetwork", "libnetwork.enable",
        ("libnetwork.image", "libnetwork.cpus", "libnetwork.mem", *_ENDPOINTS),
        False,
        _libnetwork,
    ),
    Step(
        "node", "daemon", None, "node", "node.enable",
        ("node.image", "node.ip_autodetection_method", "node.networking_backend",
         "node.ignore_loose_rpf", "node.extra_env", "node.health_check_interval_seconds",
         "node.cpus", "node.mem", *_ENDPOINTS),
        True,
        _node,
    ),
)  # fmt: skip
STEP_NAMES: tuple[str, ...] = tuple(step.name for step in STEPS)
BY_NAME: dict[str, Step] = {step.name: step for step in STEPS}


def enabled_steps(options: Mapping) -> list[Step]:
    """The chain for these options, in order, without disabled steps."""
    return [step for step in STEPS if step.enabled(options)]
