"""Who may report for an agent: only the installer task the scheduler launched there.

`POST /v1/agents/<id>/report` takes an agent out of the plan ("Calico already present"), so
it must not be open to whoever can reach the scheduler. The scheduler holds one random key
(`REPORT_KEY_BYTES` bytes, kept in the state store under the meta key `report-key` so that a
restarted scheduler still accepts reports of tasks its predecessor launched). An agent's
report token is HMAC-SHA256(key, agent ID); the scheduler puts it in the environment of the
installer tasks it launches on that agent (`REPORT_TOKEN_ENV`), and the installer sends it as
`Authorization: Bearer <token>`. A token is good for one agent only, and is compared in
constant time (`hmac.compare_digest`).

The token is added to a TaskInfo by the scheduler's adapter at launch (`with_report_token`),
not by the pure plan: it is in no agent record, fingerprint or plan view. Whoever can read
the state store can read the key; protect ZooKeeper with `service.zk_credentials_file`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from typing import Any

from calico_dcos.store import StateCorrupt

META_KEY = "report-key"
REPORT_KEY_BYTES = 32
REPORT_URL_ENV = "CALICO_DCOS_REPORT_URL"  # the installer reports only where this is set
REPORT_TOKEN_ENV = "CALICO_DCOS_REPORT_TOKEN"  # noqa: S105 (a variable name, not a secret)
_HEX_KEY = re.compile(rf"[0-9a-f]{{{2 * REPORT_KEY_BYTES}}}")


class ReportKey:
    """The scheduler's key for agents' report tokens. Never logged (`repr` hides it)."""

    def __init__(self, key: bytes) -> None:
        if len(key) != REPORT_KEY_BYTES:
            raise ValueError(f"a report key has {REPORT_KEY_BYTES} bytes, not {len(key)}")
        self._key = key

    def __repr__(self) -> str:
        return "ReportKey(***)"

    @classmethod
    def load_or_create(cls, store: Any) -> ReportKey:
        """The stored key, or a new random one, stored (only the leader calls this).

        Raises StateCorrupt when the stored document is not a key: a key replaced silently
        would refuse every report of the tasks already running.
        """
        document = store.get_meta(META_KEY)
        if document is None:
            key = cls(secrets.token_bytes(REPORT_KEY_BYTES))
            store.put_meta(META_KEY, {"key": key._key.hex()})
            return key
        value = document.get("key")
        if not isinstance(value, str) or not _HEX_KEY.fullmatch(value):
            raise StateCorrupt(
                f"meta key {META_KEY}", f"expected {REPORT_KEY_BYTES} bytes as lowercase hex"
            )
        return cls(bytes.fromhex(value))

    def token(self, agent_id: str) -> str:
        """The agent's report token: HMAC-SHA256(key, agent ID), as 64 hex digits."""
        return hmac.new(self._key, agent_id.encode(), hashlib.sha256).hexdigest()

    def verify(self, agent_id: str, given: str | None) -> bool:
        """True only for the agent's own token (constant-time comparison)."""
        if given is None:
            return False
        expected = self.token(agent_id).encode()
        return hmac.compare_digest(expected, given.encode("utf-8", "surrogateescape"))


def with_report_token(task_info: dict, key: ReportKey) -> dict:
    """The TaskInfo with the agent's report token in its command's environment, if the task
    reports at all (its environment names `REPORT_URL_ENV`); a copy, the input unchanged."""
    command = task_info.get("command") or {}
    variables = (command.get("environment") or {}).get("variables") or []
    if not any(v.get("name") == REPORT_URL_ENV for v in variables):
        return task_info
    token = {"name": REPORT_TOKEN_ENV, "value": key.token(task_info["agent_id"]["value"])}
    kept = [v for v in variables if v.get("name") != REPORT_TOKEN_ENV]
    environment = {**command["environment"], "variables": [*kept, token]}
    return {**task_info, "command": {**command, "environment": environment}}
