"""`make dist` is as quiet as `make`'s other steps: pip's and shiv's lines go to a log, and
only a failure prints them (the end, and where the rest is)."""

import sys

import pytest

from scripts.dist import quietly


def test_a_step_that_succeeds_prints_nothing_and_logs_everything(tmp_path, capsys):
    log = tmp_path / "build" / "dist.log"
    noisy = "for i in range(39): print(f\"WARNING: Location 'file:///x/{i}' is ignored\")"

    quietly([sys.executable, "-c", noisy], "the zipapp", log)

    assert capsys.readouterr().out == ""
    lines = log.read_text().splitlines()
    assert lines[0].startswith("== the zipapp: ")
    assert sum(line.startswith("WARNING: Location") for line in lines) == 39


def test_a_step_that_fails_prints_its_last_lines_and_the_log_then_exits_with_its_status(
    tmp_path, capsys
):
    log = tmp_path / "dist.log"
    log.write_text("an earlier run's line\n")
    failing = "import sys; print('collecting'); print('no matching distribution'); sys.exit(3)"

    with pytest.raises(SystemExit) as stopped:
        quietly([sys.executable, "-c", failing], "the zipapp (shiv, pip)", log)

    out = capsys.readouterr().out
    assert stopped.value.code == 3
    assert (
        out.splitlines()[0]
        == f"the zipapp (shiv, pip) FAILED (exit 3); its last lines (all of them: {log}):"
    )
    assert out.splitlines()[-2:] == ["collecting", "no matching distribution"]
    assert "an earlier run's line" not in out
