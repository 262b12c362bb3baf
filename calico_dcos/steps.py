"""The step catalog: the five steps of the per-agent chain and their Mesos v1 TaskInfos.

Pure: options and an agent in, TaskInfo JSON dicts out. The core decides when a step runs;
this module says what it runs. Every option value that reaches a shell is `shlex.quote`d,
so an option holding spaces, quotes or `$(…)` arrives on the agent as the same text.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from calico_dcos import matrix
from calico_dcos import options as opts
from calico_dcos.core.failures import FETCH_ALL_FAILED
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

    def restarts_with(self, options: Mapping) -> str | None:
        """What this step restarts with these options: the cni step restarts the agent only
        with `cni.restart_agent` (Mesos < 1.2, MESOS-6567: see installer/cni.py)."""
        if self.restarts == "agent" and not options["cni"]["restart_agent"]:
            return None
        return self.restarts

    def fingerprint(self, options: Mapping) -> str:
        """sha256 of the canonical JSON of exactly the options this step depends on; worked
        out once per step for read-only `Options` (every launch's TaskInfo labels it)."""
        kept = getattr(options, "fingerprints", None)
        if kept is not None and self.name in kept:
            return kept[self.name]
        values = {option: _get(options, option) for option in self.depends_on}
        canonical = json.dumps(values, sort_keys=True, separators=(",", ":"))
        digest = hashlib.sha256(canonical.encode()).hexdigest()
        if kept is not None:
            kept[self.name] = digest
        return digest

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


def _uri(value: str, pinned: bool, **fields: bool) -> dict:
    """A `CommandInfo.URI`, through the agent's fetcher cache when its content is `pinned`.

    Mesos' fetcher cache keeps a URI's file per agent and user and never refreshes it ("there
    is no mechanism to refresh a cache entry … The framework should start using a fresh unique
    URI whenever the resource's content has changed", apache/mesos docs/fetcher.md; the field
    is mesos.proto `CommandInfo.URI.cache`). So only a URI whose content cannot change under
    it is cached: a release asset whose name carries its version, or a file the task checks
    against a checksum (a changed file would fail the check whether fetched or cached). A
    crash-looping daemon is then downloaded once per agent, not once per relaunch. Not pinned:
    no `cache` field (Mesos' default, false: straight into the sandbox).
    """
    return {"value": value, **fields, **({"cache": True} if pinned else {})}


def _pinned(download: matrix.Download, options: Mapping) -> bool:
    """Fixed content: checked against a checksum, or one of the profile's own downloads (a
    GitHub release asset under its version's tag, e.g. cni-plugin/releases/download/v1.11.8)."""
    profile = matrix.profile_of(options)
    own = {profile.calico_plugin.uri, profile.calico_ipam_plugin.uri}
    if profile.libnetwork_binary is not None:
        own.add(profile.libnetwork_binary.uri)
    return bool(download.checksum) or download.uri in own


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
            # Cached when its name carries the version (etcd-vX.Y.Z-…, the release asset's
            # name, which `matrix.etcd_version` already trusts for what the proxy can do).
            "uris": [
                _uri(
                    etcd["binary_uri"],
                    matrix.etcd_version(etcd["binary_uri"]) is not None,
                    extract=True,
                    executable=False,
                )
            ],
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
    if matrix.proxy_mode(options) == "v3":
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
            # Never cached: the scheduler serves each version's installer under this one URI.
            "uris": [_uri(artifacts_url + INSTALLER_PATH, False, executable=False), *uris],
            "environment": _environment(
                {
                    "ETCD_ENDPOINTS": _etcd_endpoints(options),
                    "CALICO_DCOS_REPORT_URL": f"{artifacts_url}/v1/agents/{agent.agent_id}/report",
                    **(environment or {}),
                }
            ),
        }
    }


