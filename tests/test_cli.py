from click.testing import CliRunner

from calico_dcos.cli import COMMANDS, main


def test_every_listed_command_appears_in_help():
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for name in COMMANDS:
        assert name in result.output
