"""`installer.pyz <command> [options]`: the agent-side commands and their exit codes.

Exit codes: 0 done (including "nothing to do" and "Calico already present"), 1 failed
(running it again may help: Docker not stable in time), 2 bad usage, 3 failed because of the
host's own configuration (a daemon.json dockerd refuses, a dockerd flag in the way): running
it again changes nothing until the operator changes the host. On failure the last stderr
line is the one-line reason, `calico-installer: failed: …` (or `error: …` for bad usage),
and the same reason is reported to the scheduler (`report.failure`). Logs go to stderr and
say what was found, what was changed and why; stdout carries only answers (`ip`, `detect`).

`--host-root` defaults to $CALICO_INSTALLER_HOST_ROOT, else `/`: the devcluster sets the
variable for every task, so an installer run there can never touch this machine's own `/`.
"""

import argparse
import contextlib
import logging
import os
import sys
from typing import Callable, List, Optional

from . import cni, detect, docker, ip, profile, report, systemd
from .hostfs import HostRoot, InstallerError
from .restarts import Waits

LOG = logging.getLogger("calico-installer")
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_HOST = 3
HOST_ROOT_ENV = "CALICO_INSTALLER_HOST_ROOT"
# Values that may carry credentials (`https://user:password@host`) come from the task's
# environment, never from argv, which every user of the agent sees in `ps` (issue 13).
CLUSTER_STORE_ENV = "CALICO_DCOS_CLUSTER_STORE"
ETCD_ENDPOINTS_ENV = "ETCD_ENDPOINTS"
PROFILE_ETCD_ENV = "CALICO_DCOS_PROFILE_ETCD_ENDPOINTS"
redact = report.redact  # `scheme://user:password@host` -> `scheme://user:***@host`