def cluster_store(options: Mapping) -> str:
    """Docker's cluster store: the override, else etcd v2 where the profile has it.

    calico-2.6: the agent's v2 proxy (etcd.endpoints). calico-v3: the etcd cluster itself
    (etcd.cluster_endpoints, which must serve v2: matrix.profile_errors), since grpc-proxy
    serves only v3 and Docker's store (docker/libkv) speaks only v2, as DC/OS 2.x points
    Docker at its masters' etcd (dcos/dcos@2.2 create-calico-docker-network.py).
    """
    if options["docker"]["cluster_store"] or matrix.profile_of(options).etcd_api == "v2":
        return opts.derived_cluster_store(options)
    hosts = [urlsplit(e).netloc if "://" in e else e for e in opts.etcd_cluster_list(options)]
    return "etcd://" + ",".join(hosts)


def _docker(step: Step, options: Mapping, agent: AgentView, artifacts_url: str) -> dict:
    store = {"CALICO_DCOS_CLUSTER_STORE": cluster_store(options)}
    return _installer_command(options, agent, artifacts_url, ["docker"], [], store)


def _cni(step: Step, options: Mapping, agent: AgentView, artifacts_url: str) -> dict:
    """The plugins (the profile's release assets with their checksums, or the given ones),
    the network config, the default profile, and the agent restart only if asked."""
    cni, plugins = options["cni"], matrix.cni_plugins(options)
    calico, ipam = plugins["calico"], plugins["calico-ipam"]
    policy = options["calico"]["default_profile_policy"]
    argv = [
        "cni",
        "--plugins-dir", cni["plugins_dir"],
        "--config-dir", cni["config_dir"],
        "--config-name", cni["config_name"],
        "--network-name", cni["network_name"],
        "--log-level", cni["log_level"],
        "--calico-bin", "./" + _basename(calico.uri),
        "--calico-ipam-bin", "./" + _basename(ipam.uri),
        "--default-profile", policy,
        "--etcd-api", matrix.profile_of(options).etcd_api,
    ]  # fmt: skip
    for flag, download in (("--calico-checksum", calico), ("--calico-ipam-checksum", ipam)):
        if download.checksum:
            argv += [flag, download.checksum]
    if cni["restart_agent"]:
        argv.append("--restart-agent")
    if agent.public:
        argv.append("--public")
    uris = [
        _uri(calico.uri, _pinned(calico, options), executable=True),
        _uri(ipam.uri, _pinned(ipam, options), executable=True),
    ]
    environment = {}
    if policy == "allow-all" and matrix.profile_of(options).etcd_api == "v3":
        environment["CALICO_DCOS_PROFILE_ETCD_ENDPOINTS"] = ",".join(
            opts.etcd_cluster_list(options) or opts.etcd_endpoint_list(options)
        )
    return _installer_command(options, agent, artifacts_url, argv, uris, environment)


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


def libnetwork_environment(options: Mapping, agent: AgentView) -> dict[str, str]:
    """The plugin's settings. v3 (D2iQ's fork) as DC/OS 2.x starts it (dcos/dcos@2.2
    `packages/calico/extra/start-calico-libnetwork-plugin.sh`, its systemd unit): the node's
    name as hostname, the `default` namespace shared with the CNI plugin's endpoints, and
    labelled endpoints."""
    env = {"ETCD_ENDPOINTS": _etcd_endpoints(options)}
    if matrix.profile_of(options).etcd_api == "v3":
        env.update({
            "DATASTORE_TYPE": "etcdv3",
            "CALICO_LIBNETWORK_HOSTNAME": agent.hostname,
            "CALICO_LIBNETWORK_NAMESPACE": "default",
            "CALICO_LIBNETWORK_LABEL_ENDPOINTS": "true",
        })  # fmt: skip
    return env


