"""Settings for every test run."""

import os

# The devcluster's allocator checks its shortcuts (the DRF ledger, agents skipped as idle)
# against the full computation on every round (calico_dcos/devcluster/allocator.py).
os.environ.setdefault("CALICO_DEVCLUSTER_CHECKS", "1")
