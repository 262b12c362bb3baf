"""Host stand-ins: `systemctl`, `journalctl`, `docker` and `calico-node` for a simulated host.

They stand in for a real host because no systemd can run on a test machine, nor a Docker
engine per devcluster agent; a host can instead run a real dockerd (`realdocker.py`), and then
only systemd is stood in for. The executables in this directory are put first on every
process task's PATH; `hostsim` holds the simulated host they all act on.
"""

from pathlib import Path

STANDINS_DIR = Path(__file__).resolve().parent
