from click.testing import CliRunner

from calico_dcos.cli import COMMANDS, main


def test_every_listed_command_appears_in_help():
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for name in COMMANDS:
        assert name in result.output


def _help(*args: str) -> str:
    result = CliRunner().invoke(main, [*args, "--help"])
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())


def test_every_option_of_every_command_says_what_it_is_for():
    from click import Group

    def commands(group, path):
        for name in group.list_commands(None):
            command = group.get_command(None, name)
            if isinstance(command, Group):
                yield from commands(command, [*path, name])
            elif name != "installer":  # argparse's own help, tested below
                yield [*path, name], command

    bare = [
        f"{' '.join(path)} {param.opts[0]}"
        for path, command in commands(main, [])
        for param in command.params
        if param.param_type_name == "option" and not param.help
    ]
    assert bare == []


def test_token_file_and_allocation_interval_have_help():
    assert "service.api_token_file" in _help("plan", "restart")
    assert "offer rounds" in _help("bench")
    assert "offer rounds" in _help("devcluster")


def test_installer_help_names_the_command_it_was_run_as():
    result = CliRunner().invoke(main, ["installer", "--help"])
    assert result.exit_code == 0
    assert result.output.startswith("usage: calico-dcos installer ")
    assert "installer.pyz" not in result.output


def test_installer_help_describes_every_command_on_its_own_line():
    """The trial's case: `uninstall`'s description was printed on the line below its name
    (argparse's column for it was two short), which read as no description; each command's
    own --help had none at all."""
    from calico_dcos.installer.cli import COMMANDS

    lines = CliRunner().invoke(main, ["installer", "--help"]).output.splitlines()
    for name, (description, _, _) in COMMANDS.items():
        assert any(line.split() == [name, *description.split()] for line in lines), (name, lines)
    own = CliRunner().invoke(main, ["installer", "uninstall", "--help"])
    assert own.exit_code == 0 and "\nput back what this installer changed\n" in own.output


def test_devcluster_refuses_a_negative_agent_count():
    result = CliRunner().invoke(main, ["devcluster", "--agents", "-1"])
    assert result.exit_code == 2
    assert "Invalid value for '--agents'" in result.output


def test_uninstall_help_says_which_options_and_how_revert_hosts_relates_to_the_option():
    text = _help("uninstall")
    assert "the same options `calico-dcos run` used" in text
    assert "service.uninstall_revert_hosts is its counterpart for DC/OS' package manager" in text


def test_run_help_says_the_options_file_is_optional():
    text = _help("run")
    assert "Optional: without it, each option is its CALICO_* environment variable or its " in text


def test_plan_show_exit_statuses_are_distinct_from_usage_and_unreachable():
    from calico_dcos.commands.operator import plan_exit_status

    statuses = {
        plan_exit_status({"status": "COMPLETE", "errors": []}),
        plan_exit_status({"status": "IN_PROGRESS", "errors": []}),
        plan_exit_status({"status": "ERROR", "errors": ["agent-1: node: bad"]}),
    }
    assert statuses == {0, 3, 4}  # 1: cannot ask the scheduler; 2: click's usage errors
    text = _help("plan", "show")
    assert "0 complete, 3 in progress, 4 with errors" in text
    assert "5 degraded" in text and "6 waiting for the operator" in text


def test_status_without_a_scheduler_says_how_to_name_one():
    result = CliRunner().invoke(
        main, ["status"], env={"CALICO_DCOS_URL": "http://127.0.0.1:9"}
    )  # port 9 (discard): nothing listens
    assert result.exit_code == 1
    assert "cannot reach the scheduler at http://127.0.0.1:9" in result.output
    assert "--url http://HOST:PORT or $CALICO_DCOS_URL" in result.output


def test_force_complete_help_says_the_step_shows_forced_and_how_to_clear_it():
    """The FORCED mark it leaves was explained nowhere in the command's own help."""
    words = " ".join(_help("plan", "force-complete").split())
    assert "FORCED" in words and "its task may never have run" in words
    assert "calico-dcos plan restart" in words
    assert "done already" in words
    assert "acknowledges the warning" in words and "no longer makes the plan Degraded" in words
