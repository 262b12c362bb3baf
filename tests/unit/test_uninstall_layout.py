"""Where the uninstall stores its progress: each host's revert in its agent's record, the stage
in a meta document of a few dozen bytes, so no stored document grows with the cluster.

The previous layout (one `uninstall` meta document listing every host's revert, ~425 bytes
each) broke ZooKeeper's 1 MB znode limit above ~2,350 hosts; a state it wrote is still read
and migrated. Pure core and in-memory records: no server.
"""

from calico_dcos.core import events as ev
from calico_dcos.core import uninstall as un
from calico_dcos.core.records import step_record
from calico_dcos.store import MAX_META_BYTES, MAX_RECORD_BYTES, encode_document
from tests.helpers.plan_sim import Sim, converged_records


def stored_meta(sim: Sim, before: dict | None = None) -> dict | None:
    """The last meta document the core wrote (as the store holds it), else `before`."""
    saved = [d.value for d in sim.decisions if isinstance(d, ev.SaveMeta)]
    return saved[-1] if saved else before


def test_each_revert_is_in_its_agents_record_and_the_meta_document_holds_the_stage_only():
    sim = Sim.uninstalling(revert_hosts=True)
    sim.subscribe()
    sim.kill_everything()

    sim.offer("S0")

    [launch] = sim.of(ev.Launch)
    saved = [d for d in sim.of(ev.SaveAgent) if d.agent_id == "S0"]
    assert (
        saved
        and saved[-1].record[un.REVERT_FIELD]["task_id"] == (launch.task_info["task_id"]["value"])
    )
    assert saved[-1].record["steps"] == converged_records()["S0"]["steps"]  # kept as stored
    assert stored_meta(sim) == {"revert_hosts": True, "stage": un.REVERT}


def test_a_previous_versions_single_document_is_read_and_migrated_into_the_records():
    records = converged_records()
    running = un.StepState(task_id="calico-uninstall__S0__d6e32bae__1", state="TASK_RUNNING")
    done = un.StepState(task_id="calico-uninstall__S1__d6e32bae__1", state="TASK_FINISHED")
    legacy = {
        "revert_hosts": True,
        "stage": un.REVERT,
        "reverts": {"S0": step_record(running), "S1": step_record(done), "S2": {}},
    }

    writes = un.legacy_migration(records, legacy)

    assert [(kind, name) for kind, name, _ in writes] == [
        ("agent", "S0"),
        ("agent", "S1"),
        ("agent", "S2"),
        ("meta", "uninstall"),  # last: a crash before it leaves the old document whole
    ]
    assert writes[-1][2] == {"revert_hosts": True, "stage": un.REVERT}
    assert writes[0][2] == {**records["S0"], un.REVERT_FIELD: step_record(running)}
    assert un.legacy_migration(*un.migrated(records, legacy)) == []  # migrated once
    for source in (legacy, None):  # the core reads the old layout as well as the new
        new_records, meta = un.migrated(records, legacy)
        sim = Sim.uninstalling(
            revert_hosts=False,
            records=records if source else new_records,
            progress=legacy if source else meta,
        )
        assert sim.core.revert_hosts and sim.core.progress.stage == un.REVERT
        assert sim.core.progress.reverts == {"S0": running, "S1": done, "S2": un.StepState()}
        assert sim.core.reverting() == ["S0"]


def test_an_uninstall_killed_after_any_event_reverts_each_host_once():
    """The scheduler dies after every event and a new one resumes from what was stored (the
    records and the meta document); the cluster (tasks and their states) lives on."""
    sim = Sim.uninstalling(revert_hosts=True)
    meta = None
    for _ in range(40):
        if sim.core.complete:
            break
        events = [lambda s: s.tick(3.0)]
        events += [
            lambda s, k=k: s.update(k.task_id, "TASK_KILLED", k.agent_id)
            for k in sim.of(ev.Kill)
            if sim.tasks.get(k.task_id, {}).get("state") not in ("TASK_KILLED",)
        ]
        events.append(lambda s: s.offer())
        for event in events:
            event(sim)
            meta = stored_meta(sim, meta)
            sim = restarted(sim, meta)
        for task_id, task in list(sim.tasks.items()):
            if task["step"] == "uninstall" and task["state"] in ("TASK_STAGING", "TASK_RUNNING"):
                nxt = "TASK_RUNNING" if task["state"] == "TASK_STAGING" else "TASK_FINISHED"
                sim.update(task_id, nxt, task["agent"])
                meta = stored_meta(sim, meta)
                sim = restarted(sim, meta)

    assert sim.core.complete
    reverted = sorted(agent for _, agent, step in sim.launches if step == "uninstall")
    assert reverted == ["S0", "S1", "S2"]


def restarted(old: Sim, meta: dict | None) -> Sim:
    """A new scheduler on the stored state, subscribed again, the cluster carried over."""
    new = Sim.uninstalling(revert_hosts=True, records=dict(old.records), progress=meta)
    new.tasks, new.launches, new.now = old.tasks, old.launches, old.now + 1.0
    for task_id, task in old.tasks.items():  # the daemons the rollout left, known to Mesos
        task.setdefault("step", task_id.split("__", 1)[0].removeprefix("calico-"))
    new.answers_reconciliation = True  # as the master does: latest state, or TASK_LOST
    new.subscribe()
    return new


def test_at_50000_agents_every_document_written_stays_far_below_zookeepers_limit():
    """A previous version's progress at 50,000 hosts (mid-way: half reverted) is ~21 MB in one
    document; migrated, and then through a round of offers and updates, every document the
    core writes is within the store's bounds (64 KiB a record, 64 KiB a meta document)."""
    agents = 50_000
    records = {aid: touched_only(rec) for aid, rec in converged_records(agents, 0).items()}
    finished = step_record(un.StepState(task_id="t", state="TASK_FINISHED", attempts=1))
    legacy = {
        "revert_hosts": True,
        "stage": un.REVERT,
        "reverts": {aid: finished if i % 2 else step_record(un.StepState()) for i, aid in
                    enumerate(records)},
    }  # fmt: skip
    assert len(encode_document(legacy)) > 20 * agents  # what the previous layout wrote

    writes = un.legacy_migration(records, legacy)
    new_records, meta = un.migrated(records, legacy)
    sim = Sim.uninstalling(revert_hosts=True, records=new_records, progress=meta)
    sim.subscribe()
    sim.offer(*list(new_records)[:2_000])  # a round of offers: launches within the budget
    for launch in sim.of(ev.Launch):
        sim.update(launch.task_info["task_id"]["value"], "TASK_FINISHED", launch.agent_id)

    assert len(writes) == agents + 1 and sim.of(ev.Launch)
    documents = [(kind, doc) for kind, _, doc in writes] + [
        ("meta", d.value) if isinstance(d, ev.SaveMeta) else ("agent", d.record)
        for d in sim.decisions
        if isinstance(d, ev.SaveMeta | ev.SaveAgent)
    ]
    largest = {"agent": 0, "meta": 0}
    for kind, doc in documents:
        largest[kind] = max(largest[kind], len(encode_document(doc)))
    assert largest["agent"] < MAX_RECORD_BYTES // 16  # ~3 KiB, the same at any size
    assert largest["meta"] < 100 < MAX_META_BYTES


def touched_only(record: dict) -> dict:
    """An agent record with just the steps that make its host one to revert (ended), so that
    the 50,000-agent test spends its time on what it checks."""
    steps = {name: record["steps"][name] for name in ("docker", "cni")}
    return {**record, "steps": steps}
