"""The one interface the scheduler depends on: what every plan (`Deploy`, `Uninstall`)
offers. Events go in with the time (`now`, seconds of the scheduler's clock); decisions
(`events.Decision`) come out for the scheduler to apply, store writes first."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol

from calico_dcos.core.config import PlanConfig
from calico_dcos.core.events import Decision
from calico_dcos.core.records import AgentState


class Core(Protocol):
    """A plan the scheduler runs. Not thread-safe: the scheduler calls it under one lock."""

    framework_id: str | None
    subscribed: bool
    interrupted: bool
    agents: dict[str, AgentState]

    @property
    def complete(self) -> bool:
        """Done: every agent converged (deploy), torn down and wiped (uninstall)."""

    @property
    def restarting(self) -> frozenset[str]:
        """Agents holding a restart slot."""

    def on_subscribed(self, framework_id: str, now: float) -> list[Decision]:
        """SUBSCRIBED (first time, or again after a disconnection or master failover)."""

    def on_disconnected(self) -> None:
        """The stream to the master ended; pymesos subscribes again."""

    def on_framework_removed(self) -> list[Decision]:
        """Mesos removed the framework ("Framework has been removed"): its tasks are gone."""

    def on_offers(self, offers: Iterable[Mapping], now: float) -> list[Decision]:
        """OFFERS (v1 Offer JSON): each is used for a launch, declined, or held (deploy: the
        agent's next step will be ready soon) and answered by a later call's decisions."""

    def on_allocation_interval(self, seconds: float, now: float) -> list[Decision]:
        """The master's `--allocation_interval` (seconds), learned from the master."""

    def on_rescind(self, offer_id: str) -> list[Decision]:
        """RESCIND of an offer (by its ID's value): a held one is forgotten, never used."""

    def on_status(self, status: Mapping, now: float) -> list[Decision]:
        """UPDATE (v1 TaskStatus JSON), from a task or from reconciliation."""

    def is_failure(self, status: Mapping) -> bool:
        """Whether that update, not yet taken in, ends a step's current task in a failure
        (not an end the plan expects: its own kill, a restart's cut-off); reads only."""

    def on_agent_lost(self, agent_id: str, now: float) -> list[Decision]:
        """FAILURE of an agent (no executor ID): it left the cluster."""

    def on_agents_known(self, agent_ids: Iterable[str], now: float) -> list[Decision]:
        """The agents the master knows, asked after each subscription: the others are gone."""

    def on_report(self, agent_id: str, report: Mapping, now: float) -> list[Decision]:
        """The installer on an agent reported (Calico already present)."""

    def on_task_output(self, task_id: str, output: str, message: str, now: float) -> list[Decision]:
        """The end of a failed task's sandbox `stderr`, asked for by `ReadStderr`."""

    def on_options(self, config: PlanConfig, now: float) -> list[Decision]:
        """The options changed: the plan's new configuration."""

    def on_tick(self, now: float) -> list[Decision]:
        """The timer (about every half second): retries, reconciliation, revives."""

    @property
    def wake_at(self) -> float | None:
        """When (plan clock) to call `on_tick` sooner than the periodic timer; None: no need."""

    def interrupt(self, agent_id: str | None, now: float) -> list[Decision]:
        """No new launches on one agent (or anywhere); KeyError for an unknown agent."""

    def proceed(self, agent_id: str | None, now: float) -> list[Decision]:
        """Undo `interrupt` (the plan API's `continue`)."""

    def restart(self, agent_id: str, step: str, now: float) -> list[Decision]:
        """Run a step again on an agent; KeyError for an unknown agent or step."""

    def force_complete(self, agent_id: str, step: str, now: float) -> list[Decision]:
        """Count a step as done on an agent; KeyError for an unknown agent or step."""

    def plan_view(self, now: float) -> dict:
        """The plan in dcos-commons' shape (`/v1/plan`); O(agents)."""

    def agent_records(self, now: float) -> dict[str, dict]:
        """Every agent's record as the API shows it (a stalled step says how long); O(agents)."""

    @property
    def held_offers(self) -> int:
        """Offers held now."""

    def summary(self, now: float) -> dict:
        """Available / Progressing / Degraded with words for people (`/v1/status`)."""
