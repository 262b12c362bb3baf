"""The manual path: Calico as systemd services on each agent, from the framework's TaskInfos.

Calico's DC/OS guide offers two ways to install: the framework, or Calico "manually installed
directly onto Agents as a daemon service integrated with the OS (using systemd) to ensure it
is available when tasks are eventually provisioned" (projectcalico/calico
`v1.6/getting-started/mesos/installation/dc-os/index.md`, "Alternatives: Installing Manually").
This module renders the second from the same options, and from the same code: every unit,
script and environment file is translated from the TaskInfo that `steps.build_task_info`
builds for the framework, so an option cannot mean one thing on one path and another on the
other. A TaskInfo field this module does not know how to carry is an error, not a silent gap.

The translation (pure; `commands/units.py` does the fetching and the writing):
- daemon steps (etcd-proxy, libnetwork, node) become `calico-<step>.service`, each running a
  root-only script `/etc/calico-dcos/calico-<step>.sh` (mode 0700). A shell command runs as
  the Mesos command executor runs it, `sh -c <value>` in a directory holding what the Mesos
  fetcher would have put in the sandbox (`/opt/calico-dcos/<task>/`); a Docker container runs
  as `docker run --net=host --privileged -v … --env-file … IMAGE`, the unit Calico's own docs
  give for calico-node (projectcalico/calico `_includes/content/docker-container-service.md`:
  `After=`/`Requires=docker.service`, `ExecStartPre=-docker rm -f`, `ExecStop=-docker stop`).
  Option values never appear in unit files: environment variables go to environment files
  (mode 0600) and commands to the 0700 scripts, so secrets (passwords in etcd URLs,
  `node.extra_env`) are readable by root only and never on an `ExecStart=` line.
- Restart policy as DC/OS runs its own Calico units (dcos/dcos `packages/calico/extra/
  dcos-calico-felix.service`: `Restart=always`, `RestartSec=5`, `StartLimitInterval=0`), and
  a wrapper script per daemon as DC/OS does (`start-calico-felix.sh`,
  `start-calico-libnetwork-plugin.sh`).
- A container TaskInfo with a shell command (calico-node: `IP` from `$LIBPROCESS_IP`) runs as
  Mesos' Docker containerizer runs it, `--entrypoint /bin/sh <image> -c <value>`, with
  LIBPROCESS_IP from `detect_ip`.
- The agent's address: Mesos gives a task `LIBPROCESS_IP`, and on DC/OS the agent's hostname
  in offers is the address `/opt/mesosphere/bin/detect_ip` prints (dcos/dcos
  `gen/dcos-config.yaml`: `MESOS_IP_DISCOVERY_COMMAND`, `MESOS_HOSTNAME_LOOKUP=false`). The
  scripts ask `detect_ip` for both, as DC/OS' own Calico scripts do for `NODENAME`.
- one-shot steps (docker, cni) become `setup.sh`, run by `install.sh`: the installer's
  commands with the TaskInfo's exact command line, so the same backups, markers and rollback.
  Not a unit: the cni command may restart the Mesos agent (`cni.restart_agent`, Mesos < 1.2),
  and a unit ordered before the agent whose start job waits on it, asking for the agent's
  restart and waiting for that, could hang the boot; the files it writes persist, so once is
  enough.
- `install.sh` first runs the installer's `detect` (unless `agents.override_existing_calico`)
  and changes nothing where Calico already runs, as the framework launches no step there;
  it saves what it replaces, so `uninstall.sh`, which also runs the framework's revert
  TaskInfo (`plans.revert_task_info`), puts the host back byte for byte.
- Not carried: `resources` (Docker runs the containers outside the unit's cgroup) and the
  node's `health_check` (systemd has no readiness probe; `Restart=always` covers exits).
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from calico_dcos import steps
from calico_dcos.plans import revert_task_info

UNIT_DIR = "/etc/systemd/system"
CONFIG_DIR = "/etc/calico-dcos"
SANDBOX_ROOT = "/opt/calico-dcos"
STATE_DIR = "/var/lib/calico-dcos"
INSTALLER_STATE_DIR = "/etc/calico/installer"
DETECT_IP = "/opt/mesosphere/bin/detect_ip"
DOCKER = "/usr/bin/docker"
WANTED_BY = "multi-user.target"
AGENT_UNITS = {False: "dcos-mesos-slave.service", True: "dcos-mesos-slave-public.service"}
HOST_ROOT_ENV = "CALICO_INSTALLER_HOST_ROOT"

# What the TaskInfos are rendered for: no scheduler, no offer. The artifacts URL is a
# placeholder (.invalid is reserved, RFC 2606); its installer URI stands for the zipapp
# bundled beside the scripts. NODENAME_FROM_HOST stands for the address detect_ip prints.
MANUAL_AGENT_ID = "manual"
MANUAL_ROLE = "*"
ARTIFACTS_URL = "http://calico-dcos.invalid"
INSTALLER_URI = ARTIFACTS_URL + steps.INSTALLER_PATH
NODENAME_FROM_HOST = "calico-dcos.detect-ip.invalid"
REPORT_URL_ENV = "CALICO_DCOS_REPORT_URL"  # the scheduler's report endpoint: none here
REVERT_TASK = "calico-uninstall"

TASK_KEYS = {"name", "task_id", "agent_id", "resources", "labels", "command", "container"}
TASK_KEYS_NOT_CARRIED = {"health_check"}
COMMAND_KEYS = {"shell", "value", "uris", "environment"}
URI_KEYS = {"value", "extract", "executable", "cache"}  # cache: each bundle fetches once anyway
CONTAINER_KEYS = {"type", "docker", "volumes"}
DOCKER_KEYS = {"image", "network", "privileged"}
VOLUME_KEYS = {"container_path", "host_path", "mode"}


class UnitsError(Exception):
    """The options cannot be rendered as units; the message names the option and the fix."""


@dataclass(frozen=True)
class Fetch:
    """A TaskInfo's `CommandInfo.URI`, to fetch into `directory` (in the bundle) as Mesos'
    fetcher would into the sandbox."""

    uri: dict = field(hash=False)
    directory: str


@dataclass(frozen=True)
class BundleFile:
    """A file of the bundle: `path` relative to the bundle directory, its bytes and mode."""

    path: str
    data: bytes
    mode: int


@dataclass(frozen=True)
class Daemon:
    """One daemon step as a systemd service."""

    step: str
    unit: str  # calico-node.service
    task: dict = field(repr=False, compare=False)


@dataclass
class Bundle:
    """What `calico-dcos units` writes: files, URIs to fetch, and what install.sh needs."""

    public: bool
    files: list[BundleFile]
    fetches: list[Fetch]
    daemons: list[Daemon]
    setup_steps: list[str]
    tasks: dict[str, dict]  # task name -> the TaskInfo it was rendered from
    detect: str | None = None  # the installer's `detect`, unless agents.override_existing_calico


def agent_view(public: bool) -> steps.AgentView:
    return steps.AgentView(MANUAL_AGENT_ID, NODENAME_FROM_HOST, public)


def task_infos(options: Mapping, public: bool) -> dict[str, dict]:
    """The framework's TaskInfo for each enabled step, as a manual agent of this kind gets it."""
    agent = agent_view(public)
    return {
        step.name: steps.build_task_info(
            step, options, agent, f"{step.task_name}__manual", MANUAL_ROLE, ARTIFACTS_URL
        )
        for step in steps.enabled_steps(options)
    }


