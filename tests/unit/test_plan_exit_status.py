"""`calico-dcos plan show`'s exit status tells "still going" (3) and "done" (0) from "needs a
person" (4 errors, 5 Degraded, 6 waiting for the operator), from the plan documents the
decision core makes (`/v1/plan`: `operator_api.paged_plan`), in the plan simulator."""

from calico_dcos.commands.operator import (
    EXIT_COMPLETE,
    EXIT_DEGRADED,
    EXIT_ERRORS,
    EXIT_IN_PROGRESS,
    EXIT_WAITING,
    plan_exit_status,
)
from calico_dcos.operator_api import paged_plan
from tests.helpers.plan_sim import ONLY_PROXY_AND_DOCKER, Sim, subscribed
from tests.unit.test_plan_failures import failing_docker


def plan_doc(sim: Sim) -> dict:
    summary = sim.core.summary(sim.now)
    return paged_plan(sim.core.plan_view(sim.now), 0, 500, summary)


def test_the_statuses_keep_dcos_commons_three_and_add_two_that_need_a_person():
    assert (EXIT_COMPLETE, EXIT_IN_PROGRESS, EXIT_ERRORS) == (0, 3, 4)  # as before
    assert (EXIT_DEGRADED, EXIT_WAITING) == (5, 6)


def test_complete_and_in_progress():
    sim = subscribed(2, **ONLY_PROXY_AND_DOCKER)
    sim.offer()
    going = plan_doc(sim)
    sim.converge()

    assert (going["status"], going["progressing"], going["degraded"]) == (
        "IN_PROGRESS",
        True,
        False,
    )
    assert plan_exit_status(going) == EXIT_IN_PROGRESS
    assert plan_exit_status(plan_doc(sim)) == EXIT_COMPLETE


def test_a_step_that_keeps_failing_is_degraded_while_the_plan_is_still_in_progress():
    """Three failures in a row (not the host's: it retries for ever): IN_PROGRESS before,
    so exit 3, "still going", while the summary said Degraded."""
    sim = Sim(agents=1, public=0)
    sim.subscribe()
    for _ in range(3):
        failing_docker(sim, message="Command exited with status 1")

    doc = plan_doc(sim)

    assert doc["status"] == "IN_PROGRESS" and doc["degraded"] and doc["errors"] == []
    assert plan_exit_status(doc) == EXIT_DEGRADED


def test_a_step_that_stopped_is_an_error():
    sim = Sim(agents=1, public=0, rollout_max_host_failures="1")
    sim.subscribe()
    failing_docker(sim)  # exit 127: the host's

    doc = plan_doc(sim)

    assert doc["status"] == "ERROR" and doc["errors"]
    assert plan_exit_status(doc) == EXIT_ERRORS


def test_an_interrupted_plan_waits_for_the_operator():
    sim = subscribed(2, **ONLY_PROXY_AND_DOCKER)
    sim.apply(sim.core.interrupt(None, sim.now))
    sim.offer()

    doc = plan_doc(sim)

    assert not doc["progressing"] and not doc["degraded"]
    assert plan_exit_status(doc) == EXIT_WAITING
    sim.apply(sim.core.proceed(None, sim.now))
    sim.offer()
    assert plan_exit_status(plan_doc(sim)) == EXIT_IN_PROGRESS


def test_no_agents_yet_is_in_progress_and_an_older_schedulers_plan_reads_as_before():
    """Before any offer the plan has no phases and nothing moves: it waits for offers, not
    for a person. A scheduler without `degraded` and `progressing` gives dcos-commons' three."""
    sim = Sim(agents=0, public=0)
    sim.subscribe()

    assert plan_exit_status(plan_doc(sim)) == EXIT_IN_PROGRESS
    assert plan_exit_status({"status": "COMPLETE", "errors": []}) == EXIT_COMPLETE
    assert plan_exit_status({"status": "IN_PROGRESS", "errors": []}) == EXIT_IN_PROGRESS
    assert plan_exit_status({"status": "ERROR", "errors": ["a: node: bad"]}) == EXIT_ERRORS
