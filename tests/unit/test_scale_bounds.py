"""No call the plans make grows with the cluster: at 50,000 agents an explicit reconciliation
of every live task, its retries, and a round of declined offers go in calls of at most
`MAX_IDS_PER_CALL` IDs (Mesos answers each reconciled task with its own update). Pure core:
the pieces that build those calls, fed 50,000 agents' worth in memory."""

import json

from calico_dcos.core import events as ev
from calico_dcos.core import uninstall as un
from calico_dcos.core.offers import answer_offers
from calico_dcos.core.reconcile import Reconciler
from calico_dcos.core.views import MAX_HOLDERS_NAMED, MAX_PROBLEMS, summary_doc
from calico_dcos.display import slots_line
from tests.helpers.plan_sim import Sim, converged_records, offer

AGENTS = 50_000


def test_at_50000_agents_an_explicit_reconciliation_goes_in_bounded_calls():
    live = [(f"calico-{step}__{i:040d}-S{i}__4f2a0000__1", f"{i:040d}-S{i}")
            for i in range(AGENTS) for step in ("etcd-proxy", "libnetwork", "node")]  # fmt: skip
    reconciler = Reconciler(1.0, 30.0, 5, 600.0)
    first: list = []
    reconciler.start(live, 0.0, first)
    for task_id, _ in live[: len(live) // 2]:
        reconciler.answered(task_id)
    again: list = []
    reconciler.tick(1.0, again)

    for calls, expected in ((first, live), (again, live[len(live) // 2 :])):
        assert all(isinstance(call, ev.Reconcile) and call.tasks for call in calls)  # explicit
        assert [pair for call in calls for pair in call.tasks] == expected  # each once, in order
        assert max(len(call.tasks) for call in calls) == ev.MAX_IDS_PER_CALL
    largest = max(len(json.dumps(reconcile_body(call))) for call in first)
    assert largest < 200 * 1024  # the call's body as the scheduler sends it; ~35 MB in one


def test_at_50000_agents_a_round_of_declined_offers_goes_in_bounded_calls():
    offers = [offer(f"o{i}", f"S{i}", f"agent-{i}") for i in range(AGENTS)]

    out = answer_offers(offers, lambda o, launched, out: 5.0 if o["hostname"][-1] == "7" else 60)

    declines = [d for d in out if isinstance(d, ev.Decline)]
    assert sorted(i for d in declines for i in d.offer_ids) == sorted(
        f"o{i}" for i in range(AGENTS)
    )
    assert max(len(d.offer_ids) for d in declines) == ev.MAX_IDS_PER_CALL
    assert {d.refuse_seconds for d in declines} == {5.0, 60}


def test_no_ids_make_no_call():
    """An empty RECONCILE would be an implicit one (every task), not "nothing"."""
    assert list(ev.in_calls([])) == []
    assert list(ev.in_calls(range(5), 2)) == [(0, 1), (2, 3), (4,)]


def reconcile_body(call: ev.Reconcile) -> dict:
    """The v1 RECONCILE call for `call` (apache/mesos include/mesos/v1/scheduler.proto)."""
    return {
        "type": "RECONCILE",
        "framework_id": {"value": "f" * 36 + "-0001"},
        "reconcile": {
            "tasks": [
                {"task_id": {"value": task_id}, "agent_id": {"value": agent_id}}
                for task_id, agent_id in call.tasks
            ]
        },
    }


def test_the_summary_names_a_bounded_number_of_problems_and_gone_hosts():
    """Every agent failing (a wrong option everywhere) must not make the page's summary as
    long as the cluster: the first problems, then a count; the plan's steps hold them all."""
    problems = [f"agent-{i:05d}: node failed 3 times: bad image" for i in range(AGENTS)]
    doc = summary_doc(available=False, progressing=True, message="", problems=problems,
                      restarting=(), budget=1, interrupted=False)  # fmt: skip
    assert doc["degraded"] and len(doc["problems"]) == MAX_PROBLEMS + 1
    assert doc["problems"][-1] == f"… and {AGENTS - MAX_PROBLEMS} more (see the plan's steps)"

    records = converged_records(un.MAX_NAMED + 5, 0)
    for record in records.values():
        record["lost"] = True  # every agent left before its host was reverted
    sim = Sim.uninstalling(revert_hosts=True, records=records)
    message = sim.core.summary(sim.now)["message"]
    assert message.endswith(" and 5 more") and message.count("agent-") == un.MAX_NAMED


def test_the_summary_names_a_bounded_number_of_restart_slot_holders_and_counts_them_all():
    """The budget is a share of the agents (5,000 slots at 50,000 agents and 10 %)."""
    holders = [f"S{i:05d}" for i in range(5_000)]
    doc = summary_doc(available=False, progressing=True, message="", problems=(),
                      restarting=holders, budget=5_000, interrupted=False)  # fmt: skip
    assert doc["restarting"] == holders[:MAX_HOLDERS_NAMED]
    assert doc["restarting_count"] == 5_000

    line = slots_line(doc, {"phases": [{"id": "S00000", "name": "agent-0"}]})
    assert line.startswith("Restart slots: 5000 of 5000 in use (agent-0, S00001, ")
    assert line.endswith(f", S00049 and {5_000 - MAX_HOLDERS_NAMED} more)")