CALICO_NOT_FOUND = "Calico not found"  # what `installer.pyz detect` prints (installer/cli.py)


def detect_command(options: Mapping) -> str | None:
    """The installer's `detect`, as the docker and cni steps run it before changing anything
    (installer/detect.py: DC/OS 2.x's own Calico units, a foreign `calico` CNI config); None
    when `agents.override_existing_calico` says to install on top, or no step would detect."""
    if options["agents"]["override_existing_calico"]:
        return None
    if not (options["docker"]["enable"] or options["cni"]["enable"]):
        return None
    argv = [options["service"]["agent_python"], "./installer.pyz", "detect"]
    argv += ["--config-dir", options["cni"]["config_dir"]]
    return " ".join(shlex.quote(arg) for arg in argv)


def revert_task(options: Mapping, public: bool) -> dict:
    return revert_task_info(
        options, agent_view(public), f"{REVERT_TASK}__manual", MANUAL_ROLE, ARTIFACTS_URL
    )


def render(options: Mapping, public: bool) -> Bundle:
    """Every file of the bundle but the fetched ones, and the URIs to fetch."""
    if public and not options["agents"]["include_public"]:
        raise UnitsError(
            "agents.include_public: false, so the framework leaves public agents alone and so "
            "does this command; set it to true to write units for public agents"
        )
    bundle = Bundle(public, [], [], [], [], {})
    bundle.detect = detect_command(options)
    tasks = task_infos(options, public)
    for name, task in tasks.items():
        step = steps.BY_NAME[name]
        check_task(task, step.section)
        bundle.tasks[task["name"]] = task
        if step.kind == "daemon":
            add_daemon(bundle, step, task, [d.unit for d in bundle.daemons])
        else:
            bundle.setup_steps.append(task["name"])
            add_sandbox(bundle, task, step.section, f"sandboxes/{task['name']}")
    revert = revert_task(options, public)
    check_task(revert, "service")
    bundle.tasks[REVERT_TASK] = revert
    add_sandbox(bundle, revert, "service", f"sandboxes/{REVERT_TASK}")
    bundle.files.append(BundleFile("setup.sh", setup_script(bundle).encode(), 0o700))
    return bundle


