"""The devcluster's authorizer: which principal may take which action, as a Mesos master's
(and agent's) authorizer decides it; per account, so that a test can say "this service account
may register and launch, but not view the master's flags".

What it plays: Mesos' local authorizer (apache/mesos src/authorizer/local/authorizer.cpp)
reading `--acls` (include/mesos/authorizer/acls.proto `ACLs`). Each ACL names subjects
(`principals`, an `Entity`: SOME of them, ANY, or NONE) and objects (roles, users…); for a
request, the first ACL of that action whose subjects and objects both match decides (an
entity NONE matches and denies), and when none matches `ACLs.permissive` decides, true by
default (`LocalAuthorizerObjectApprover::approved`). Here:

- `grant(principal, actions)`: that principal may take these actions and no other, as ACLs
  naming it with objects ANY for those actions and NONE for the rest would say. A principal
  never granted anything is allowed every action: `permissive`, which is what the strict
  devcluster did before it had grants.
- `deny_to_all(action)`: no principal may take it from now on, granted or not, as an ACL
  with principals ANY and objects NONE placed first (the devcluster's `deny-view-flags` and
  `deny-view-framework` faults), until `lift_denial(action)` (as when the operator grants
  the permission after all).
- Objects are not looked at: a grant is for every role, user, framework or sandbox. On DC/OS
  the authorizer is DC/OS' own module, checking IAM permissions (`dcos:mesos:master:flags`
  read for VIEW_FLAGS, …: DC/OS "Permissions Reference"); its shape is the same, principal
  and action.

The actions checked, with the names of include/mesos/authorizer/authorizer.proto `Action`,
where Mesos checks them:

- REGISTER_FRAMEWORK: SUBSCRIBE (src/master/master.cpp `checkSubscribeAuthorization`):
  denied, an ERROR event "Not authorized to register framework <id> with roles { … }"
  (src/master/authorization.cpp, `operator<<(ostream&, const ActionObject&)`) and the stream
  ends.
- RUN_TASK: each task of a LAUNCH or LAUNCH_GROUP (master.cpp `Master::_accept`): denied,
  TASK_ERROR with REASON_TASK_UNAUTHORIZED, "Principal '<p>' no authorized to launch task
  <task id> of framework <framework id> under user '<user>'" (sic).
- VIEW_FRAMEWORK: the operator API's GET_FRAMEWORKS leaves out what the principal may not
  view (src/master/http.cpp `getFrameworks`).
- VIEW_FLAGS: GET_FLAGS answers 403 "403 Forbidden." (http.cpp `Master::Http::_flags`).
- ACCESS_SANDBOX: an agent's `/files/read` of a sandbox answers 403 (src/files/files.cpp
  `FilesProcess::read`, `Forbidden()` when the path's authorization is denied; the agent
  attaches sandboxes with an ACCESS_SANDBOX check, src/slave/slave.cpp).

Used on the master's event loop only (grant through `DevCluster.grant`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

ACTIONS = ("REGISTER_FRAMEWORK", "RUN_TASK", "VIEW_FRAMEWORK", "VIEW_FLAGS", "ACCESS_SANDBOX")


class Authorizer:
    """Per-principal grants over `ACTIONS`, permissive for a principal with none."""

    def __init__(self) -> None:
        self._grants: dict[str | None, frozenset[str]] = {}
        self._denied: set[str] = set()

    def grant(self, principal: str | None, actions: Iterable[str]) -> None:
        """From now on `principal` (None: requests without one) may take exactly `actions`
        (replacing an earlier grant). ValueError naming an action not in `ACTIONS`."""
        granted = frozenset(actions)
        unknown = sorted(granted.difference(ACTIONS))
        if unknown:
            raise ValueError(
                f"unknown action(s) {', '.join(unknown)}: the devcluster's authorizer checks "
                f"{', '.join(ACTIONS)}"
            )
        self._grants[principal] = granted

    def deny_to_all(self, action: str) -> None:
        """From now on no principal may take `action` (ValueError if not in `ACTIONS`)."""
        if action not in ACTIONS:
            raise ValueError(f"unknown action {action}: expected one of {', '.join(ACTIONS)}")
        self._denied.add(action)

    def lift_denial(self, action: str) -> None:
        """`deny_to_all(action)` no longer holds (grants decide again); nothing if it did not."""
        self._denied.discard(action)

    def allows(self, principal: str | None, action: str) -> bool:
        if action in self._denied:
            return False
        granted = self._grants.get(principal)
        return granted is None or action in granted

    def denied_to_all(self, action: str) -> bool:
        return action in self._denied

    def grants(self) -> Mapping[str | None, frozenset[str]]:
        """Each principal's grant, for the devcluster's `/master/state`-like views."""
        return dict(self._grants)


def register_refusal(info: Mapping) -> str:
    """The ERROR event's words for a SUBSCRIBE without REGISTER_FRAMEWORK: the framework's
    ID (empty for a new one, as Mesos prints an unset FrameworkID) and its roles as stout
    prints a set (`{ a, b }`; `getRoles`: `roles` for a MULTI_ROLE framework, else `role`,
    "*" when unset)."""
    multi = any(c.get("type") == "MULTI_ROLE" for c in info.get("capabilities", []))
    roles = sorted(set(info.get("roles", []))) if multi else [info.get("role", "*")]
    framework_id = (info.get("id") or {}).get("value", "")
    return (
        f"Not authorized to register framework {framework_id} with roles {{ {', '.join(roles)} }}"
    )


def launch_refusal(principal: str | None, task: Mapping, framework_id: str, info: Mapping) -> str:
    """TASK_ERROR's message for a task its framework's principal may not run: the user is
    the task's command's, else its executor's, else the framework's."""
    user = (
        (task.get("command") or {}).get("user")
        or ((task.get("executor") or {}).get("command") or {}).get("user")
        or info.get("user", "")
    )
    return (
        f"Principal '{principal or ''}' no authorized to launch task "
        f"{task['task_id']['value']} of framework {framework_id} under user '{user}'"
    )
