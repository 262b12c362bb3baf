"""The uninstall core without any server: kill, revert within the budget, tear down, wipe."""

from calico_dcos import plan as p
from calico_dcos import uninstall as u
from calico_dcos.options import load_options

FAST = {"wait_refuse_seconds": 1.0, "revive_interval_seconds": 1.0, "reconcile_backoff_seconds": 1}
DAEMONS = ("etcd-proxy", "libnetwork", "node")


def options(**env: str):
    return load_options(None, {f"CALICO_{k.upper()}": v for k, v in env.items()})


def converged_records(agents: int = 3, public: int = 1) -> dict[str, dict]:
    """What a finished rollout leaves in the store: daemons RUNNING, one-shots FINISHED."""
    records = {}
    for i in range(agents):
        aid = f"S{i}"
        steps = {}
        for step in ("etcd-proxy", "docker", "cni", "libnetwork", "node"):
            state = "TASK_RUNNING" if step in DAEMONS else "TASK_FINISHED"
            task_id = p.task_id_for(step, aid, "f" * 64, 1)
            steps[step] = {"task_id": task_id, "state": state, "attempts": 1, "fingerprint": "f"}
        hostname = f"agent-{i}" if i < agents - public else f"public-agent-{i}"
        public_agent = i >= agents - public
        records[aid] = {"agent_id": aid, "hostname": hostname, "public": public_agent} | {
            "steps": steps
        }
    return records


def offer(offer_id: str, agent_id: str, role: str = "*") -> dict:
    resources = [
        {"name": n, "type": "SCALAR", "scalar": {"value": v}, "allocation_info": {"role": role}}
        for n, v in (("cpus", 4.0), ("mem", 4096.0))
    ]
    return {
        "id": {"value": offer_id},
        "agent_id": {"value": agent_id},
        "hostname": agent_id,
        "allocation_info": {"role": role},
        "resources": resources,
    }


def status(task_id: str, state: str, agent_id: str = "", **extra) -> dict:
    return {"task_id": {"value": task_id}, "state": state, "agent_id": {"value": agent_id}} | extra


class Sim:
    """Feeds the core and keeps what it decided; the clock moves only when told."""

    def __init__(self, revert_hosts=False, records=None, progress=None, **env):
        self.options = options(**env)
        self.records = converged_records() if records is None else records
        self.core = u.uninstall_from_options(
            self.options, "http://scheduler:8080", revert_hosts, self.records, "fw-1",
            progress, **FAST,
        )  # fmt: skip
        self.now = 1000.0
        self.decisions: list = []
        self._offers = 0

    def feed(self, decisions: list) -> list:
        self.decisions += decisions
        return decisions

    def subscribe(self) -> list:
        return self.feed(self.core.on_subscribed("fw-1", self.now))

    def tick(self, seconds: float = 1.0) -> list:
        self.now += seconds
        return self.feed(self.core.on_tick(self.now))

    def update(self, task_id: str, state: str, agent_id: str = "", **extra) -> list:
        return self.feed(self.core.on_status(status(task_id, state, agent_id, **extra), self.now))

    def offer(self, *agent_ids: str) -> list:
        offers = []
        for aid in agent_ids:
            self._offers += 1
            role = "slave_public" if self.records.get(aid, {}).get("public") else "*"
            offers.append(offer(f"o{self._offers}", aid, role))
        return self.feed(self.core.on_offers(offers, self.now))

    def kill_everything(self) -> None:
        """Answer every kill the core sent with TASK_KILLED, then let it settle."""
        for kill in [d for d in self.decisions if isinstance(d, p.Kill)]:
            self.update(kill.task_id, "TASK_KILLED", kill.agent_id)
        self.tick(3.0)

    def launches(self) -> list[p.Launch]:
        return [d for d in self.decisions if isinstance(d, p.Launch)]

    def of(self, kind) -> list:
        return [d for d in self.decisions if isinstance(d, kind)]