def check_task(task: Mapping, section: str) -> None:
    """Refuse a TaskInfo with a field the manual path would drop, so the paths cannot drift."""
    unknown = set(task) - TASK_KEYS - TASK_KEYS_NOT_CARRIED
    command = task.get("command", {})
    unknown |= {f"command.{k}" for k in set(command) - COMMAND_KEYS}
    for uri in command.get("uris", []):
        unknown |= {f"command.uris.{k}" for k in set(uri) - URI_KEYS}
    container = task.get("container")
    if container is not None:
        unknown |= {f"container.{k}" for k in set(container) - CONTAINER_KEYS}
        unknown |= {f"container.docker.{k}" for k in set(container["docker"]) - DOCKER_KEYS}
        for volume in container.get("volumes", []):
            unknown |= {f"container.volumes.{k}" for k in set(volume) - VOLUME_KEYS}
        if container["type"] != "DOCKER" or container["docker"].get("network") != "HOST":
            unknown.add("container (only DOCKER containers on the host network)")
        if command.get("value") and not command.get("shell", True):
            unknown.add("command (a container runs its image's entrypoint or `sh -c`)")
    if unknown:
        raise UnitsError(
            f"{section}: the {task['name']} TaskInfo has {', '.join(sorted(unknown))}, which "
            "calico_dcos/units.py cannot yet carry into a systemd unit; teach it (and its "
            "parity test) before using this option with `calico-dcos units`"
        )


def environment(task: Mapping) -> dict[str, str]:
    variables = task["command"].get("environment", {}).get("variables", [])
    return {v["name"]: v["value"] for v in variables if v["name"] != REPORT_URL_ENV}


def check_env_value(task: Mapping, section: str, name: str, value: str) -> None:
    if "\n" in value or "\r" in value or "\0" in value:
        raise UnitsError(
            f"{section}: environment variable {name} of {task['name']} holds a line break or "
            "NUL, which no environment file can carry; remove it from the option"
        )


def shell_env_file(task: Mapping, section: str) -> bytes:
    """`NAME='value'` lines for `set -a; . FILE`; every value shell-quoted."""
    lines = []
    for name, value in environment(task).items():
        check_env_value(task, section, name, value)
        lines.append(f"{name}={shlex.quote(value)}\n")
    return "".join(lines).encode()


