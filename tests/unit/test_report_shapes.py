"""The installer's warning report as the scheduler's API takes it (`api.parse_warning`):
bounded, redacted, refused with a reason when malformed."""

from __future__ import annotations

import pytest

from calico_dcos import api

TASK = "calico-docker__5f1c-S0__4f2a91c0__2"


def test_a_warning_is_taken_on_one_line_and_without_passwords():
    words = "daemon.json has cluster-store etcd://u:pw@192.0.2.5:2379,\n not …"
    body = {"step": "docker", "task_id": TASK, "warning": words}
    assert api.parse_report("5f1c-S0", body) == {
        "agent_id": "5f1c-S0",
        "step": "docker",
        "task_id": TASK,
        "warning": "daemon.json has cluster-store etcd://u:***@192.0.2.5:2379, not …",
    }


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"step": "docker", "task_id": TASK, "warning": ""}, "warning: expected words"),
        ({"step": "docker", "task_id": TASK, "warning": "x" * 1101}, "at most 1100"),
        ({"step": "docker", "task_id": "", "warning": "w"}, "task_id"),
        ({"step": "nope", "task_id": TASK, "warning": "w"}, "step 'nope'"),
        ({"step": "docker", "task_id": TASK, "warning": "w", "extra": 1}, "unknown report"),
    ],
)
def test_a_malformed_warning_is_refused_saying_why(body, words):
    with pytest.raises(ValueError, match=words):
        api.parse_report("5f1c-S0", body)