def _libnetwork(step: Step, options: Mapping, agent: AgentView, artifacts_url: str) -> dict:
    """The image (calico-2.6: calico/libnetwork-plugin:v1.1.3), or for calico-v3 the fork's
    binary run on the host, as DC/OS 2.x runs it: D2iQ publishes no image of it
    (mesosphere/libnetwork-plugin commit cf7f20b "Removing image pushes")."""
    env = libnetwork_environment(options, agent)
    image = matrix.libnetwork_image(options)
    if image:
        return {
            "container": _docker_container(image, [*_DOCKER_PLUGIN_VOLUMES]),
            "command": _image_command(env),
        }
    binary = matrix.libnetwork_binary(options)
    name = _basename(binary.uri)
    check = ""
    if binary.checksum:
        algorithm, _, digest = binary.checksum.partition(":")
        check = f"echo {shlex.quote(digest + '  ' + name)} | {algorithm}sum -c - && "
    return {
        "command": {
            "shell": True,
            "value": f"{check}exec ./{shlex.quote(name)}",
            "uris": [_uri(binary.uri, _pinned(binary, options), executable=True)],
            "environment": _environment(env),
        }
    }


# /run: iptables' lock, /run/xtables.lock, which Felix must share with the host's other
# iptables users (kube-proxy-like agents, Docker, DC/OS's own networking); Calico's own
# manifests mount it into calico-node.
_NODE_VOLUMES = (
    _volume("/lib/modules", "RO"),
    _volume("/run"),
    _volume("/var/run/calico"),
    _volume("/var/lib/calico"),
    _volume("/var/log/calico"),
    *_DOCKER_PLUGIN_VOLUMES,
)


def node_environment(options: Mapping, agent: AgentView) -> dict[str, str]:
    """calico-node's settings; `node.extra_env` comes last and wins.

    CALICO_LIBNETWORK_ENABLED=false: the libnetwork step runs Calico's Docker plugin on its
    own (calico-node v2.x would otherwise start a second one; v3 ignores the variable).
    `IP` is not here: the node's command sets it from `$LIBPROCESS_IP` (node_command).
    DATASTORE_TYPE: what the profile's Calico reads (v2.6: etcdv2, projectcalico/calico@v2.6.12
    `v2.6/reference/node/configuration.md`; v3: etcdv3). The pool: CIDR, encapsulation and
    NAT as DC/OS 2.x sets them (dcos/dcos@2.2 `gen/dcos-config.yaml`, calico-node.env);
    Calico v2.6 names IPIP modes `always`/`off` and has no VXLAN.
    FELIX_IGNORELOOSERPF only where Felix still has it (before v3.12:
    matrix.felix_checks_rpf_itself).
    """
    node, calico = options["node"], options["calico"]
    profile = matrix.profile_of(options)
    encapsulation = calico["ipv4pool_encapsulation"]
    env = {
        "ETCD_ENDPOINTS": _etcd_endpoints(options),
        "DATASTORE_TYPE": profile.datastore_type,
        "NODENAME": agent.hostname,
        "IP_AUTODETECTION_METHOD": node["ip_autodetection_method"],
        "CALICO_NETWORKING_BACKEND": matrix.networking_backend(options),
        "CALICO_LIBNETWORK_ENABLED": "false",
        "CALICO_IPV4POOL_CIDR": calico["ipv4pool_cidr"],
        "CALICO_IPV4POOL_NAT_OUTGOING": "true" if calico["ipv4pool_nat_outgoing"] else "false",
        "FELIX_HEALTHENABLED": "true",
    }
    if profile.calico[0] == 2:
        env["CALICO_IPV4POOL_IPIP"] = "always" if encapsulation == "ipip" else "off"
    else:
        env["CALICO_IPV4POOL_IPIP"] = "always" if encapsulation == "ipip" else "never"
        env["CALICO_IPV4POOL_VXLAN"] = "always" if encapsulation == "vxlan" else "never"
    if matrix.ignores_loose_rpf(options):
        env["FELIX_IGNORELOOSERPF"] = "true"
    env.update(opts.node_extra_env(options))
    return env