def docker_env_file(env: Mapping[str, str], task: Mapping, section: str) -> bytes:
    """Docker's `--env-file` format: `NAME=value`, the value taken literally to the line's end
    (docs.docker.com, `docker run --env-file`), so no quoting is needed or allowed."""
    for name, value in env.items():
        check_env_value(task, section, name, value)
    return "".join(f"{name}={value}\n" for name, value in env.items()).encode()


def basename(uri: str) -> str:
    """The file name the Mesos fetcher gives a URI in the sandbox (as steps.py assumes)."""
    return urlsplit(uri).path.rstrip("/").rsplit("/", 1)[-1]


def add_fetches(bundle: Bundle, task: Mapping, section: str, directory: str) -> None:
    for uri in task["command"].get("uris", []):
        name = basename(uri["value"])
        if not name or name in (".", ".."):
            raise UnitsError(f"{section}: URI {uri['value']!r} names no file")
        bundle.fetches.append(Fetch(dict(uri), directory))


def add_sandbox(bundle: Bundle, task: Mapping, section: str, directory: str) -> None:
    """A one-shot task's sandbox in the bundle: its URIs fetched there, its env file beside."""
    add_fetches(bundle, task, section, directory)
    env = shell_env_file(task, section)
    bundle.files.append(BundleFile(f"{directory}.env", env, 0o600))


def sh_c(value: str) -> str:
    """The Mesos command executor's way of running a shell command: `sh -c <value>`."""
    return "/bin/sh -c " + shlex.quote(value)


HEADER = """#!/bin/sh
# {what}
# Generated by `calico-dcos units` from the framework's TaskInfo{s}; regenerate, do not edit.
"""

ROOT_LINES = f"""ROOT=${{{HOST_ROOT_ENV}:-/}}
ROOT=${{ROOT%/}}
"""


def run_task_lines(name: str, task: Mapping) -> str:
    """A subshell that runs a one-shot TaskInfo from its bundle sandbox, as Mesos would."""
    return (
        f"echo {shlex.quote(f'calico-dcos: {name}')} >&2\n"
        f'(cd "$HERE/sandboxes/{name}" && set -a && . "$HERE/sandboxes/{name}.env" && set +a '
        f"&& exec {sh_c(task['command']['value'])})\n"
    )


def setup_script(bundle: Bundle) -> str:
    """The one-shot steps in chain order; `set -e`: a failed step stops the ones after it."""
    body = "".join(run_task_lines(name, bundle.tasks[name]) for name in bundle.setup_steps)
    return (
        HEADER.format(what="The docker and cni steps: the installer's commands, once.", s="s")
        + "# Idempotent: a rerun finds nothing to do. Needs the bundle beside it.\n"
        + 'set -eu\nHERE=$(CDPATH="" cd -- "$(dirname -- "$0")" && pwd)\n'
        + (body or "echo 'calico-dcos: docker and cni steps disabled: nothing to do' >&2\n")
    )


def add_daemon(bundle: Bundle, step: steps.Step, task: dict, before: list[str]) -> None:
    """The unit, its script and its env file (host files under `root/`) and its fetches."""
    name = task["name"]
    unit = f"{name}.service"
    bundle.daemons.append(Daemon(step.name, unit, task))
    script = f"root{CONFIG_DIR}/{name}.sh"
    if "container" in task:
        env = environment(task)
        nodename = env.get("NODENAME") == NODENAME_FROM_HOST
        if nodename:
            del env["NODENAME"]
        env_file = f"{CONFIG_DIR}/{name}.env"
        bundle.files.append(
            BundleFile(f"root{env_file}", docker_env_file(env, task, step.section), 0o600)
        )
        text = container_script(task, env_file, nodename)
    else:
        sandbox = f"{SANDBOX_ROOT}/{name}"
        add_fetches(bundle, task, step.section, f"root{sandbox}")
        if environment(task):
            env_data = shell_env_file(task, step.section)
            bundle.files.append(BundleFile(f"root{CONFIG_DIR}/{name}.env", env_data, 0o600))
        text = command_script(task, sandbox, bool(environment(task)))
    bundle.files.append(BundleFile(script, text.encode(), 0o700))
    unit_text = unit_file(name, "container" in task, before, bundle.public, step.name)
    bundle.files.append(BundleFile(f"root{UNIT_DIR}/{unit}", unit_text.encode(), 0o644))


