"""Who got which offer and how it ended, as the devcluster's timeline tells it (`offer`,
`accept`, `decline`, `rescind` entries), and the `calico-dcos devcluster` options that make
offers time out and synthetic steps slow. The scheduler here is `RawScheduler` (plain HTTP),
so the calls' bodies, filters included, are exactly the test's."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest
import requests
from click.testing import CliRunner

from calico_dcos.cli import main
from tests.helpers.devcluster import running_cluster, wait_until
from tests.helpers.raw_client import RawScheduler


def entries(cluster, kind: str) -> list[dict]:
    return [e for e in cluster.timeline() if e["event"] == kind]


def test_offer_decline_and_accept_entries_name_the_framework_and_the_filter(cluster):
    with RawScheduler(cluster.base_url) as raw:
        first, second, *_ = raw.wait_for(lambda e: e["type"] == "OFFERS")["offers"]["offers"]
        raw.call("DECLINE", {"offer_ids": [first["id"]]})  # no filters: Mesos' 5 s
        raw.call("ACCEPT", {"offer_ids": [second["id"]], "operations": [],
                            "filters": {"refuse_seconds": 30}})  # fmt: skip
        wait_until(lambda: entries(cluster, "decline") and entries(cluster, "accept"))

    offer = next(e for e in entries(cluster, "offer") if e["offer_id"] == first["id"]["value"])
    assert offer["framework_id"] == raw.framework_id
    assert (offer["cpus"], offer["mem"]) == (4.0, 16384.0)  # DEFAULT_RESOURCES, all free
    [decline] = entries(cluster, "decline")
    assert decline["framework_id"] == raw.framework_id
    assert (decline["offer_id"], decline["refuse_seconds"]) == (first["id"]["value"], 5.0)
    [accept] = entries(cluster, "accept")
    assert accept["offer_ids"] == [second["id"]["value"]]
    assert (accept["framework_id"], accept["refuse_seconds"]) == (raw.framework_id, 30.0)


def test_a_timed_out_offer_is_rescinded_and_the_timeline_says_why():
    with running_cluster(offer_timeout=0.3) as cluster, RawScheduler(cluster.base_url) as raw:
        offer = raw.wait_for(lambda e: e["type"] == "OFFERS")["offers"]["offers"][0]
        raw.wait_for(lambda e: e["type"] == "RESCIND")
        wait_until(lambda: entries(cluster, "rescind"))
        rescind = next(
            e for e in entries(cluster, "rescind") if e["offer_id"] == offer["id"]["value"]
        )
    assert rescind["reason"] == "OFFER_TIMEOUT" and rescind["sent"] is True
    assert rescind["framework_id"] == raw.framework_id


def test_offers_that_end_with_their_agent_or_framework_are_in_the_timeline(cluster):
    """A restarting agent's offers are rescinded (RESCIND sent); a disconnected framework's
    are discarded with no event, since its stream is gone (`Master::deactivate`)."""
    agent_id = cluster.agents[0].agent_id
    with RawScheduler(cluster.base_url) as raw:
        raw.wait_for(lambda e: e["type"] == "OFFERS")
        cluster.restart_agent(agent_id)
        raw.wait_for(lambda e: e["type"] == "RESCIND")
        cluster.disconnect_framework(raw.framework_id)
        wait_until(lambda: len({e["reason"] for e in entries(cluster, "rescind")}) == 2)
    ends = {(e["reason"], e["sent"]) for e in entries(cluster, "rescind")}
    assert ends == {("AGENT_DISCONNECTED", True), ("FRAMEWORK_DISCONNECTED", False)}
    restarted = [e for e in entries(cluster, "rescind") if e["reason"] == "AGENT_DISCONNECTED"]
    assert {e["agent_id"] for e in restarted} == {agent_id}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--offer-timeout", "0"], "'--offer-timeout': must be a number of seconds greater"),
        (["--offer-timeout", "-2"], "'--offer-timeout': must be a number of seconds greater"),
        (["--synthetic-step-seconds", "0.5"], "add --executor synthetic"),
        (["--synthetic-restart-seconds", "1"], "add --executor synthetic"),
        (["--executor", "synthetic", "--synthetic-step-seconds", "0"], "greater than zero"),
        (["--executor", "synthetic", "--synthetic-restart-seconds", "dns=1"],
         "'--synthetic-restart-seconds': the one-shot steps are docker, cni"),
        (["--executor", "synthetic", "--synthetic-restart-seconds", "docker=-1"],
         "'--synthetic-restart-seconds': docker=-1: '-1': seconds must be at least 0"),
        # a 0 s allocation interval would run offer rounds back to back, a CPU core for good
        (["--allocation-interval", "0"], "'--allocation-interval': '0': seconds must be more"),
        (["--allocation-interval", "-1"], "'--allocation-interval': '-1': seconds must be more"),
        (["--allocation-interval", "nan"], "'--allocation-interval': expected a finite number"),
        (["--agent-ping-timeout", "-1"], "'--agent-ping-timeout': '-1': seconds must be at least"),
        (["--agent-ping-timeout", "inf"], "'--agent-ping-timeout': expected a finite number"),
        (["--offer-timeout", "nan"], "'--offer-timeout': must be a number of seconds greater"),
    ],
)  # fmt: skip
def test_devcluster_options_are_checked_before_anything_starts(argv, message):
    result = CliRunner().invoke(main, ["devcluster", "--port", "0", *argv])
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_devcluster_command_rescinds_offers_after_its_offer_timeout(tmp_path):
    """By hand as README shows it: the command's master rescinds an unanswered offer, and
    `GET /devcluster/timeline?event=rescind` tells who lost it and why."""
    argv = [
        sys.executable, "-m", "calico_dcos.cli", "devcluster", "--port", "0",
        "--executor", "synthetic", "--synthetic-step-seconds", "0.5",
        "--synthetic-restart-seconds", "docker=2,cni=1", "--offer-timeout", "0.3",
        "--agents", "1", "--public-agents", "0", "--no-etcd", "--workdir", str(tmp_path),
    ]  # fmt: skip
    with subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) as command:
        try:
            url = "http://" + command.stdout.readline().split()[2]
            with RawScheduler(url) as raw:
                raw.wait_for(lambda e: e["type"] == "RESCIND")
                timeline = f"{url}/devcluster/timeline?event=rescind"
                [rescind, *_] = wait_until(lambda: requests.get(timeline, timeout=5).json())
        finally:
            command.send_signal(signal.SIGINT)
            assert command.wait(10) == 0
    assert (rescind["reason"], rescind["framework_id"]) == ("OFFER_TIMEOUT", raw.framework_id)


def test_devcluster_command_arms_the_deny_faults_before_any_scheduler_asks(tmp_path):
    """`--deny-view-flags` and `--deny-view-framework`: the master refuses GET_FLAGS (403)
    and lists no framework from its first answer on, and the banner says so."""
    argv = [
        sys.executable, "-m", "calico_dcos.cli", "devcluster", "--port", "0",
        "--executor", "synthetic", "--agents", "1", "--public-agents", "0", "--no-etcd",
        "--workdir", str(tmp_path), "--deny-view-flags", "--deny-view-framework",
    ]  # fmt: skip
    with subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) as command:
        try:
            url = "http://" + command.stdout.readline().split()[2]
            printed = []
            while not printed or not printed[-1].startswith("Ctrl-C here"):
                printed.append(command.stdout.readline())
                assert printed[-1], "".join(printed)
            api = f"{url}/api/v1"
            denied = requests.post(api, json={"type": "GET_FLAGS"}, timeout=5)
            with RawScheduler(url):
                listed = requests.post(api, json={"type": "GET_FRAMEWORKS"}, timeout=5).json()
        finally:
            command.send_signal(signal.SIGINT)
            assert command.wait(10) == 0
    assert (denied.status_code, denied.text) == (403, "403 Forbidden.")
    assert listed["get_frameworks"].get("frameworks", []) == []
    assert "Fault armed: GET_FLAGS is refused 403 (no VIEW_FLAGS)\n" in printed
    assert "Fault armed: GET_FRAMEWORKS lists no framework (no VIEW_FRAMEWORK)\n" in printed


def test_devcluster_strict_writes_what_run_needs(tmp_path):
    """`--strict`: the options file for `run` holds the https:// master, the CA bundle and a
    service account's credential (made as `local --strict` makes it, readable only by its
    owner), and the command prints where they are."""
    import yaml

    argv = [
        sys.executable, "-m", "calico_dcos.cli", "devcluster", "--port", "0", "--strict",
        "--executor", "synthetic", "--agents", "1", "--public-agents", "0", "--no-etcd",
        "--workdir", str(tmp_path),
    ]  # fmt: skip
    with subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) as command:
        try:
            printed = []
            while not printed or not printed[-1].startswith("Ctrl-C here"):
                printed.append(command.stdout.readline())
                assert printed[-1], "".join(printed)
        finally:
            command.send_signal(signal.SIGINT)
            assert command.wait(10) == 0
    service = yaml.safe_load((tmp_path / "scheduler-options.yaml").read_text())["service"]
    credential = tmp_path / "scheduler" / "service-account.json"
    assert service["strict"] is True and service["master"].startswith("https://127.0.0.1:")
    assert service["service_account_credential_file"] == str(credential)
    assert (credential.stat().st_mode & 0o777) == 0o600
    [line] = [line for line in printed if line.startswith("Strict mode:")]
    assert service["ca_bundle"] in line and str(credential) in line
    # what the scheduler will learn with GET_FLAGS, said where the cluster says what it runs
    assert (
        "Allocation interval: 1 s (offer rounds; the scheduler learns it with GET_FLAGS)\n"
        in printed
    )
