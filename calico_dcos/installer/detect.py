"""Is Calico already on this host by other means? Then we must not install a second one.

DC/OS 2.x ships Calico itself as systemd units (`dcos-calico-felix`, `dcos-calico-bird`), and
an operator may have written a `calico` CNI network by hand. Either one means: change
nothing, say what was found, and tell the scheduler so that it shows the agent as "Calico
already present" rather than as installed by us.
"""

import json
import logging
import os
from pathlib import Path
from typing import List

from . import systemd
from .hostfs import HostRoot

LOG = logging.getLogger("calico-installer")
CALICO_UNITS = ("dcos-calico-felix", "dcos-calico-bird")
UNIT_FILE_DIRS = ("etc/systemd/system", "etc/systemd/system/dcos.target.wants")
CNI_CONFIG_SUFFIXES = (".conf", ".conflist", ".cni", ".json")
DEFAULT_CNI_CONFIG_DIR = "/opt/mesosphere/etc/dcos/network/cni/"
REPORT_URL_ENV = "CALICO_DCOS_REPORT_URL"
# This agent's report token (calico_dcos/report_auth.py): a variable name, not a secret.
REPORT_TOKEN_ENV = "CALICO_DCOS_REPORT_TOKEN"  # noqa: S105
REPORT_TIMEOUT_SECONDS = 5.0
# The scheduler refuses longer reports (calico_dcos/api.py, MAX_FOUND_ITEMS and _CHARS).
REPORT_MAX_FOUND = 16
REPORT_MAX_CHARS = 256


def find_calico(host: HostRoot, cni_config_dir: str) -> List[str]:
    """What shows that Calico runs here without us; empty when nothing does."""
    return active_units() + unit_files(host) + foreign_cni_configs(host, cni_config_dir)


def active_units() -> List[str]:
    states = systemd.unit_states(*CALICO_UNITS)
    active = [unit for i, unit in enumerate(CALICO_UNITS) if states[i] == "active"]
    return [f"unit {unit} is active" for unit in active]


def unit_files(host: HostRoot) -> List[str]:
    found = []
    for directory in UNIT_FILE_DIRS:
        for unit in CALICO_UNITS:
            path = host.path(directory) / (unit + ".service")
            if path.exists():
                found.append(f"unit file /{host.relative(path)}")
    return found


def foreign_cni_configs(host: HostRoot, cni_config_dir: str) -> List[str]:
    """`calico` CNI configs in the config dir that this installer did not write."""
    directory = host.path(cni_config_dir)
    if not directory.is_dir():
        return []
    found = []
    for path in sorted(directory.iterdir()):
        if path.suffix not in CNI_CONFIG_SUFFIXES or not path.is_file():
            continue
        if is_calico_config(path) and host.original("cni", path) is None:
            found.append(
                f"CNI config /{host.relative(path)} (type calico, not written by this installer)"
            )
    return found


def is_calico_config(path: Path) -> bool:
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(config, dict):
        return False
    plugins = config.get("plugins") if isinstance(config.get("plugins"), list) else [config]
    return any(isinstance(p, dict) and p.get("type") == "calico" for p in plugins)


def agent_id(environ: dict) -> str:
    """The agent's ID from Mesos' environment, or from our task ID `calico-<step>__<agent>__…`."""
    for name in ("MESOS_AGENT_ID", "MESOS_SLAVE_ID"):
        if environ.get(name):
            return environ[name]
    parts = environ.get("MESOS_TASK_ID", "").split("__")
    return parts[1] if len(parts) >= 2 else ""


def report_present(step: str, found: List[str], environ: dict = os.environ) -> None:
    """Best effort: tell the scheduler; a failure is only logged, the verdict stands.

    The scheduler accepts the report only with this agent's token, which it put in the
    task's environment; the token is sent, never logged."""
    url = environ.get(REPORT_URL_ENV)
    if not url:
        return
    import urllib.request  # only here: it costs more start-up time than the rest together

    found = [item[:REPORT_MAX_CHARS] for item in found[:REPORT_MAX_FOUND]]
    body = {"agent_id": agent_id(environ), "step": step, "calico_present": True, "found": found}
    headers = {"Content-Type": "application/json"}
    if environ.get(REPORT_TOKEN_ENV):
        headers["Authorization"] = "Bearer " + environ[REPORT_TOKEN_ENV]
    request = urllib.request.Request(  # noqa: S310 (the scheduler's own URL, from its TaskInfo)
        url, data=json.dumps(body).encode(), method="POST", headers=headers
    )
    try:
        with urllib.request.urlopen(request, timeout=REPORT_TIMEOUT_SECONDS):  # noqa: S310
            LOG.info("reported to %s that Calico is already present", url)
    except (OSError, ValueError) as exc:
        LOG.warning("could not report to %s: %s", url, exc)


def stop_if_present(host: HostRoot, step: str, cni_config_dir: str, force: bool) -> bool:
    """True when the command must change nothing because Calico is already here."""
    found = find_calico(host, cni_config_dir)
    if not found:
        return False
    if force:
        LOG.warning("Calico is already present (%s); --force: going ahead", "; ".join(found))
        return False
    LOG.warning(
        "Calico is already present on this host, changing nothing (--force overrides): %s",
        "; ".join(found),
    )
    report_present(step, found)
    return True
