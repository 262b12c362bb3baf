"""The stability settings every restarting command shares."""

from typing import NamedTuple, Optional

from . import systemd


class Waits(NamedTuple):
    """How long a restarted unit must stay active, and how long we wait for that at most."""

    stability: float = systemd.DEFAULT_STABILITY_SECONDS
    timeout: float = systemd.DEFAULT_TIMEOUT_SECONDS

    def restart(self, unit: str) -> Optional[str]:
        """reset-failed, restart, wait until stable: None when back, else why not."""
        if not systemd.restart(unit):
            return f"systemctl restart {unit} failed"
        return self.wait(unit)

    def wait(self, unit: str) -> Optional[str]:
        return systemd.wait_stable(unit, self.stability, self.timeout)