def live_daemons(records: dict) -> set[str]:
    return {
        doc["task_id"]
        for rec in records.values()
        for doc in rec["steps"].values()
        if doc["state"] == "TASK_RUNNING"
    }


def test_every_live_task_is_killed_after_an_implicit_reconciliation():
    sim = Sim()
    decisions = sim.subscribe()

    assert decisions[0] == p.Reconcile(())
    assert {d.task_id for d in sim.of(p.Kill)} == live_daemons(sim.records)


def test_teardown_then_wipe_only_once_every_task_has_ended():
    sim = Sim()
    sim.subscribe()
    kills = sim.of(p.Kill)
    for kill in kills[1:]:
        sim.update(kill.task_id, "TASK_KILLED", kill.agent_id)

    again = sim.tick(3.0)
    assert p.Kill(kills[0].task_id, kills[0].agent_id) in again
    assert p.Reconcile(((kills[0].task_id, kills[0].agent_id),)) in again
    assert not sim.of(u.Teardown)

    final = sim.update(kills[0].task_id, "TASK_KILLED", kills[0].agent_id)
    ends = [d for d in final if isinstance(d, u.Teardown | u.WipeState)]
    assert ends == [u.Teardown(), u.WipeState()]
    assert sim.core.complete


def test_a_task_of_the_framework_not_in_the_records_is_killed_too():
    sim = Sim(records={})
    sim.subscribe()

    decisions = sim.update("calico-node__S9__abcdef12__3", "TASK_RUNNING", "S9")

    assert decisions[0] == p.Kill("calico-node__S9__abcdef12__3", "S9")
    sim.tick(3.0)
    assert not sim.core.complete


def test_without_revert_hosts_no_task_is_launched():
    sim = Sim()
    sim.subscribe()
    sim.kill_everything()

    declined = sim.offer("S0", "S1")

    assert not sim.launches()
    assert declined == [p.Decline(("o1", "o2"), 3600.0)]


def test_revert_hosts_runs_the_installer_uninstall_within_the_restart_budget():
    sim = Sim(revert_hosts=True)
    sim.subscribe()
    assert sim.offer("S0", "S1", "S2") and not sim.launches()  # tasks still being killed
    sim.kill_everything()

    sim.offer("S0", "S1", "S2")

    [launch] = sim.launches()
    command = launch.task_info["command"]["value"]
    assert "./installer.pyz uninstall --docker --cni --stability-seconds" in command
    assert launch.task_info["command"]["uris"][0]["value"].endswith("/v1/artifacts/installer.pyz")
    assert sim.core.summary(sim.now)["restarting"] == [launch.agent_id]

    sim.update(launch.task_info["task_id"]["value"], "TASK_FINISHED", launch.agent_id)
    sim.offer("S0", "S1", "S2")
    assert len(sim.launches()) == 2


def test_a_public_agent_is_reverted_with_its_own_agent_unit():
    sim = Sim(revert_hosts=True)
    sim.subscribe()
    sim.kill_everything()

    sim.offer("S2")

    assert sim.launches()[0].task_info["command"]["value"].endswith(" --public")


def test_hosts_never_touched_or_running_calico_already_are_not_reverted():
    records = converged_records(3, 0)
    records["S1"]["calico_present"] = {"found": ["dcos-calico-felix"]}
    for step in ("docker", "cni"):
        records["S2"]["steps"][step]["attempts"] = 0
    sim = Sim(revert_hosts=True, records=records)

    assert set(sim.core.progress.reverts) == {"S0"}


def test_a_revert_cut_off_by_its_agent_restart_is_relaunched_without_counting_a_failure():
    sim = Sim(revert_hosts=True, records=converged_records(1, 0))
    sim.subscribe()
    sim.kill_everything()
    sim.offer("S0")
    first = sim.launches()[0].task_info["task_id"]["value"]

    sim.update(first, "TASK_GONE", "S0", reason="REASON_AGENT_RESTARTED")
    sim.offer("S0")

    second = sim.launches()[1].task_info["task_id"]["value"]
    assert second.endswith("__2") and sim.core.progress.reverts["S0"].failures == 0


