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

from . import report, systemd
from .hostfs import HostRoot
from .report import REPORT_TOKEN_ENV, REPORT_URL_ENV, agent_id  # noqa: F401 (detect's names)

LOG = logging.getLogger("calico-installer")
CALICO_UNITS = ("dcos-calico-felix", "dcos-calico-bird")
UNIT_FILE_DIRS = ("etc/systemd/system", "etc/systemd/system/dcos.target.wants")
CNI_CONFIG_SUFFIXES = (".conf", ".conflist", ".cni", ".json")
DEFAULT_CNI_CONFIG_DIR = "/opt/mesosphere/etc/dcos/network/cni/"
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


def report_present(step: str, found: List[str], environ: dict = os.environ) -> None:
    """Best effort: tell the scheduler; a failure is only logged, the verdict stands."""
    found = [item[:REPORT_MAX_CHARS] for item in found[:REPORT_MAX_FOUND]]
    body = {"step": step, "calico_present": True, "found": found}
    if report.post(body, environ):
        LOG.info("reported to the scheduler that Calico is already present")


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
