"""The set-up behind `make local` and `make test` (issue 20): quiet unless a step fails, each
target installs what it needs and no more, and the project's own packaging gives setuptools
nothing to warn about."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

from setuptools.config.pyprojecttoml import apply_configuration
from setuptools.dist import Distribution

ROOT = Path(__file__).resolve().parents[2]
QUIETLY = ROOT / "scripts" / "quietly"
SYSTEM_DEPS = ROOT / "scripts" / "system-deps.sh"


def test_pyproject_gives_setuptools_nothing_to_warn_about(monkeypatch):
    monkeypatch.chdir(ROOT)  # the readme and package paths are relative to the project
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dist = apply_configuration(Distribution(), ROOT / "pyproject.toml")
    assert dist.metadata.license_expression == "Apache-2.0"


def quietly(tmp_path: Path, *command: str) -> subprocess.CompletedProcess:
    log = tmp_path / "setup.log"
    return subprocess.run(
        [str(QUIETLY), str(log), "a step", *command], capture_output=True, text=True, timeout=30
    )


def test_a_step_that_succeeds_prints_one_line_and_keeps_its_output_in_the_log(tmp_path):
    noisy = "for i in $(seq 300); do echo progress $i; done; echo warning >&2"

    result = quietly(tmp_path, "bash", "-c", noisy)

    assert result.returncode == 0
    assert result.stdout == "a step ... ok\n"
    assert result.stderr == ""
    log = (tmp_path / "setup.log").read_text()
    assert "progress 300" in log and "warning" in log


def test_a_step_that_fails_shows_the_end_of_its_output_and_its_exit_status(tmp_path):
    (tmp_path / "setup.log").write_text("an earlier step's output\n")
    failing = "for i in $(seq 100); do echo line $i; done; echo 'error: no compiler' >&2; exit 3"

    result = quietly(tmp_path, "bash", "-c", failing)

    assert result.returncode == 3
    lines = result.stdout.splitlines()
    assert lines[0] == "a step ... FAILED (exit 3)"
    assert str(tmp_path / "setup.log") in lines[1]
    assert lines[-1] == "error: no compiler"
    assert "an earlier step's output" not in result.stdout
    assert len(lines) <= 42


def would_install(tmp_path: Path, target: str) -> list[str]:
    """What system-deps.sh would install on a machine with Python and gcc and nothing else."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "python3").unlink(missing_ok=True)
    (bin_dir / "python3").symlink_to(sys.executable)
    (bin_dir / "gcc").write_text("#!/bin/sh\n")  # only looked up, never run
    (bin_dir / "gcc").chmod(0o755)
    result = subprocess.run(
        ["/bin/bash", str(SYSTEM_DEPS), target],
        env={"PATH": str(bin_dir), "DRY_RUN": "1", "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("would install:")
    return result.stdout.split(":", 1)[1].split()


def test_local_needs_etcd_only_and_the_tests_everything(tmp_path):
    assert would_install(tmp_path, "build") == []
    assert would_install(tmp_path, "local") == ["etcd-server"]
    wanted = set(would_install(tmp_path, "test"))
    assert {"etcd-server", "etcd-client", "default-jre-headless", "chromium"} <= wanted
    assert "zookeeperd" not in wanted  # Debian's service package: it would start a server


def test_make_local_sets_up_only_what_local_needs_and_make_test_everything():
    def recipe(target: str) -> str:
        return subprocess.run(
            ["make", "-n", "-B", target, "VENV=/nonexistent/venv"],
            cwd=ROOT, capture_output=True, text=True, timeout=30, check=True,
        ).stdout  # fmt: skip

    local, test = recipe("local"), recipe("test")
    assert "system-deps.sh build" in local and "system-deps.sh local" in local
    assert "system-deps.sh test" not in local and ".[test]" not in local
    assert "system-deps.sh build" in test and "system-deps.sh test" in test
    assert ".[test]" in test and "pytest" in test