def node_command(options: Mapping) -> str:
    """calico/node's own entrypoint (`start_runit`, the CMD of its Dockerfile in v2.6.12 and
    v3.14.0) with `IP` set to the agent's address as DC/OS defines it.

    DC/OS starts its agents with `MESOS_IP_DISCOVERY_COMMAND=/opt/mesosphere/bin/detect_ip`
    (dcos/dcos `gen/dcos-config.yaml`), Mesos gives executors the agent's address as
    LIBPROCESS_IP, and DC/OS patches Mesos to pass it into Docker containers (dcos/dcos
    `packages/mesos/extra/patches/0001-Set-LIBPROCESS_IP-into-docker-container.patch`, on
    1.11 to 2.2). So the IP is detect_ip's, the one DC/OS 2.x gives its own calico-node
    (`start-calico-felix.sh`: `IP=$(detect_ip)`); without it, calico-node autodetects
    (`IP_AUTODETECTION_METHOD`), whose `first-found` takes whichever interface comes first.
    """
    return 'IP="${LIBPROCESS_IP:-autodetect}"; export IP; exec start_runit'


HEALTH_GRACE_INTERVALS = 6


READY_MARK = '"${MESOS_SANDBOX:-/tmp}/.calico-node-was-ready"'


def node_probes(options: Mapping) -> tuple[str, str]:
    """(readiness, liveness) commands of calico-node for the profile's Calico.

    v3: `calico-node -felix-ready -bird-ready` and `-felix-live -bird-live` (BIRD only with
    the bird backend; projectcalico/calico@v3.14.0-node `cmd/calico-node/main.go`). v2.6 has
    no such binary (added in v3.2), so its Felix's own endpoints, with FELIX_HEALTHENABLED on
    port 9099 (felix@2.6.8 `config/config_params.go` HealthEnabled, HealthPort; Felix 2.6's
    `/readiness` and `/liveness`), through busybox wget in the Alpine-based image.
    """
    if matrix.profile_of(options).calico[0] == 2:
        url = "http://localhost:9099"
        return (f"wget -q -O /dev/null {url}/readiness", f"wget -q -O /dev/null {url}/liveness")
    bird = matrix.networking_backend(options) == "bird"
    ready = "calico-node -felix-ready" + (" -bird-ready" if bird else "")
    live = "calico-node -felix-live" + (" -bird-live" if bird else "")
    return ready, live


def _node_health_check(options: Mapping) -> dict:
    """Healthy once ready, then killed only when no longer live.

    Calico's own manifests probe readiness (`-felix-ready -bird-ready`) and restart only on
    liveness (`-felix-live -bird-live`); readiness fails on an etcd blip of 30 s, which must
    not kill calico-node. Mesos' Docker executor runs no checks besides the health check
    (apache/mesos `src/docker/executor.cpp`, 1.5 to 1.11: "Docker executor does not support
    checks yet"), so one health check does both: it passes when calico-node is ready (and
    marks that in the task's sandbox), and after the first readiness it passes while
    calico-node is live. Mesos ignores failures until the first success within the grace
    period, so the first `healthy` (which makes the step done) means ready, and a kill
    needs three liveness failures in a row.

    The first probe waits one interval; failures count only after six intervals (60 s at the
    default 10 s), generous for the first BGP sessions.
    """
    node = options["node"]
    interval = node["health_check_interval_seconds"]
    ready, live = node_probes(options)
    check = f"if {ready}; then touch {READY_MARK}; else [ -f {READY_MARK} ] && {live}; fi"
    return {
        "type": "COMMAND",
        "command": {"shell": True, "value": check},
        "delay_seconds": interval,
        "interval_seconds": interval,
        "timeout_seconds": interval,
        "consecutive_failures": 3,
        "grace_period_seconds": HEALTH_GRACE_INTERVALS * interval,
    }


def _node(step: Step, options: Mapping, agent: AgentView, artifacts_url: str) -> dict:
    return {
        "container": _docker_container(matrix.node_image(options), [*_NODE_VOLUMES]),
        "command": {
            "shell": True,
            "value": node_command(options),
            "environment": _environment(node_environment(options, agent)),
        },
        "health_check": _node_health_check(options),
    }


_ENDPOINTS = ("etcd.endpoints",)
_INSTALLER = ("agents.override_existing_calico",)