class RedactingFormatter(logging.Formatter):
    """Log lines with passwords inside URLs replaced."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def from_environment(value, variable: str, option: str) -> str:
    """`value` if given on the command line, else the environment variable; one is needed."""
    found = value or os.environ.get(variable, "")
    if not found:
        raise cni.UsageError(f"give {option} or set ${variable}")
    return found


def seconds(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {text}")
    return value


def add_common(parser: argparse.ArgumentParser, restarts: bool) -> None:
    parser.add_argument(
        "--host-root",
        default=os.environ.get(HOST_ROOT_ENV, "/"),
        help=f"the directory that stands for / (default: ${HOST_ROOT_ENV}, else /)",
    )
    if restarts:
        parser.add_argument(
            "--stability-seconds",
            type=seconds,
            default=systemd.DEFAULT_STABILITY_SECONDS,
            help="how long a restarted unit must stay active to count as back",
        )
        parser.add_argument(
            "--timeout-seconds",
            type=seconds,
            default=systemd.DEFAULT_TIMEOUT_SECONDS,
            help="how long to wait at most for a restarted unit to be stable",
        )


def flag(help_text: str) -> dict:
    return {"action": "store_true", "help": help_text}


PUBLIC = ("--public", flag("restart dcos-mesos-slave-public instead of dcos-mesos-slave"))
CONFIG_DIR = ("--config-dir", {"default": detect.DEFAULT_CNI_CONFIG_DIR})

# command: (help, whether it restarts units, its own options)
COMMANDS = {
    "docker": ("set Docker's cluster-store and restart Docker", True, [
        ("--cluster-store", {"help": "e.g. etcd://10.0.0.1:2379 (default: $" + CLUSTER_STORE_ENV
                             + ", which keeps credentials out of argv)"}),
        ("--force", flag("replace another cluster-store; install even if Calico is present")),
    ]),
    "cni": ("install Calico's CNI plugins and restart the agent", True, [
        ("--plugins-dir", {"default": "/opt/mesosphere/active/cni/"}),
        CONFIG_DIR,
        ("--etcd-endpoints", {"help": "http://a:2379,http://b:2379 (default: $"
                              + ETCD_ENDPOINTS_ENV + ")"}),
        PUBLIC,
        ("--log-level", {"default": "info", "help": "the CNI plugin's log level"}),
        ("--config-name", {"default": "calico.cni"}),
        ("--network-name", {"default": "calico"}),
        ("--calico-bin", {"required": True, "help": "the fetched calico plugin"}),
        ("--calico-ipam-bin", {"required": True, "help": "the fetched calico-ipam"}),
        ("--calico-checksum", {"default": "", "help": "sha1:HEX or sha256:HEX of --calico-bin"}),
        ("--calico-ipam-checksum", {"default": "", "help": "the same, of --calico-ipam-bin"}),
        ("--restart-agent", flag("restart the agent after a change (Mesos < 1.2 needs it)")),
        ("--default-profile", {"choices": ["allow-all", "plugin-default"],
                               "default": "plugin-default",
                               "help": "allow-all: create the network's profile allowing all"}),
        ("--etcd-api", {"choices": ["v2", "v3"], "default": "v3",
                        "help": "the API Calico's etcd speaks (for --default-profile)"}),
        ("--force", flag("install even if Calico is present")),
    ]),
    "ip": ("print the address this host uses to reach a peer", False, [
        ("--can-reach", {"required": True, "help": "HOST:PORT[,HOST:PORT…]"}),
        ("--timeout-seconds", {"type": seconds, "default": ip.DEFAULT_TIMEOUT_SECONDS}),
    ]),
    "uninstall": ("put back what this installer changed", True, [
        ("--docker", flag("only Docker's daemon.json")),
        ("--cni", flag("only the CNI plugins and config")),
        PUBLIC,
    ]),
    "detect": ("say whether Calico already runs here", False, [CONFIG_DIR]),
}  # fmt: skip


def build_parser(prog: str = "installer.pyz") -> argparse.ArgumentParser:
    """The installer's arguments; `prog` is how usage and --help name the program (the zipapp,
    or `calico-dcos installer` when run from the package)."""
    # The commands are listed in the description, one a line: argparse's own list of a
    # subparsers action measures its names two columns short of where it prints them, so
    # the longest ("uninstall") got its description on a line of its own, which read as none
    # (CPython Lib/argparse.py `HelpFormatter.add_argument`, `_iter_indented_subactions`).
    # A parser added without `help` is left out of that list (`_SubParsersAction.add_parser`).
    width = max(len(name) for name in COMMANDS) + 2
    listed = "".join(
        f"\n  {name:<{width}}{help_text}" for name, (help_text, _, _) in COMMANDS.items()
    )
    parser = argparse.ArgumentParser(
        prog=prog,
        description=f"calico-dcos agent-side installer\n\ncommands:{listed}",
        epilog=f"Every command acts on --host-root, which defaults to ${HOST_ROOT_ENV} else /.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(
        dest="command", metavar="COMMAND", help="one of the commands above (COMMAND --help: more)"
    )
    commands.required = True
    for name, (help_text, restarts, options) in COMMANDS.items():
        command = commands.add_parser(name, description=help_text)
        add_common(command, restarts)
        for option, settings in options:
            command.add_argument(option, **settings)
    return parser


def run_docker(host: HostRoot, args: argparse.Namespace) -> int:
    waits = Waits(args.stability_seconds, args.timeout_seconds)
    store = from_environment(args.cluster_store, CLUSTER_STORE_ENV, "--cluster-store")
    return docker.install(host, store, waits, args.force)


def run_cni(host: HostRoot, args: argparse.Namespace) -> int:
    endpoints = from_environment(args.etcd_endpoints, ETCD_ENDPOINTS_ENV, "--etcd-endpoints")
    network = cni.Network(args.network_name, endpoints, args.log_level)
    binaries = {"calico": args.calico_bin, "calico-ipam": args.calico_ipam_bin}
    checksums = {"calico": args.calico_checksum, "calico-ipam": args.calico_ipam_checksum}
    files = cni.wanted_files(
        host, args.plugins_dir, args.config_dir, args.config_name, binaries, network, checksums
    )
    waits = Waits(args.stability_seconds, args.timeout_seconds)
    return cni.install(
        host,
        files,
        cni.AGENT_UNITS[args.public],
        waits,
        args.force,
        args.config_dir,
        restart_agent=args.restart_agent,
        after=default_profile(args, endpoints),
    )


def default_profile(args: argparse.Namespace, endpoints: str) -> Optional[Callable[[], None]]:
    """What creates the network's allow-all profile, or None (`plugin-default`).

    etcd v3 goes to $CALICO_DCOS_PROFILE_ETCD_ENDPOINTS (the cluster: grpc-proxy serves no
    JSON gateway), else to the endpoints Calico uses.
    """
    if args.default_profile != "allow-all":
        return None
    targets = os.environ.get(PROFILE_ETCD_ENV) or endpoints
    urls = [e.strip() for e in targets.split(",") if e.strip()]
    return lambda: profile.ensure_allow_all(urls, args.etcd_api, args.network_name)


def run_ip(host: HostRoot, args: argparse.Namespace) -> int:
    try:
        targets = [ip.parse_target(t) for t in args.can_reach.split(",") if t.strip()]
    except ValueError as exc:
        raise cni.UsageError(f"--can-reach: {exc}") from exc
    print(ip.source_address(targets, args.timeout_seconds))
    return 0


def run_uninstall(host: HostRoot, args: argparse.Namespace) -> int:
    waits = Waits(args.stability_seconds, args.timeout_seconds)
    both = not (args.docker or args.cni)
    if args.docker or both:
        docker.uninstall(host, waits)
    if args.cni or both:
        cni.uninstall(host, cni.AGENT_UNITS[args.public], waits)
    return 0


def run_detect(host: HostRoot, args: argparse.Namespace) -> int:
    found = detect.find_calico(host, args.config_dir)
    print("\n".join(found) if found else "Calico not found")
    return 0


RUNNERS = {
    "docker": run_docker,
    "cni": run_cni,
    "ip": run_ip,
    "uninstall": run_uninstall,
    "detect": run_detect,
}


@contextlib.contextmanager
def logging_to_stderr(command: str):
    """Our log lines on stderr while a command runs; the root logger is left alone, so that
    `calico-dcos installer` run inside another program changes nothing of its logging."""
    handler = logging.StreamHandler(sys.stderr)
    prefix = f"calico-installer {command}: "
    handler.setFormatter(RedactingFormatter(prefix + "%(levelname)s %(message)s"))
    LOG.addHandler(handler)
    LOG.setLevel(logging.INFO)
    LOG.propagate = False
    try:
        yield
    finally:
        LOG.removeHandler(handler)


def main(argv: Optional[List[str]] = None, prog: str = "installer.pyz") -> int:
    """Run one command; returns the exit code instead of exiting, for `calico-dcos installer`."""
    parser = build_parser(prog)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    host = HostRoot(args.host_root)
    if not host.root.is_dir():
        print(f"calico-installer: error: no directory {host.root} (--host-root)", file=sys.stderr)
        return EXIT_USAGE
    with logging_to_stderr(args.command):
        return run(host, args)


def run(host: HostRoot, args: argparse.Namespace) -> int:
    try:
        return RUNNERS[args.command](host, args)
    except cni.UsageError as exc:
        return fail(args.command, "error", str(exc), EXIT_USAGE)
    except InstallerError as exc:
        return fail(args.command, "failed", str(exc), EXIT_HOST if exc.host_caused else EXIT_FAILED)
    except OSError as exc:  # e.g. a read-only or full file system: say it on one line too
        return fail(args.command, "failed", str(exc), EXIT_FAILED)


def fail(command: str, kind: str, reason: str, code: int) -> int:
    """Report the reason to the scheduler, then print it as stderr's last line; the code.

    One line, and without the passwords of URLs, in the report as on stderr."""
    reason = redact(report.one_line(reason))
    report.failure(command, reason, code, host_caused=code == EXIT_HOST)
    print(f"calico-installer: {kind}: {reason}", file=sys.stderr)
    return code
