"""Run as a child process: `calico-dcos run` with the test timings, so a test can SIGKILL it.

The options come from CALICO_* variables as for `calico-dcos run`; only the plan's timings
(refuse and revive intervals, reconciliation backoff) are shortened, because the command
line has no flag for them. The API port is printed first so the test can ask for the plan.
"""

import logging
import os
import sys

from calico_dcos.commands.run import load_or_exit
from calico_dcos.service import start_service, wait_for_signal

TIMINGS = {
    "wait_refuse_seconds": 0.5,
    "revive_interval_seconds": 0.2,
    "reconcile_backoff_seconds": 0.5,
}

logging.basicConfig(
    level=logging.INFO, format=f"%(asctime)s [{os.getpid()}] %(levelname)s %(name)s: %(message)s"
)


def exit_after_group(number: int):
    """TEST_EXIT_AFTER_GROUP=N: die (as SIGKILL would: no clean-up) right after the first
    group of store writes from the N-th on that holds a status update's effect is durable,
    before its calls and acknowledgements are sent."""

    def after_commit(group: int, batches: list) -> None:
        if group >= number and any(batch.cause == "update" and batch.writes for batch in batches):
            os._exit(137)

    return after_commit


crash_at = os.environ.get("TEST_EXIT_AFTER_GROUP")
service = start_service(
    load_or_exit(None),
    host="127.0.0.1",
    port=0,
    timings=TIMINGS,
    tick_seconds=0.1,
    heartbeat_timeout=float(os.environ.get("TEST_HEARTBEAT_TIMEOUT", "75")),
    after_group_commit=exit_after_group(int(crash_at)) if crash_at else None,
)
# TEST_GATHER_SECONDS: the group committer gathers this long (pipeline.GATHER_SECONDS is
# 10 ms), so that a reply given before its write is stored comes seconds before the write.
if os.environ.get("TEST_GATHER_SECONDS"):
    service.scheduler.pipeline.gather = float(os.environ["TEST_GATHER_SECONDS"])
print(service.api.port, flush=True)
sys.exit(wait_for_signal(service))
