"""Host stand-ins: `systemctl`, `docker` and `calico-node` for a simulated host root.

They stand in for a real host because no systemd or Docker engine can run on a test machine.
The executables in this directory are put first on every process task's PATH; `hostsim`
holds the simulated host they all act on.
"""

from pathlib import Path

STANDINS_DIR = Path(__file__).resolve().parent