def command_script(task: Mapping, sandbox: str, has_env: bool) -> str:
    name = task["name"]
    env = f'set -a\n. "$ROOT{CONFIG_DIR}/{name}.env"\nset +a\n' if has_env else ""
    return (
        HEADER.format(what=f"{name}: the Mesos task {name} as a systemd service.", s="")
        + "set -eu\n"
        + ROOT_LINES
        + "# Mesos gives its tasks the agent's address; on DC/OS that is detect_ip's answer.\n"
        + f'LIBPROCESS_IP=$("$ROOT{DETECT_IP}")\nexport LIBPROCESS_IP\n'
        + env
        + f'cd "$ROOT{sandbox}"\n'
        + f"exec {sh_c(task['command']['value'])}\n"
    )


def docker_run_argv(task: Mapping, env_file: str) -> list[str]:
    """`docker run` for the TaskInfo's DOCKER container; env file path still to be rooted."""
    container = task["container"]
    argv = ["run", "--rm", f"--name={task['name']}", "--net=host"]
    if container["docker"].get("privileged"):
        argv.append("--privileged")
    for volume in container.get("volumes", []):
        suffix = ":ro" if volume.get("mode", "RW") == "RO" else ""
        argv += ["-v", f"{volume['host_path']}:{volume['container_path']}{suffix}"]
    return argv


def container_script(task: Mapping, env_file: str, nodename: bool) -> str:
    name = task["name"]
    argv = " ".join(shlex.quote(a) for a in docker_run_argv(task, env_file))
    lines = ""
    if nodename:
        lines = (
            "# The agent's Mesos hostname on DC/OS: detect_ip's answer.\n"
            f'NODENAME=$("$ROOT{DETECT_IP}")\n'
            '[ -n "$NODENAME" ] || { echo "detect_ip printed nothing" >&2; exit 1; }\n'
            "export NODENAME\n"
        )
    env_flags = f'--env-file="$ROOT{env_file}"' + (" -e NODENAME" if nodename else "")
    image = shlex.quote(task["container"]["docker"]["image"])
    command, tail = task.get("command", {}), ""
    if command.get("shell", True) and command.get("value"):
        # Mesos' Docker containerizer runs a shell command as `--entrypoint /bin/sh … -c
        # <value>` (apache/mesos src/docker/docker.cpp, MESOS-1770), and DC/OS gives the
        # container the agent's LIBPROCESS_IP, detect_ip's answer (steps.node_command).
        argv += " --entrypoint /bin/sh"
        env_flags += " -e LIBPROCESS_IP"
        lines += (
            f'LIBPROCESS_IP=$("$ROOT{DETECT_IP}")\n'
            '[ -n "$LIBPROCESS_IP" ] || { echo "detect_ip printed nothing" >&2; exit 1; }\n'
            "export LIBPROCESS_IP\n"
        )
        tail = " -c " + shlex.quote(command["value"])
    return (
        HEADER.format(what=f"{name}: the Mesos task {name} as a systemd service.", s="")
        + "set -eu\n"
        + ROOT_LINES
        + lines
        + f"exec docker {argv} {env_flags} {image}{tail}\n"
    )


