"""calico_dcos.driver.Driver (pymesos' driver, made fit for a real master) against the
devcluster over sockets: agent IDs in reconciliation, refusals as CallRefused, and a bounded
reconnection loop while a new master answers 503."""

from __future__ import annotations

import json

import pymesos.process
import pytest
from pymesos import MesosSchedulerDriver

from calico_dcos.driver import EVENT_RECV_BYTES, CallRefused, Driver, read_events_faster
from tests.helpers.devcluster import Framework, framework_info, running_cluster, wait_until

PARTITION_AWARE = framework_info(capabilities=[{"type": "MULTI_ROLE"}, {"type": "PARTITION_AWARE"}])


class DriverFramework(Framework):
    """The test framework of tests/helpers/devcluster.py on calico_dcos' Driver."""

    def start(self, master: str | None = None) -> Framework:
        self.driver = Driver(self, self.info, master or self.cluster.master_url,
                             **self.driver_kwargs)  # fmt: skip
        before = self.registrations
        self.driver.start()
        wait_until(lambda: self.registrations > before, what="SUBSCRIBED")
        return self


def test_explicit_reconciliation_carries_the_agent_id(cluster):
    """With the agent ID the master answers TASK_GONE ("unknown to the agent"); pymesos'
    own call would have dropped it and got TASK_UNKNOWN."""
    with DriverFramework(cluster, PARTITION_AWARE) as fw:
        agent_id = cluster.agents[0].agent_id
        fw.driver.reconcileTasks([{"task_id": {"value": "ghost"}, "agent_id": {"value": agent_id}}])
        gone = fw.wait_for_state("ghost", "TASK_GONE")
    assert gone["agent_id"] == {"value": agent_id}


def test_a_refused_call_raises_call_refused_with_the_master_s_reason(cluster):
    with DriverFramework(cluster) as fw:
        offer = fw.offer_from(cluster.agents[0].agent_id)
        bad = {"name": 3, "task_id": {"value": "t"}, "agent_id": offer["agent_id"]}
        with pytest.raises(CallRefused) as refused:
            fw.driver.launchTasks([offer["id"]], [bad])
    assert refused.value.status == 400
    assert refused.value.reason == (
        "Failed to convert JSON into Call protobuf: Not expecting a JSON number for field 'name'"
    )


def refusals_503(cluster) -> int:
    return sum(1 for e in cluster.timeline() if e["event"] == "refused" and e["status"] == 503)


@pytest.mark.parametrize("driver_class", [Driver, MesosSchedulerDriver])
def test_reconnecting_to_a_recovering_master_is_bounded(driver_class):
    """A new leader answers 503 for 2 s. Driver waits 0.1 s, 0.2 s, 0.4 s, ... between
    attempts (a handful in 2 s); pymesos' own driver tries again at once (hundreds)."""

    class Subject(Framework):
        def start(self, master: str | None = None) -> Framework:
            self.driver = driver_class(self, self.info, self.cluster.master_url)
            self.driver.start()
            wait_until(lambda: self.registrations > 0, what="SUBSCRIBED")
            return self

    with (
        running_cluster(master_recovery_seconds=2.0, agent_reregister_window=0.1) as cluster,
        Subject(cluster) as fw,
    ):
        cluster.failover_master()
        wait_until(lambda: fw.registrations >= 2, timeout=15, what="re-subscription")
        attempts = refusals_503(cluster)
    if driver_class is Driver:
        assert 1 <= attempts <= 8
    else:
        assert attempts > 50, "pymesos' loop is unbounded: the reason for Driver"


def test_events_decode_to_what_the_standard_library_gives():
    """pymesos decodes each event with `pymesos.process.json.loads`; the driver's is orjson's
    with the standard library's behind it, so no event decodes differently (integers up to
    64 bits, as Mesos' int64/uint64 fields, are exact)."""
    read_events_faster()
    loads = pymesos.process.json.loads
    offer = {"id": {"value": "O-1"}, "resources": [{"name": "cpus", "scalar": {"value": 0.1}}],
             "hostname": "agent-ü", "unavailability": None, "uint64": 2**64 - 1,
             "int64": -(2**63)}  # fmt: skip
    text = json.dumps({"type": "OFFERS", "offers": {"offers": [offer]}})
    assert loads(text) == json.loads(text)
    for refused_by_orjson in ('{"value": NaN}', '{"message": "\\ud800"}'):
        assert repr(loads(refused_by_orjson)) == repr(json.loads(refused_by_orjson))
    with pytest.raises(json.JSONDecodeError):
        loads('{"type": ')
    assert pymesos.process.PIPE_BUF == EVENT_RECV_BYTES
