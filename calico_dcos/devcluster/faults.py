"""Control endpoints under `/devcluster/`: look at the timeline and inject faults over HTTP.

The host stand-ins use `agents/<id>/restart` (a `systemctl restart dcos-mesos-slave`), and
tests or people in a terminal use the rest. Each one does what the DevCluster method does.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable

from aiohttp import web

from calico_dcos.devcluster.master import Master

FailoverHook = Callable[[bool], Awaitable[str]]
MASTER = web.AppKey("devcluster_master", Master)
FAILOVER = web.AppKey("devcluster_failover", list)

routes = web.RouteTableDef()


def _agent_json(agent) -> dict:
    info = dataclasses.asdict(agent.info())
    info["host_root"] = str(info["host_root"])
    return info


async def _body(request: web.Request) -> dict:
    if not request.can_read_body:
        return {}
    try:
        body = await request.json()
    except ValueError as exc:
        raise web.HTTPBadRequest(text=f"Body is not JSON: {exc}") from exc
    return body if isinstance(body, dict) else {}


def _known_agent(master: Master, agent_id: str):
    agent = master.agents.get(agent_id)
    if agent is None:
        raise web.HTTPNotFound(text=f"Unknown agent {agent_id}")
    return agent


@routes.get("/devcluster/timeline")
async def timeline(request: web.Request) -> web.Response:
    entries = request.app[MASTER].timeline()
    kind = request.query.get("event")
    if kind:
        entries = [e for e in entries if e["event"] == kind]
    return web.json_response(entries)


@routes.get("/devcluster/agents")
async def list_agents(request: web.Request) -> web.Response:
    return web.json_response([_agent_json(a) for a in request.app[MASTER].agents.values()])


@routes.post("/devcluster/agents")
async def add_agent(request: web.Request) -> web.Response:
    body = await _body(request)
    allowed = {"public", "cpus", "mem", "disk", "attributes", "docker_version", "dcos_calico"}
    agent = request.app[MASTER].add_agent(**{k: v for k, v in body.items() if k in allowed})
    return web.json_response(_agent_json(agent), status=201)


AGENT_FAULTS = {
    "restart": Master.restart_agent,
    "remove": Master.remove_agent,
    "partition": Master.partition_agent,
    "heal": Master.heal_agent,
}


@routes.post("/devcluster/agents/{agent_id}/{fault:restart|remove|partition|heal}")
async def agent_fault(request: web.Request) -> web.Response:
    """`restart` (what `systemctl restart dcos-mesos-slave` asks for), `remove` an agent,
    `partition` it from the master or `heal` the partition."""
    master, agent_id = request.app[MASTER], request.match_info["agent_id"]
    _known_agent(master, agent_id)
    AGENT_FAULTS[request.match_info["fault"]](master, agent_id)
    return web.Response(status=202)


@routes.post("/devcluster/faults/fail-next-task")
async def fail_next_task(request: web.Request) -> web.Response:
    body = await _body(request)
    if not isinstance(body.get("name_regex"), str):
        raise web.HTTPBadRequest(text="Expecting 'name_regex'")
    master = request.app[MASTER]
    master.fail_next_task(body["name_regex"], body.get("message", ""))
    # as hold-next-task: say what was armed, and how many wait (each POST arms one more)
    text = (
        f"armed: the next task launched whose name matches {body['name_regex']!r} fails "
        f"(STARTING, then FAILED) ({len(master.faults)} armed)\n"
    )
    return web.Response(status=202, text=text)


@routes.post("/devcluster/faults/{fault:lose-next-kill|hold-next-task}")
async def task_fault(request: web.Request) -> web.Response:
    """`lose-next-kill` (accepted, never delivered) or `hold-next-task` (kept STAGING)."""
    body = await _body(request)
    if not isinstance(body.get("name_regex"), str):
        raise web.HTTPBadRequest(text="Expecting 'name_regex'")
    faults = request.app[MASTER].task_faults
    if request.match_info["fault"] == "lose-next-kill":
        faults.lose_next_kill(body["name_regex"])
        armed, what = faults.lost_kills, "KILL of a task whose name matches {!r} is lost"
    else:
        faults.hold_next_task(body["name_regex"])
        armed, what = faults.held_launches, "task launched whose name matches {!r} stays STAGING"
    # say what was armed, and how many wait: a second POST arms a second one
    text = f"armed: the next {what.format(body['name_regex'])} ({len(armed)} armed)\n"
    return web.Response(status=202, text=text)


DENIALS = {
    "deny-view-framework": (
        Master.deny_view_framework,
        "GET_FRAMEWORKS lists no framework, as for a principal without VIEW_FRAMEWORK",
        "VIEW_FRAMEWORK",
    ),
    "deny-view-flags": (
        Master.deny_view_flags,
        "GET_FLAGS is refused 403, as for a principal without VIEW_FLAGS",
        "VIEW_FLAGS",
    ),
}


@routes.post("/devcluster/faults/{fault:deny-view-framework|deny-view-flags}")
async def deny(request: web.Request) -> web.Response:
    """An authorizer that denies one action to every principal, from now until the fault is
    lifted (`DELETE`) or the cluster stops (`Master.deny_view_framework`,
    `Master.deny_view_flags`); no body."""
    arm, what, _ = DENIALS[request.match_info["fault"]]
    arm(request.app[MASTER])
    return web.Response(status=202, text=f"armed: from now on {what}\n")


@routes.delete("/devcluster/faults/{fault:deny-view-framework|deny-view-flags}")
async def lift_denial(request: web.Request) -> web.Response:
    """The denial ends (`Master.lift_denial`): each principal's grant decides again, as
    after the operator grants the permission; 200 whether or not it was armed."""
    action = DENIALS[request.match_info["fault"]][2]
    request.app[MASTER].lift_denial(action)
    text = f"lifted: {action} is no longer denied to every principal; grants decide again\n"
    return web.Response(text=text)


@routes.post("/devcluster/faults/refuse-next-call")
async def refuse_next_call(request: web.Request) -> web.Response:
    """Body `{"type": "ACCEPT", "status": 400, "message": "..."}`."""
    body = await _body(request)
    status = body.get("status", 400)
    if not isinstance(body.get("type"), str) or not isinstance(status, int):
        raise web.HTTPBadRequest(text="Expecting 'type' (a call type) and an integer 'status'")
    request.app[MASTER].refuse_next_call(body["type"], status, body.get("message", ""))
    return web.Response(status=202)


def _iam(request: web.Request):
    iam = request.app[MASTER].iam
    if iam is None:
        raise web.HTTPNotFound(text="there is an IAM only in strict mode (devcluster --strict)")
    return iam


@routes.post("/devcluster/faults/iam-unavailable")
async def iam_unavailable(request: web.Request) -> web.Response:
    """Strict mode: from now until `DELETE`, the IAM answers every login `status` (body
    `{"status": 503}`, the default; 429 or a 5xx), as Admin Router does while the IAM on a
    master restarts (`Iam.become_unavailable`). Tokens already issued stay valid."""
    body = await _body(request)
    status = body.get("status", 503)
    if isinstance(status, bool) or not isinstance(status, int):
        raise web.HTTPBadRequest(text="Expecting an integer 'status' (429 or 5xx)")
    try:
        _iam(request).become_unavailable(status)
    except ValueError as exc:
        raise web.HTTPBadRequest(text=f"{exc}\n") from None
    return web.Response(status=202, text=f"armed: from now on every login is answered {status}\n")


@routes.delete("/devcluster/faults/iam-unavailable")
async def iam_available(request: web.Request) -> web.Response:
    """The IAM outage ends (`Iam.become_available`); 200 whether or not it was armed."""
    iam = _iam(request)
    iam.become_available()
    answered = iam.unavailable_answers
    return web.Response(text=f"lifted: logins are answered again ({answered} refused so far)\n")


@routes.post("/devcluster/frameworks/{framework_id}/disconnect")
async def disconnect_framework(request: web.Request) -> web.Response:
    master = request.app[MASTER]
    if request.match_info["framework_id"] not in master.frameworks:
        raise web.HTTPNotFound(text="Unknown framework")
    master.disconnect_framework(request.match_info["framework_id"])
    return web.Response(status=202)


@routes.post("/devcluster/failover")
async def failover(request: web.Request) -> web.Response:
    """A new leading master; body `{"old_master": "redirect"|"gone"}` as in
    `DevCluster.failover_master` (default "redirect": this port then answers 307)."""
    body = await _body(request)
    old_master = body.get("old_master", "redirect")
    if old_master not in ("redirect", "gone"):
        raise web.HTTPBadRequest(
            text=f'\'old_master\' must be "redirect" or "gone", not {old_master!r}'
        )
    new_url = await request.app[FAILOVER][0](old_master == "gone")
    return web.json_response({"master_url": new_url})