def unit_file(name: str, container: bool, before: list[str], public: bool, step: str) -> str:
    """Ordered after Docker and the daemons before it in the chain, and before the Mesos agent.

    `Requires=docker.service` for a container (it dies with Docker, and systemd then restarts
    it with Docker, as Calico's docs have it), but only `Wants=` on the daemons before it: a
    `Requires=` would restart calico-node whenever the etcd proxy restarts, while on the
    framework path a changed proxy option re-runs the proxy step alone (systemd.unit(5):
    units that require a unit are restarted with it). `Before=` the agent, so that Calico is
    up before the agent places a task; the proxy also before Docker, whose cluster-store it
    may serve.
    """
    after = ["network-online.target"]
    requires = []
    wants = ["network-online.target", *before]
    ordered_before = [AGENT_UNITS[public]]
    if container:
        after.append("docker.service")
        requires.append("docker.service")
    else:
        ordered_before.insert(0, "docker.service")
    after += before
    service = [f"ExecStart={CONFIG_DIR}/{name}.sh"]
    if container:
        service.insert(0, f"ExecStartPre=-{DOCKER} rm -f {name}")
        service.append(f"ExecStop=-{DOCKER} stop {name}")
    lines = [
        "# Generated by `calico-dcos units` from the framework's TaskInfo; regenerate it.",
        "[Unit]",
        f"Description=Calico {step}: the calico-dcos task {name}, as a systemd service",
        f"Wants={' '.join(wants)}",
        f"After={' '.join(after)}",
        *([f"Requires={' '.join(requires)}"] if requires else []),
        f"Before={' '.join(ordered_before)}",
        "StartLimitIntervalSec=0",
        "",
        "[Service]",
        *service,
        "Restart=always",
        "RestartSec=5",
        "",
        "[Install]",
        f"WantedBy={WANTED_BY}",
        "",
    ]
    return "\n".join(lines)


# install.sh and uninstall.sh: written after the fetch, when every host file is known.

COMMON_SH = (
    r"""set -eu
umask 022
HERE=$(CDPATH="" cd -- "$(dirname -- "$0")" && pwd)
ROOT=${@ROOT_ENV@:-/}
ROOT=${ROOT%/}
STATE=$ROOT@STATE@
NL='
'

exists() { [ -e "$1" ] || [ -L "$1" ]; }

# Whether install.sh saved what was at HOST_PATH before it first wrote there.
recorded_path() { exists "$STATE/present$1" || exists "$STATE/absent$1"; }

# Every host path install.sh saved the original of, one per line.
recorded() {
  for kind in present absent; do
    [ -d "$STATE/$kind" ] || continue
    (cd "$STATE/$kind" && find . ! -type d | sed 's|^\.||')
  done | sort -u
}

# Put back what install.sh found at HOST_PATH (that file or link, or nothing); forget it.
restore() {
  if exists "$STATE/present$1"; then
    rm -f -- "$ROOT$1.calico-dcos-old"
    cp -P -p -- "$STATE/present$1" "$ROOT$1.calico-dcos-old"
    mv -f -- "$ROOT$1.calico-dcos-old" "$ROOT$1"
  else
    rm -f -- "$ROOT$1"
  fi
  rm -f -- "$STATE/present$1" "$STATE/absent$1"
}

# Stop and disable a unit only while its unit file is one install.sh wrote.
ours() { recorded_path "@UNIT_DIR@/$1.service" && [ -e "$ROOT@UNIT_DIR@/$1.service" ]; }
stop_unit() {
  ours "$1" || return 0
  systemctl stop "$1.service" || echo "calico-dcos: could not stop $1 (not loaded?)" >&2
}
disable_unit() {
  ours "$1" || return 0
  systemctl disable "$1.service"
}
""".replace("@ROOT_ENV@", HOST_ROOT_ENV)
    .replace("@STATE@", STATE_DIR)
    .replace("@UNIT_DIR@", UNIT_DIR)
)

