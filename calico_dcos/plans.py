"""The plans as the options make them: the bridge from options and the step catalog to the
pure core (`calico_dcos.core`), which reads neither.

`max_concurrent_restarts` goes from the validated options to the gate in one hop each:
`config_from_options` parses it (`RestartBudget.parse`) into `PlanConfig.budget`, which the
engine's `Slots` consult before every launch or replacement that restarts something.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shlex
from collections.abc import Callable, Mapping
from typing import Any

from calico_dcos import steps as catalog
from calico_dcos.core.budget import RestartBudget
from calico_dcos.core.config import PlanConfig, Restarts, StepKind, StepSpec
from calico_dcos.core.deploy import META_KEY as DEPLOY_META_KEY
from calico_dcos.core.deploy import Deploy
from calico_dcos.core.interface import Core
from calico_dcos.core.records import AgentView
from calico_dcos.core.uninstall import (
    META_KEY,
    REVERT_STEP,
    Uninstall,
    legacy_migration,
    migrated,
)
from calico_dcos.options import agent_constraints

# options, artifacts URL, store, timings -> the core, built from the stored records
CoreFactory = Callable[[Mapping, str, Any, Mapping[str, float]], Core]


def config_from_options(options: Mapping, artifacts_url: str, **timings: float) -> PlanConfig:
    """The deploy plan's view of the options: the catalog's steps, fingerprints, budget."""
    specs = tuple(_spec(step, options) for step in catalog.STEPS)

    def build_task(spec: StepSpec, agent: AgentView, task_id: str, role: str) -> dict:
        step = catalog.BY_NAME[spec.name]
        return catalog.build_task_info(step, options, agent, task_id, role, artifacts_url)

    rollout = options["rollout"]
    return PlanConfig(
        steps=specs,
        build_task=build_task,
        budget=RestartBudget.parse(rollout["max_concurrent_restarts"]),
        retry_backoff_seconds=rollout["retry_backoff_seconds"],
        max_backoff_seconds=rollout["max_backoff_seconds"],
        max_host_failures=rollout["max_host_failures"],
        options_digest=options_digest(options),
        wants_agent=agent_filter(options),
        **timings,
    )


def options_digest(options: Mapping) -> str:
    """A digest of every option (secrets are paths, so none is in it): changes with any."""
    raw = options.raw if hasattr(options, "raw") else dict(options)
    text = json.dumps(raw, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def agent_filter(options: Mapping) -> Callable[[AgentView], bool]:
    """Public agents only if included, and every `agents.constraints` entry must hold."""
    include_public = options["agents"]["include_public"]
    constraints = agent_constraints(options)

    def wanted(agent: AgentView) -> bool:
        if agent.public and not include_public:
            return False
        return all(c.matches(agent.hostname, agent.attributes) for c in constraints)

    return wanted


def _spec(step: catalog.Step, options: Mapping) -> StepSpec:
    resources = step.resources(options)
    return StepSpec(
        name=step.name,
        kind=StepKind(step.kind),
        restarts=Restarts(step.restarts_with(options)) if step.restarts_with(options) else None,
        health_checked=step.health_checked,
        enabled=step.enabled(options),
        fingerprint=step.fingerprint(options),
        cpus=resources["cpus"],
        mem=resources["mem"],
    )


def deploy(options: Mapping, artifacts_url: str, store: Any, timings: Mapping) -> Deploy:
    """The deploy plan: Calico on every agent, resumed from the stored records."""
    config = config_from_options(options, artifacts_url, **timings)
    return Deploy(
        config, store.load_agents(), store.get_framework_id(), store.get_meta(DEPLOY_META_KEY)
    )


def uninstalling(revert_hosts: bool) -> CoreFactory:
    """The uninstall, resumed from its stored progress (which keeps its `revert_hosts`).

    A progress stored by a previous version (every host's revert in the one meta document)
    is first moved into this version's layout in the store (`uninstall.legacy_migration`:
    each revert into its agent's record), before anything else is written."""

    def core(options: Mapping, artifacts_url: str, store: Any, timings: Mapping) -> Uninstall:
        records, progress = store.load_agents(), store.get_meta(META_KEY)
        writes = legacy_migration(records, progress)
        if writes:
            store.put_many(writes)
            records, progress = migrated(records, progress)
        return uninstall_from_options(
            options,
            artifacts_url,
            revert_hosts,
            records,
            store.get_framework_id(),
            progress,
            **timings,
        )

    return core


# ---------------------------------------------------------------------------------------
# The uninstall's revert step


def revert_task_info(
    options: Mapping, agent: AgentView, task_id: str, role: str, artifacts_url: str
) -> dict:
    """The installer's `uninstall --docker --cni`: puts back daemon.json and the CNI files.

    It restarts Docker and the agent, like the install steps, so it runs within the restart
    budget; a relaunch after the agent restart finds nothing left to do and finishes.
    """
    python = options["service"]["agent_python"]
    argv = [python, "./installer.pyz", "uninstall", "--docker", "--cni"]
    argv += ["--stability-seconds", str(options["rollout"]["stability_seconds"])]
    if agent.public:
        argv.append("--public")
    resources = {"cpus": options["cni"]["cpus"], "mem": options["cni"]["mem"]}
    return {
        "name": f"calico-{REVERT_STEP}",
        "task_id": {"value": task_id},
        "agent_id": {"value": agent.agent_id},
        "resources": [
            {"name": name, "type": "SCALAR", "scalar": {"value": value}, "role": role}
            | {"allocation_info": {"role": role}}
            for name, value in resources.items()
        ],
        "labels": {"labels": [{"key": catalog.STEP_LABEL, "value": "uninstall"}]},
        "command": {
            "shell": True,
            "value": "exec " + " ".join(shlex.quote(arg) for arg in argv),
            "uris": [
                {"value": artifacts_url.rstrip("/") + catalog.INSTALLER_PATH, "executable": False}
            ],
        },
    }


def revert_fingerprint(options: Mapping) -> str:
    """Names the revert task's options in its task ID, as the steps' fingerprints do."""
    text = f"{options['service']['agent_python']}|{options['rollout']['stability_seconds']}"
    return hashlib.sha256(text.encode()).hexdigest()


def revert_spec(options: Mapping) -> StepSpec:
    """The revert as a step: a one-shot that restarts the agent, with the CNI step's
    resources."""
    return StepSpec(
        name=REVERT_STEP,
        kind=StepKind.ONESHOT,
        restarts=Restarts.AGENT,
        fingerprint=revert_fingerprint(options),
        cpus=options["cni"]["cpus"],
        mem=options["cni"]["mem"],
    )


def uninstall_from_options(
    options: Mapping,
    artifacts_url: str,
    revert_hosts: bool,
    records: Mapping[str, Mapping],
    framework_id: str | None,
    progress: Mapping | None,
    **timings: float,
) -> Uninstall:
    """An uninstall with the deploy plan's budget and timings, and the installer's revert."""

    def build(spec: StepSpec, agent: AgentView, task_id: str, role: str) -> dict:
        return revert_task_info(options, agent, task_id, role, artifacts_url)

    config = dataclasses.replace(
        config_from_options(options, artifacts_url, **timings),
        steps=(revert_spec(options),),
        build_task=build,
    )
    return Uninstall(config, revert_hosts, records, framework_id, progress)
