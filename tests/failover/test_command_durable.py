"""An operator command's 200 is its proof: what it changed is stored before the reply.

The scheduler runs as a child process (tests/failover/scheduler_process.py) whose group
committer gathers for 5 s (TEST_GATHER_SECONDS; 10 ms in production), so that a reply sent
before the write would come seconds ahead of it. The test SIGKILLs the process the moment the
reply arrives, as a machine dying then would, and reads the store it leaves.
"""

from __future__ import annotations

import requests

from calico_dcos.core.deploy import META_KEY
from calico_dcos.store import open_store
from tests.failover.harness import SchedulerProcess, scheduler_env
from tests.helpers.devcluster import running_cluster, wait_until


def stored_meta(state_dir, key: str) -> dict | None:
    store = open_store(str(state_dir))
    try:
        return store.get_meta(key)
    finally:
        store.close()


def test_an_interrupt_answered_is_stored_before_the_scheduler_dies(tmp_path):
    with running_cluster(agents=1, public_agents=0) as cluster:
        env = scheduler_env(tmp_path, cluster.master_url)
        env["TEST_GATHER_SECONDS"] = "5"
        scheduler = SchedulerProcess(env, tmp_path / "scheduler.log")
        try:
            wait_until(scheduler.serving, 30, f"the scheduler's API; log {scheduler.log_path}")
            answer = requests.post(
                f"http://127.0.0.1:{scheduler.port}/v1/plan/interrupt", timeout=30
            )
            scheduler.kill()
        finally:
            scheduler.kill()

    assert answer.status_code == 200, answer.text
    assert stored_meta(tmp_path / "state", META_KEY) == {"interrupted": True}
