"""`calico-dcos status` and `calico-dcos plan …` as a person runs them, against a real scheduler."""

import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from calico_dcos.cli import main
from tests.api.operator_harness import operator_service
from tests.integration.harness import converged, running_cluster, wait_until

TOKEN = "cli-token"


@pytest.fixture(scope="module")
def rollout(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("operator-cli")
    with (
        running_cluster(agents=1, public_agents=1) as cluster,
        operator_service(cluster, workdir, TOKEN) as (service, url),
    ):
        wait_until(converged(service), 20, "convergence")
        yield cluster, service.scheduler, url


def calico_dcos(*args: str) -> subprocess.CompletedProcess:
    """The command in its own process, as a person runs it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALICO_DCOS_")}
    return subprocess.run(
        [sys.executable, "-m", "calico_dcos.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )


def in_process(*args: str, token: str | None = None):
    """The same command in this process (faster), with $CALICO_DCOS_API_TOKEN if given."""
    env = {"CALICO_DCOS_API_TOKEN": token, "CALICO_DCOS_URL": None}
    return CliRunner().invoke(main, list(args), env=env)


def test_status_prints_conditions_progress_and_a_row_per_agent(rollout):
    cluster, _, url = rollout
    result = calico_dcos("status", "--url", url)

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "calico: 2 of 2 agents done"
    assert lines[1].split() == ["Available:", "yes", "Progressing:", "no", "Degraded:", "no"]
    assert "Restart slots: 0 of 1 in use" in lines
    assert any(line.startswith("Warning: node.ignore_loose_rpf is on") for line in lines)
    header = next(line for line in lines if line.startswith("AGENT"))
    assert header.split() == ["AGENT", "DOCKER", "CNI", "LIBNETWORK", "NODE", "STATUS"]
    for agent in cluster.agents:
        row = next(line for line in lines if line.startswith(agent.hostname + " "))
        assert row.split()[1:] == ["COMPLETE"] * 5


def test_status_names_the_url_it_cannot_reach():
    result = in_process("status", "--url", "http://127.0.0.1:9")
    assert result.exit_code == 1
    assert "cannot reach the scheduler at http://127.0.0.1:9" in result.output


def test_plan_show_exits_0_when_complete(rollout):
    _, _, url = rollout
    result = in_process("plan", "show", "--url", url)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == "deploy (parallel): COMPLETE   Degraded: no"


def test_plan_interrupt_needs_the_token_and_continue_takes_it_from_the_environment(
    rollout, tmp_path
):
    _, scheduler, url = rollout
    refused = in_process("plan", "interrupt", "--url", url)
    assert refused.exit_code == 1
    assert "the scheduler needs an API token (the one in its service.api_token_file)" in (
        refused.output
    )
    assert "--token-file FILE (a file holding it), or the token itself in " in refused.output
    assert not scheduler.plan.interrupted

    # The trial: a wrong token was answered as if none had been given.
    wrong = in_process("plan", "interrupt", "--url", url, token="not-the-token")
    assert wrong.exit_code == 1
    assert "the scheduler refused the API token from $CALICO_DCOS_API_TOKEN" in wrong.output
    assert "not-the-token" not in wrong.output
    assert not scheduler.plan.interrupted

    # The trial: the token's file's path where the token belongs.
    path = in_process("plan", "interrupt", "--url", url, token="/tmp/t8/token")
    assert path.exit_code == 1
    assert (
        "CALICO_DCOS_API_TOKEN holds the token itself, not a file's path: use --token-file "
        "/tmp/t8/token"
    ) in path.output
    assert not scheduler.plan.interrupted

    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    done = in_process("plan", "interrupt", "--url", url, "--token-file", str(token_file))
    assert done.output.startswith("Received cmd: interrupt: the plan interrupted by an operator")
    assert scheduler.plan.interrupted

    resumed = in_process("plan", "continue", "--url", url, token=TOKEN)
    assert resumed.exit_code == 0, resumed.output
    assert not scheduler.plan.interrupted


def test_plan_restart_needs_a_phase_and_a_step():
    result = in_process("plan", "restart", "--phase", "agent-1")
    assert result.exit_code == 2
    assert "--step" in result.output


@pytest.mark.parametrize("command", [["status"], ["plan", "show"], ["plan", "interrupt"]])
def test_a_url_without_its_scheme_says_add_http(command):
    """The trial's `status --url 127.0.0.1:38833` got requests' "No connection adapters"."""
    result = in_process(*command, "--url", "127.0.0.1:38833")
    assert result.exit_code == 2
    assert "'--url': '127.0.0.1:38833' has no scheme: add http://" in result.output
    assert "--url http://127.0.0.1:38833" in result.output


@pytest.mark.parametrize(
    ("url", "words"),
    [
        # the trial's: a suggestion of http://http:/… was wrong
        ("http:/127.0.0.1:37827", "the scheme 'http:/' is malformed: write http://HOST:PORT "
         "(--url http://127.0.0.1:37827)"),
        ("http//127.0.0.1:80", "the scheme 'http//' is malformed: write http://HOST:PORT "
         "(--url http://127.0.0.1:80)"),
        ("https:127.0.0.1:80", "(--url https://127.0.0.1:80)"),
        ("htp://127.0.0.1", "the scheme 'htp' is misspelled (--url http://127.0.0.1)"),
        ("htps://h:1", "(--url https://h:1)"),
        ("127.0.0.1:80/", "has no scheme: add http:// (--url http://127.0.0.1:80/)"),
        ("http:///h:1", "has no host (--url http://h:1)"),
        # no sure fix: say what is wrong, suggest no URL of its own
        ("http:8080", "the scheme 'http:' is malformed: write http://HOST:PORT "
         "(e.g. --url http://127.0.0.1:8080)"),
        ("/h:1", "has no scheme: add http:// (e.g. --url http://127.0.0.1:8080)"),
    ],
)  # fmt: skip
def test_a_malformed_scheme_gets_the_url_meant_or_no_suggestion(url, words):
    result = in_process("status", "--url", url)
    assert result.exit_code == 2
    assert words in " ".join(result.output.split())
    assert "http://http" not in result.output


@pytest.mark.parametrize(
    ("token", "shown"),
    [("/tmp/t8/token", "/tmp/t8/token"), ("./token", "./token"), ("~/token", "~/token"),
     ("eyJhbGciOiJSUzI1NiJ9.e30.c2ln", None)],
)  # fmt: skip
def test_a_token_written_as_a_path_is_recognised(token, shown):
    from calico_dcos.commands.operator import token_as_a_path

    assert token_as_a_path(token) == shown


def test_a_bare_token_that_names_a_file_is_a_path_but_never_echoed(tmp_path, monkeypatch):
    from calico_dcos.commands.operator import token_as_a_path

    monkeypatch.chdir(tmp_path)
    (tmp_path / "hunter2token").write_text(TOKEN)
    assert token_as_a_path("hunter2token") == ""  # a path, but shown as words only
    assert token_as_a_path("not-a-file") is None


def test_a_url_from_the_environment_names_the_variable():
    result = CliRunner().invoke(main, ["status"], env={"CALICO_DCOS_URL": "ftp://h:1"})
    assert result.exit_code == 2
    assert "http:// or https:// (CALICO_DCOS_URL=http://h:1)" in result.output


def test_the_token_help_says_the_variable_holds_the_token_not_a_path():
    result = in_process("plan", "interrupt", "--help")
    words = " ".join(result.output.split())
    assert "the token itself is taken from the environment variable CALICO_DCOS_API_TOKEN" in (
        words
    )
    assert "default: $CALICO_DCOS_API_TOKEN" not in words
