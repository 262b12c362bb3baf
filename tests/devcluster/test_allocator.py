"""The allocator against apache/mesos `src/master/allocator/mesos/hierarchical.cpp`: which role
gets an agent's unreserved resources (DRF order), and offer filters (`RefusedOfferFilter`).

Every test here talks to the devcluster through pymesos' real driver over sockets.
"""

from __future__ import annotations

from calico_dcos.devcluster import DevCluster
from tests.helpers.devcluster import (
    Framework,
    command_task,
    framework_info,
    running_cluster,
    wait_until,
)

HOUR = {"refuse_seconds": 3600}


def keep(fw: Framework, offers: list[dict]) -> None:
    """Hold every offer (the default), so each agent is offered once."""


def reservation(resource: dict) -> str:
    reservations = resource.get("reservations") or []
    return reservations[-1]["role"] if reservations else resource.get("role", "*")


def roles_by_hostname(cluster: DevCluster, fw: Framework) -> dict[str, str]:
    wanted = {a.hostname for a in cluster.agents}
    wait_until(lambda: {o["hostname"] for o in fw.offers} >= wanted, what="an offer per agent")
    return {o["hostname"]: o["allocation_info"]["role"] for o in fw.offers}


def test_private_agents_unreserved_resources_are_offered_under_any_of_the_roles():
    """`__generateOffers`: "for unreserved resources on the slave, allocate these to a
    framework of any role"; reserved ones only to their role."""
    with (
        running_cluster(agents=4, public_agents=1, allocation_seed=7) as cluster,
        Framework(cluster) as fw,
    ):
        roles = roles_by_hostname(cluster, fw)
        private = [o for o in fw.offers if not o["hostname"].startswith("public")]
        public = [o for o in fw.offers if o["hostname"].startswith("public")]
    under_public = [o for o in private if o["allocation_info"]["role"] == "slave_public"]
    assert under_public, roles
    for offer in private:
        assert {reservation(r) for r in offer["resources"]} == {"*"}
        assert all(r["allocation_info"] == offer["allocation_info"] for r in offer["resources"])
    assert [o["allocation_info"]["role"] for o in public] == ["slave_public"]
    assert {reservation(r) for r in public[0]["resources"]} == {"slave_public"}


def test_roles_take_turns_in_drf_order():
    """`compareDRF`: the role with the lowest dominant share first, then the fewest
    allocations, then the name; four equal agents split two and two between the roles."""
    with running_cluster(agents=4, public_agents=0) as cluster, Framework(cluster) as fw:
        roles = roles_by_hostname(cluster, fw)
    assert sorted(roles.values()) == ["*", "*", "slave_public", "slave_public"]


def test_the_same_seed_gives_the_same_allocation():
    def allocation(seed: int) -> dict[str, str]:
        with (
            running_cluster(agents=5, public_agents=0, allocation_seed=seed) as cluster,
            Framework(cluster) as fw,
        ):
            return roles_by_hostname(cluster, fw)

    assert allocation(3) == allocation(3)


def test_task_must_copy_the_offered_reservation_not_the_allocation_role():
    """Resources that say `role: slave_public` are reserved ones: a private agent offered
    under `slave_public` has none, so the master answers TASK_ERROR (more than available)."""
    with (
        running_cluster(agents=4, public_agents=0, allocation_seed=1) as cluster,
        Framework(cluster) as fw,
    ):
        roles_by_hostname(cluster, fw)
        offer = next(o for o in fw.offers if o["allocation_info"]["role"] == "slave_public")
        wrong = command_task(offer, "wrong-1", name="calico-cni")
        for resource in wrong["resources"]:
            resource["role"] = "slave_public"
        right = command_task(offer, "right-1", name="calico-cni")
        fw.driver.launchTasks([offer["id"]], [wrong, right])
        error = fw.wait_for_state("wrong-1", "TASK_ERROR")
        fw.wait_for_state("right-1", "TASK_FINISHED")
    assert error["reason"] == "REASON_TASK_INVALID"
    assert "is more than available" in error["message"]


def single_agent_framework(cluster: DevCluster, **kwargs) -> Framework:
    return Framework(cluster, framework_info(roles=["*"]), **kwargs)


def test_a_task_s_freed_resources_come_back_through_the_filter():
    """The unused part of an ACCEPT is filtered for an hour, but the filter holds only what
    was refused: once the task ends, the agent has more and is offered again."""
    with (
        running_cluster(agents=1, public_agents=0) as cluster,
        single_agent_framework(cluster) as fw,
    ):
        offer = fw.offer_from(cluster.agents[0].agent_id)
        task = command_task(offer, "daemon-1", name="daemon")
        fw.driver.launchTasks([offer["id"]], [task], HOUR)
        fw.wait_for_state("daemon-1", "TASK_RUNNING")
        rounds = cluster.allocator_stats()["rounds"]
        wait_until(lambda: cluster.allocator_stats()["rounds"] >= rounds + 5)
        assert len(fw.offers) == 1, "the refused remainder stays filtered"
        fw.driver.killTask({"value": "daemon-1"})
        fw.wait_for_state("daemon-1", "TASK_KILLED")
        wait_until(lambda: len(fw.offers) == 2, what="the whole agent offered again")


def test_accept_that_uses_the_whole_offer_installs_no_filter():
    """master.cpp `_accept`: only unused resources are recovered with the call's filters."""
    with (
        running_cluster(agents=1, public_agents=0) as cluster,
        single_agent_framework(cluster) as fw,
    ):
        offer = fw.offer_from(cluster.agents[0].agent_id)
        task = command_task(offer, "all-1", name="calico-cni")
        task["resources"] = offer["resources"]
        fw.driver.launchTasks([offer["id"]], [task], HOUR)
        fw.wait_for_state("all-1", "TASK_FINISHED")
        wait_until(lambda: len(fw.offers) == 2, what="the agent offered again")


def test_disconnection_clears_the_framework_s_filters():
    """`deactivateFramework` clears `offerFilters`: a declined agent comes back after the
    framework's stream drops and pymesos subscribes again."""
    declined: list[str] = []

    def decline(fw: Framework, offers: list[dict]) -> None:
        declined.extend(o["id"]["value"] for o in offers)
        fw.driver.declineOffer([o["id"] for o in offers], HOUR)

    with (
        running_cluster(agents=1, public_agents=0) as cluster,
        single_agent_framework(cluster, on_offers=decline) as fw,
    ):
        wait_until(lambda: len(declined) == 1)
        wait_until(lambda: [e for e in cluster.timeline() if e["event"] == "decline"])
        cluster.disconnect_framework(fw.framework_id)
        wait_until(lambda: fw.registrations >= 2, what="re-subscription")
        wait_until(lambda: len(declined) == 2, what="the offer after re-subscribing")


def test_revive_and_subscribe_allocate_at_once():
    """`reviveOffers` and `activateFramework` call `generateOffers()`: no wait for the next
    periodic allocation (here an hour away)."""
    with (
        running_cluster(agents=1, public_agents=0, allocation_interval=3600) as cluster,
        single_agent_framework(cluster) as fw,
    ):
        offer = fw.offer_from(cluster.agents[0].agent_id, timeout=5)
        fw.driver.declineOffer([offer["id"]], HOUR)
        wait_until(lambda: [e for e in cluster.timeline() if e["event"] == "decline"])
        fw.driver.reviveOffers()
        wait_until(lambda: len(fw.offers) == 2, timeout=5, what="an offer after REVIVE")
