"""Test hook: end the process abruptly at a named point, as a crash or a restart would.

When `CALICO_INSTALLER_CRASH_AT` names a point that a command reaches, the process exits at
once with status 137 (as if SIGKILLed), without cleanup. Tests use it to prove that a rerun
after a crash between any two steps ends in the same state as one clean run. Unset in
production, where it does nothing.
"""

import os

CRASH_ENV = "CALICO_INSTALLER_CRASH_AT"


def reached(point: str) -> None:
    """Crash here if the test hook asks for this point."""
    if os.environ.get(CRASH_ENV) == point:
        os._exit(137)
