"""The scheduler's watch on pymesos' driver (`CalicoScheduler._watch_driver`), with a real
driver subscribed to the devcluster: pymesos reads a driver whose IO thread died as
`aborted`, and also one made but not yet started (its `aborted` is "not started"), which the
ticker could see between `_start_driver`'s two steps (a refused subscription's new driver:
tests/integration/test_production_faults.py failed on it now and then)."""

from calico_dcos.driver import Driver
from calico_dcos.scheduler import framework_info
from tests.integration.harness import converged, running_cluster, scheduler_on, wait_until


def test_a_driver_not_yet_started_is_not_taken_for_one_whose_io_thread_died(tmp_path):
    with (
        running_cluster(agents=1, public_agents=0) as cluster,
        scheduler_on(cluster, tmp_path) as service,
    ):
        scheduler = service.scheduler
        wait_until(converged(service), 20, "convergence")
        started = scheduler.driver
        info = framework_info(scheduler.options, scheduler.plan.framework_id, "")
        fresh = Driver(scheduler, info, scheduler.master, use_addict=False)
        assert fresh.aborted  # what pymesos says of a driver not yet started

        scheduler.driver = fresh  # as between `_start_driver`'s two steps
        scheduler._watch_driver()
        assert scheduler.failure is None

        scheduler.driver = started
        started.stop(failover=True)  # its IO thread ends: `aborted`, as after a crash
        started.join()
        scheduler._watch_driver()
        assert scheduler.failure == "the pymesos driver stopped (its IO thread died)"