# What each step's task fetches (its CommandInfo.uris), by the option that names it, so that a
# failed download names the option to change: the installer comes from the scheduler
# (`service.artifacts_url`, by default the scheduler's own address), the rest from the option.
# "uninstall" is the uninstall's revert task (calico-uninstall__…), the installer alone;
# libnetwork fetches its binary only when the profile runs it on the host (no image).
FETCHED_FROM: dict[str, tuple[str, ...]] = {
    "etcd-proxy": ("etcd.binary_uri",),
    "docker": ("service.artifacts_url",),
    "cni": ("service.artifacts_url", "cni.calico_uri", "cni.calico_ipam_uri"),
    "libnetwork": ("libnetwork.binary_uri",),
    "uninstall": ("service.artifacts_url",),
}
# Mesos' fetcher program ends with "Failed to fetch '<uri>': <why>" for the first URI it
# cannot fetch (apache/mesos src/launcher/fetcher.cpp, `main`: `EXIT(EXIT_FAILURE) << "Failed
# to fetch '" << uri << "': " + error`, a glog ERROR line "EXIT with status 1: Failed to
# fetch …", stout/exit.hpp) on the sandbox's `stderr` (src/slave/containerizer/fetcher.cpp,
# `FetcherProcess::run` opens `<sandbox>/stderr` for it). The task's TASK_FAILED has only the
# agent's own words, "Failed to launch container: Failed to fetch all URIs for container
# '<id>': exited with status 1" (`failures.FETCH_ALL_FAILED`), which name no URI: the update
# gets "cannot download one of <the step's options>" (`fetch_hint`), and once the scheduler
# has read that `stderr` (`ReadStderr`), the one option that gave the URI (`fetch_output_hint`).
FETCH_FAILED = "Failed to fetch"
_FAILED_URI = re.compile(r"Failed to fetch '([^']*)'")
# The fetcher's line in a line of `sandbox.last_words`' answer (lines joined by " | "),
# from its words on (after glog's prefix and stout's "EXIT with status 1: ")
_FETCHER_LINE = re.compile(r"Failed to fetch '[^']*': .*")
_TAIL_SEPARATOR = " | "  # `sandbox.last_words`
_HINTED = re.compile(r"^cannot download [^:]*: ")  # what `fetch_hint` puts before a message


def fetched_uris(step: str, options: Mapping, artifacts_url: str) -> dict[str, str]:
    """Each URI the step's task fetches with these options -> the option that names it
    (the same URIs as the TaskInfo's `CommandInfo.uris`: `_installer_command`, `_cni`,
    `_etcd_proxy`, `_libnetwork`), each also as `options.redact_text` shows it (a password
    in the URL hidden, as the sandbox's words are); {} for a step that fetches nothing."""
    found: dict[str, str] = {}
    if step in ("docker", "cni", "uninstall"):
        for url in (artifacts_url, artifacts_url.rstrip("/")):  # the uninstall strips it
            found[url + INSTALLER_PATH] = "service.artifacts_url"
    if step == "cni":
        plugins = matrix.cni_plugins(options)
        found.setdefault(plugins["calico"].uri, "cni.calico_uri")
        found.setdefault(plugins["calico-ipam"].uri, "cni.calico_ipam_uri")
    if step == "etcd-proxy":
        found[options["etcd"]["binary_uri"]] = "etcd.binary_uri"
    if step == "libnetwork" and not matrix.libnetwork_image(options):
        found[matrix.libnetwork_binary(options).uri] = "libnetwork.binary_uri"
    for uri, option in list(found.items()):
        found.setdefault(opts.redact_text(uri), option)
    return found


def _download_options(
    step: str, message: str, options: Mapping | None, artifacts_url: str
) -> str | None:
    """The option(s) to name for a download of `step` that failed: the one that gave the URI
    `message` names (`Failed to fetch '<uri>'`), else the step's only one, else "one of
    <each>"; None for a step that fetches nothing of ours."""
    options_of_step = FETCHED_FROM.get(step)
    if not options_of_step:
        return None
    failed = _FAILED_URI.search(message)
    if failed and options is not None:
        option = fetched_uris(step, options, artifacts_url).get(failed.group(1))
        if option:
            return option
    if len(options_of_step) == 1:
        return options_of_step[0]
    return f"one of {', '.join(options_of_step)}"