INSTALL_FUNCTIONS = r"""CHANGED=" "

# Directories this script creates are listed in $STATE/created-dirs, for uninstall.sh.
boot_state() {
  [ -d "$ROOT$1" ] && return 0
  boot_state "$(dirname -- "$1")" 0755
  mkdir -m "$2" -- "$ROOT$1"
  BOOTED="$BOOTED$1$NL"
}

ensure_dir() {
  [ -d "$ROOT$1" ] && return 0
  ensure_dir "$(dirname -- "$1")" 0755
  mkdir -m "$2" -- "$ROOT$1"
  printf '%s\n' "$1" >> "$STATE/created-dirs"
}

# Save what is at HOST_PATH (a file, a link, or nothing) before this script first changes it.
save_original() {
  recorded_path "$1" && return 0
  if exists "$ROOT$1"; then
    mkdir -p -- "$(dirname -- "$STATE/present$1")"
    cp -P -p -- "$ROOT$1" "$STATE/present$1"
  else
    mkdir -p -- "$(dirname -- "$STATE/absent$1")"
    : > "$STATE/absent$1"
  fi
}

# place HOST_PATH MODE TASK: the bundle's root$HOST_PATH at $ROOT$HOST_PATH, atomically.
place() {
  save_original "$1"
  if [ -f "$ROOT$1" ] && [ ! -L "$ROOT$1" ] && cmp -s -- "$HERE/root$1" "$ROOT$1" \
      && [ "$(stat -c %a -- "$ROOT$1")" = "$2" ]; then
    return 0
  fi
  ensure_dir "$(dirname -- "$1")" 0755
  cp -- "$HERE/root$1" "$ROOT$1.calico-dcos-new"
  chmod "$2" -- "$ROOT$1.calico-dcos-new"
  mv -f -- "$ROOT$1.calico-dcos-new" "$ROOT$1"
  CHANGED="$CHANGED$3 "
}

wanted() { case "$NL$WANTED$NL" in *"$NL$1$NL"*) return 0 ;; esac; return 1; }

# What an earlier bundle installed and this one does not (a step since disabled, an etcd of
# another version): its units stopped and disabled, every file put back as it was found.
retire_stale() {
  recorded | while IFS= read -r path; do
    wanted "$path" && continue
    case "$path" in
      @UNIT_DIR@/*.service) unit=${path##*/}; unit=${unit%.service}
        stop_unit "$unit"; disable_unit "$unit" ;;
    esac
  done
  recorded | while IFS= read -r path; do
    wanted "$path" || restore "$path"
  done
}

# A running unit whose files changed is restarted; otherwise started (a no-op if active).
start_unit() {
  case "$CHANGED" in
    *" $1 "*) if systemctl is-active --quiet "$1.service"; then
        systemctl restart "$1.service"
        return 0
      fi ;;
  esac
  systemctl start "$1.service"
}
""".replace("@UNIT_DIR@", UNIT_DIR)


def owner_of(host_path: str) -> str:
    """The task a host file belongs to: its unit is restarted when the file changes."""
    for prefix in (f"{UNIT_DIR}/", f"{CONFIG_DIR}/", f"{SANDBOX_ROOT}/"):
        if host_path.startswith(prefix):
            rest = host_path[len(prefix) :]
            return rest.split("/", 1)[0] if "/" in rest else rest.rsplit(".", 1)[0]
    raise ValueError(f"not a host file of the bundle: {host_path}")


def enable_link(unit: str) -> str:
    """The symlink `systemctl enable` makes for `WantedBy=` (systemd.unit(5), [Install])."""
    return f"{UNIT_DIR}/{WANTED_BY}.wants/{unit}"


def detect_lines(command: str) -> list[str]:
    """Like the framework, which launches no step on an agent whose installer found Calico
    already there: change nothing, and say what was found."""
    return [
        "# Calico already here (DC/OS 2.x ships it)? Then change nothing, as the framework does.",
        f'FOUND=$(cd "$HERE/sandboxes/{REVERT_TASK}" && {command})',
        f'if [ "$FOUND" != {shlex.quote(CALICO_NOT_FOUND)} ]; then',
        "  echo 'calico-dcos: Calico is already present on this host, changing nothing "
        "(agents.override_existing_calico installs on top):' >&2",
        "  printf '%s\\n' \"$FOUND\" >&2",
        "  exit 0",
        "fi",
    ]


