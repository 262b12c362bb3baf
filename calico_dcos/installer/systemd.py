"""Restarting a systemd unit the way DC/OS does, and waiting until it holds.

`reset-failed` comes first: a unit that hit systemd's start limit ("start request repeated
too quickly") otherwise refuses to start at all (dcos/dcos PR #7668). A unit counts as back
only when `is-active` has said `active` for a whole stability period, because a daemon that
dies a second after starting is not back.
"""

import logging
import subprocess
import time
from typing import List, Optional

LOG = logging.getLogger("calico-installer")
DEFAULT_STABILITY_SECONDS = 30.0
DEFAULT_TIMEOUT_SECONDS = 300.0


def systemctl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["systemctl", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        universal_newlines=True,
    )


def unit_states(*units: str) -> List[str]:
    """What `systemctl is-active` says of each unit: active, activating, failed, inactive, …"""
    lines = systemctl("is-active", *units).stdout.split()
    return lines if len(lines) == len(units) else ["unknown"] * len(units)


def unit_state(unit: str) -> str:
    return unit_states(unit)[0]


def restart(unit: str) -> bool:
    """reset-failed, then restart; False (with systemd's words logged) if the job failed."""
    reset = systemctl("reset-failed", unit)
    if reset.returncode != 0:
        LOG.info("systemctl reset-failed %s: %s", unit, reset.stderr.strip() or reset.returncode)
    LOG.info("restarting %s", unit)
    result = systemctl("restart", unit)
    if result.returncode != 0:
        LOG.error("systemctl restart %s failed: %s", unit, result.stderr.strip())
        return False
    return True


def wait_stable(unit: str, stability: float, timeout: float) -> Optional[str]:
    """Wait until `unit` has been active for `stability` seconds; None then, else why not.

    A `failed` unit stops the wait at once: systemd reports `activating` while it retries on
    its own, so `failed` means it has given up.
    """
    deadline = time.monotonic() + timeout
    poll = max(0.05, min(1.0, stability / 5))
    active_since = None
    while True:
        asked = time.monotonic()
        state = unit_state(unit)
        now = time.monotonic()
        if state == "failed":
            return f"{unit} failed to start"
        if state != "active":
            active_since = None
        elif active_since is None and stability > 0:
            active_since = now
        elif active_since is None or asked - active_since >= stability:
            # Counted from the end of the first `active` answer to the start of this one, so
            # the unit was surely active for the whole period, however long `is-active` took.
            LOG.info("%s has been active for %.1f s", unit, asked - (active_since or asked))
            return None
        if now >= deadline:
            return f"{unit} not stable within {timeout:.0f} s (last state: {state})"
        time.sleep(poll)