def fetch_hint(
    step: str, message: str, options: Mapping | None = None, artifacts_url: str = ""
) -> str:
    """A task's status message, led by the option to change when it says a download failed:
    `cannot download cni.calico_uri: Failed to fetch '…': …`. The URI the message names is
    looked up among what the step fetches with `options` (`fetched_uris`); a message that
    names none (Mesos' agent's own words) names every option the step downloads from."""
    if FETCH_FAILED not in message:
        return message
    named = _download_options(step, message, options, artifacts_url)
    return f"cannot download {named}: {message}" if named else message


def fetch_output_hint(
    step: str, output: str, message: str, options: Mapping | None = None, artifacts_url: str = ""
) -> tuple[str, str]:
    """(words, message) for `Core.on_task_output` from what `ReadStderr` handed back: for a
    task whose fetch failed (`FETCH_ALL_FAILED` in `message`), the fetcher program's line
    from the end of the sandbox's `stderr` (`output`, `sandbox.last_words`), led by the
    option that gave its URI, then what the stderr said before it (a local URI is copied
    with `cp`, whose own complaint is there: "cp: cannot stat '…': No such file or
    directory", apache/mesos 3rdparty/stout/include/stout/os/posix/copyfile.hpp), as
    ("cannot download cni.calico_uri: Failed to fetch '…': cp failed with status: 256; cp:
    cannot stat …", the agent's message without `fetch_hint`'s "cannot download one of …: ").
    Without the fetcher's line, the whole `output` is led by the step's options. Any other
    task's: unchanged."""
    if FETCH_ALL_FAILED not in message or not output:
        return output, message
    lines = output.split(_TAIL_SEPARATOR)
    found = [(i, m) for i, line in enumerate(lines) if (m := _FETCHER_LINE.search(line))]
    if found:
        index, fetcher = found[-1]
        words = "; ".join([fetcher.group(0), *lines[:index]])
    else:
        words = output
    named = _download_options(step, words, options, artifacts_url)
    if named is None:
        return output, message
    return f"cannot download {named}: {words}", _HINTED.sub("", message, count=1)


STEPS: tuple[Step, ...] = (
    Step(
        "etcd-proxy", "daemon", None, "etcd", "etcd.run_proxy",
        ("calico.profile", "etcd.proxy_mode", "etcd.discovery_srv", "etcd.cluster_endpoints",
         "etcd.listen_address", "etcd.listen_port", "etcd.binary_uri", "etcd.cpus", "etcd.mem"),
        False,
        _etcd_proxy,
    ),
    Step(
        "docker", "oneshot", "docker", "docker", "docker.enable",
        ("calico.profile", "docker.cluster_store", "etcd.cluster_endpoints", *_ENDPOINTS,
         *_INSTALLER),
        False,
        _docker,
    ),
    Step(
        "cni", "oneshot", "agent", "cni", "cni.enable",
        ("cni.plugins_dir", "cni.config_dir", "cni.config_name", "cni.network_name",
         "cni.calico_uri", "cni.calico_ipam_uri", "cni.calico_checksum",
         "cni.calico_ipam_checksum", "cni.restart_agent", "cni.log_level", "calico.profile",
         "calico.default_profile_policy", "etcd.cluster_endpoints", *_ENDPOINTS, *_INSTALLER),
        False,
        _cni,
    ),
    Step(
        "libnetwork", "daemon", None, "libnetwork", "libnetwork.enable",
        ("calico.profile", "libnetwork.image", "libnetwork.binary_uri", "libnetwork.cpus",
         "libnetwork.mem", *_ENDPOINTS),
        False,
        _libnetwork,
    ),
    Step(
        "node", "daemon", None, "node", "node.enable",
        ("calico.profile", "calico.ipv4pool_cidr", "calico.ipv4pool_encapsulation",
         "calico.ipv4pool_nat_outgoing", "node.image", "node.ip_autodetection_method",
         "node.networking_backend",
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