def install_script(bundle: Bundle, host_files: list[tuple[str, int]]) -> str:
    """Retire what an earlier bundle left, place the host files (saving what was there),
    daemon-reload, enable, and start in chain order with the one-shot steps between the etcd
    proxy and the Docker plugins."""
    agent = "public" if bundle.public else "private"
    links = [enable_link(d.unit) for d in bundle.daemons]
    wanted = "\n".join([path for path, _ in host_files] + links)
    placing = [f"place {shlex.quote(p)} {mode:o} {owner_of(p)}" for p, mode in host_files]
    units = " ".join(d.unit for d in bundle.daemons)
    proxies = [d for d in bundle.daemons if d.step == "etcd-proxy"]
    others = [d for d in bundle.daemons if d.step != "etcd-proxy"]
    dirs = [f"{UNIT_DIR} 0755", f"{UNIT_DIR}/{WANTED_BY}.wants 0755", f"{CONFIG_DIR} 0700"]
    if bundle.setup_steps:
        dirs.append(f"{INSTALLER_STATE_DIR} 0755")
    lines = [
        HEADER.format(what=f"Installs Calico as systemd services on a DC/OS {agent} agent.", s="s")
        + "# Run as root; safe to run again: an unchanged host is left as it is.\n"
        + f"# ${HOST_ROOT_ENV}: the directory that stands for / (default /), as for the installer.",
        COMMON_SH,
        INSTALL_FUNCTIONS,
        *(detect_lines(bundle.detect) if bundle.detect else []),
        f"WANTED={shlex.quote(wanted)}",
        "BOOTED=''",
        f"boot_state {STATE_DIR} 0700",
        'printf "%s" "$BOOTED" >> "$STATE/created-dirs"',
        *(f"ensure_dir {d}" for d in dirs),
        "retire_stale",
        *placing,
        *(f"save_original {link}" for link in links),
        "systemctl daemon-reload",
        *([f"systemctl enable {units}"] if units else []),
        *(f"start_unit {d.unit.removesuffix('.service')}" for d in proxies),
        'sh "$HERE/setup.sh"',
        *(f"start_unit {d.unit.removesuffix('.service')}" for d in others),
        f"echo 'calico-dcos: installed on this {agent} agent' >&2",
    ]
    return "\n".join(lines) + "\n"


def uninstall_script(bundle: Bundle, host_files: list[tuple[str, int]]) -> str:
    """Stop, revert the installer's Docker and CNI changes, disable, put back every file
    install.sh recorded (from any bundle), remove the directories it created. Without
    install.sh's state: nothing to do."""
    agent = "public" if bundle.public else "private"
    daemons = [s.task_name for s in steps.STEPS if s.kind == "daemon"]
    proxies = [d for d in daemons if d == "calico-etcd-proxy"]
    others = [d for d in daemons if d != "calico-etcd-proxy"]
    revert = run_task_lines(REVERT_TASK, bundle.tasks[REVERT_TASK]).rstrip("\n")
    lines = [
        HEADER.format(what=f"Removes what install.sh put on this DC/OS {agent} agent.", s="s")
        + "# Puts back every file as install.sh found it; safe to run again.",
        COMMON_SH,
        '[ -d "$STATE" ] || { echo "calico-dcos: not installed here: nothing to do" >&2; exit 0; }',
        *(f"stop_unit {u}" for u in reversed(others)),
        "# The installer's own revert, when it changed anything: daemon.json and the CNI files.",
        f'if [ -d "$ROOT{INSTALLER_STATE_DIR}" ]; then',
        revert,
        "fi",
        *(f"stop_unit {u}" for u in proxies),
        *(f"disable_unit {u}" for u in daemons),
        'recorded | while IFS= read -r path; do restore "$path"; done',
        "systemctl daemon-reload",
        'CREATED=$(cat "$STATE/created-dirs" 2>/dev/null || true)',
        'rm -rf -- "$STATE"',
        "# Newest first; a directory that holds anything not ours stays.",
        'printf "%s\\n" "$CREATED" | sed \'1!G;h;$!d\' | while IFS= read -r dir; do',
        '  [ -n "$dir" ] && [ -d "$ROOT$dir" ] || continue',
        '  find "$ROOT$dir" -depth -type d -empty -delete 2>/dev/null || true',
        "done",
        f"echo 'calico-dcos: removed from this {agent} agent' >&2",
    ]
    return "\n".join(lines) + "\n"
