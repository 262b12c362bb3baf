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


def test_devcluster_refuses_a_negative_agent_count():
    result = CliRunner().invoke(main, ["devcluster", "--agents", "-1"])
    assert result.exit_code == 2
    assert "Invalid value for '--agents'" in result.output
