"""The docker step's pure decisions: what to do from daemon.json, the running Docker and the
marker, and how dockerd's last words are picked out of its journal."""

from __future__ import annotations

import pytest

from calico_dcos.installer.docker import (
    LEAVE,
    NOTHING,
    REFUSE,
    RESTART,
    WRITE,
    decide,
    last_error,
    refused,
)

W, OTHER = "etcd://10.0.0.1:2379", "etcd://192.0.2.5:2379"


@pytest.mark.parametrize(
    ("in_file", "running", "pending", "force", "action"),
    [
        # Nothing in daemon.json: a store Docker runs with comes from a dockerd flag.
        (None, W, False, False, NOTHING),
        (None, OTHER, False, False, LEAVE),
        (None, OTHER, False, True, REFUSE),
        (None, OTHER, True, False, LEAVE),
        (None, "", False, False, WRITE),
        (None, None, False, False, WRITE),  # no daemon answered: the file decides
        # daemon.json already has the wanted store.
        (W, W, False, False, NOTHING),
        (W, None, False, False, NOTHING),
        (W, W, True, False, RESTART),  # a run cut off before Docker was back
        (W, "", False, False, RESTART),  # Docker started before the file was written
        (W, OTHER, False, False, LEAVE),  # a flag too, or changed since: a restart would fail
        # daemon.json has another store.
        (OTHER, OTHER, False, False, LEAVE),
        (OTHER, OTHER, False, True, WRITE),
        (OTHER, None, False, True, WRITE),
    ],
)
def test_decide(in_file, running, pending, force, action):
    assert decide(W, in_file, running, pending, force).action == action


@pytest.mark.parametrize(
    ("in_file", "running", "pending", "force", "action"),
    [
        (OTHER, OTHER, False, False, WRITE),  # the installer's own earlier value: replaced
        (OTHER, None, False, False, WRITE),
        (W, W, False, False, NOTHING),  # its own and the wanted one: done
        (None, OTHER, False, False, LEAVE),  # a flag is never the installer's
    ],
)
def test_decide_replaces_a_value_the_installer_wrote(in_file, running, pending, force, action):
    assert decide(W, in_file, running, pending, force, ours=True).action == action


def test_every_decision_names_the_stores_it_is_about():
    decision = decide(W, None, OTHER, False, True)

    assert OTHER in decision.why and W in decision.why and "\n" not in decision.why


@pytest.mark.parametrize(
    ("lines", "said"),
    [
        # dockerd refusing its configuration: its last line, as moby's main prints it.
        (
            [
                'time="2026-11-29T09:15:14Z" level=info msg="Starting up"',
                "unable to configure the Docker daemon with file /etc/docker/daemon.json: EOF",
            ],
            "unable to configure the Docker daemon with file /etc/docker/daemon.json: EOF",
        ),
        # A fatal logrus line: its message, unescaped.
        (
            ['time="t" level=fatal msg="Error starting daemon: \\"x\\" in use"'],
            'Error starting daemon: "x" in use',
        ),
        # Only info and warnings: nothing worth quoting.
        (['time="t" level=info msg="Loading containers: done."'], ""),
        (["-- No entries --"], ""),
        ([], ""),
    ],
)
def test_last_error_is_dockerds_last_words(lines, said):
    assert last_error(lines) == said


@pytest.mark.parametrize(
    ("why", "host_caused"),
    [
        ("systemctl restart docker failed", True),  # the job failed: dockerd exited
        ("docker failed to start", True),  # the unit went `failed`
        ("docker not stable within 300 s (last state: activating)", False),  # slow: retry
    ],
)
def test_only_a_docker_that_refused_to_start_is_the_hosts_problem(why, host_caused):
    """The words of restarts.Waits.restart (systemd.restart, systemd.wait_stable)."""
    assert refused(why) is host_caused