def test_a_failing_revert_backs_off_and_reads_degraded_after_three_failures():
    sim = Sim(revert_hosts=True, records=converged_records(1, 0))
    sim.subscribe()
    sim.kill_everything()
    for attempt in range(3):
        sim.offer("S0")
        task_id = sim.launches()[attempt].task_info["task_id"]["value"]
        sim.update(task_id, "TASK_FAILED", "S0", message="docker would not start")
        assert not any(isinstance(d, p.Launch) for d in sim.offer("S0"))  # backing off
        sim.now += 60

    summary = sim.core.summary(sim.now)
    assert summary["degraded"]
    assert summary["problems"] == ["agent-0: revert-host failed 3 times: docker would not start"]


def test_restart_of_a_failed_revert_relaunches_it_at_once():
    sim = Sim(revert_hosts=True, records=converged_records(1, 0))
    sim.subscribe()
    sim.kill_everything()
    sim.offer("S0")
    first = sim.launches()[0].task_info["task_id"]["value"]
    sim.update(first, "TASK_FAILED", "S0", message="docker would not start")

    sim.feed(sim.core.restart("S0", u.REVERT, sim.now))
    sim.offer("S0")

    assert [launch.task_info["task_id"]["value"][-3:] for launch in sim.launches()] == [
        "__1",
        "__2",
    ]


def test_force_complete_counts_a_host_as_reverted_and_the_uninstall_ends():
    sim = Sim(revert_hosts=True, records=converged_records(1, 0))
    sim.subscribe()
    sim.kill_everything()

    decisions = sim.feed(sim.core.force_complete("S0", u.REVERT, sim.now))

    assert [d for d in decisions if isinstance(d, u.Teardown | u.WipeState)] == [
        u.Teardown(),
        u.WipeState(),
    ]


def test_a_restarted_uninstall_goes_on_the_way_it_began():
    sim = Sim(revert_hosts=True)
    sim.subscribe()
    sim.kill_everything()
    sim.offer("S0")
    stored = sim.of(u.SaveMeta)[-1]
    assert stored.key == "uninstall"

    again = Sim(revert_hosts=False, progress=stored.value)

    assert again.core.uconfig.revert_hosts
    assert again.core.progress.stage == u.REVERT
    assert (
        again.core.progress.reverts["S0"].task_id == sim.launches()[0].task_info["task_id"]["value"]
    )


def test_framework_removed_after_the_teardown_only_wipes():
    sim = Sim(progress={"revert_hosts": False, "stage": u.TEARDOWN, "reverts": {}})

    decisions = sim.core.on_framework_removed()

    assert decisions == [p.SaveFrameworkId(None), u.WipeState()]
    assert sim.core.complete


def test_plan_view_shows_the_uninstall_per_agent_then_the_deregistration():
    sim = Sim(revert_hosts=True)
    sim.subscribe()

    view = sim.core.plan_view(sim.now)

    names = [phase["name"] for phase in view["phases"]]
    assert names == ["agent-0", "agent-1", "public-agent-2", "deregister-service"]
    first = view["phases"][0]
    assert [s["name"] for s in first["steps"]] == ["kill-tasks", "revert-host"]
    assert first["steps"][0]["status"] == "STARTING"
    assert first["steps"][0]["message"].startswith("killing calico-")
    assert first["steps"][1]["status"] == "PENDING"
    assert view["status"] == "IN_PROGRESS"
    assert sim.core.summary(sim.now)["message"] == (
        "Uninstalling: 0 of 9 tasks killed; 0 of 3 hosts reverted"
    )


def test_interrupt_holds_the_reverts_until_continued():
    sim = Sim(revert_hosts=True, records=converged_records(1, 0))
    sim.subscribe()
    sim.kill_everything()
    sim.feed(sim.core.interrupt(None, sim.now))

    sim.offer("S0")
    assert not sim.launches()

    sim.feed(sim.core.proceed(None, sim.now))
    sim.offer("S0")
    assert len(sim.launches()) == 1
