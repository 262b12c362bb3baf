"""Ctrl-C stops everything `calico-dcos local` and `calico-dcos devcluster` started.

Each command runs as a user runs it, in its own session (so that a signal to "its whole
process group" is what a terminal's Ctrl-C sends), with real etcd and the real process
executor; what is left afterwards is looked for with psutil: any process whose working
directory or command line is inside the run's work dir.
"""

import contextlib
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from tests.integration.test_commands import CLI, LOCAL_FAST


def processes_inside(workdir: Path, besides: tuple[int, ...] = ()) -> list[str]:
    """Live processes (not zombies) whose cwd or argv is inside `workdir`."""
    found, inside = [], str(workdir.resolve())
    for process in psutil.process_iter(["pid", "cwd", "cmdline", "status"]):
        info = process.info
        if info["pid"] in besides or info["status"] == psutil.STATUS_ZOMBIE:
            continue
        where = f"{info['cwd'] or ''} {' '.join(info['cmdline'] or [])}"
        if inside in where:
            found.append(f"{info['pid']} (cwd {info['cwd']}): {' '.join(info['cmdline'] or [])}")
    return found


def kill_leftovers(workdir: Path, besides: tuple[int, ...] = ()) -> None:
    """After a failed assertion: nothing of this test may outlive it."""
    for line in processes_inside(workdir, besides):
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(line.split()[0]), signal.SIGKILL)


def start_local(workdir: Path, ignore_sigint: bool = False, serve: bool = True) -> subprocess.Popen:
    """`local --serve` (or without `serve`) in its own session; `ignore_sigint`: as a shell
    that is not interactive starts a background command (SIGINT ignored), which must not
    matter."""

    def setup() -> None:
        if ignore_sigint:
            signal.signal(signal.SIGINT, signal.SIG_IGN)

    return subprocess.Popen(
        [*CLI, "local", *(["--serve"] if serve else []), "--agents", "1", "--public-agents", "1",
         "--workdir", str(workdir)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True, preexec_fn=setup, env={**os.environ, **LOCAL_FAST},
    )  # fmt: skip


def read_until(process: subprocess.Popen, wanted, timeout: float) -> list[str]:
    """Lines of `process`' output up to the first for which `wanted(line)` is true."""
    lines, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        assert line, "exited before that:\n" + "".join(lines)
        lines.append(line)
        if wanted(line):
            return lines
    raise AssertionError("not within the timeout:\n" + "".join(lines))


@pytest.mark.parametrize(
    "moment, to_group, signums, ignore_sigint",
    [
        ("rollout", False, [signal.SIGINT], False),
        ("rollout", True, [signal.SIGINT], True),
        # An impatient user: Ctrl-C, Ctrl-C, then kill; none may cut the clean-up short.
        ("rollout", True, [signal.SIGINT, signal.SIGINT, signal.SIGTERM], False),
        # Right after the start-up summary, before the progress display runs (the window
        # where a KeyboardInterrupt once escaped run_local with 130).
        ("startup", True, [signal.SIGINT, signal.SIGINT, signal.SIGTERM], False),
        ("converged", True, [signal.SIGINT], False),
        ("converged", False, [signal.SIGTERM], False),
    ],
)
def test_a_stop_signal_at_any_moment_leaves_no_process_of_local_behind(
    tmp_path, moment, to_group, signums, ignore_sigint
):
    workdir = tmp_path / "local"
    local = start_local(workdir, ignore_sigint)
    try:
        if moment == "rollout":
            # The first step done is an etcd-proxy (a long-running task), the rest to come.
            read_until(local, lambda line: re.match(r"\S+\s+etcd-proxy\s+done\s*$", line), 240)
            assert processes_inside(workdir, (local.pid,)), "no task process yet"
        elif moment == "startup":
            read_until(local, lambda line: "scheduler log:" in line, 240)
        else:
            read_until(local, lambda line: "still serving the status page" in line, 300)
        for signum in signums:
            if to_group:
                os.killpg(local.pid, signum)  # a terminal's Ctrl-C: the whole foreground group
            else:
                local.send_signal(signum)
            time.sleep(0.1)  # the user's pace between keys, not a wait for an event
        rest, _ = local.communicate(timeout=120)
        left = processes_inside(workdir)
    finally:
        local.kill()
        local.wait()
        kill_leftovers(workdir)

    assert left == [], rest
    assert local.returncode == 0, rest
    assert "\nstopped: " in f"\n{rest}", rest  # the clean-up ran to its end
    assert "Traceback" not in rest and "TypeError" not in rest, rest
    assert f"work dir kept: {workdir.resolve()}" in rest


def test_sigterm_before_the_end_exits_143_as_every_command_a_signal_ends(tmp_path):
    """The trial's case: `local` (no --serve) stopped by SIGTERM exited 130, SIGINT's code;
    a shell reports 128 + the signal's number (143), and so does `local` now."""
    workdir = tmp_path / "local"
    local = start_local(workdir, serve=False)
    try:
        read_until(local, lambda line: "scheduler log:" in line, 240)
        local.send_signal(signal.SIGTERM)
        rest, _ = local.communicate(timeout=120)
        left = processes_inside(workdir)
    finally:
        local.kill()
        local.wait()
        kill_leftovers(workdir)

    assert local.returncode == 128 + signal.SIGTERM == 143, rest
    assert left == [], rest
    assert "\nstopped: " in f"\n{rest}", rest


def test_a_stop_signal_stops_every_task_process_of_the_devcluster(tmp_path):
    """`calico-dcos devcluster` with a scheduler on it (`run`, as README's by-hand path):
    SIGINT to the devcluster stops every task process it started."""
    from tests.integration.harness import wait_until
    from tests.integration.test_commands import _get

    workdir = tmp_path / "dc"
    devcluster = subprocess.Popen(
        [*CLI, "devcluster", "--agents", "1", "--public-agents", "0", "--port", "0",
         "--no-etcd", "--workdir", str(workdir)],
        stdout=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    run = None
    try:
        printed = read_until(devcluster, lambda line: line.startswith("Ctrl-C here"), 120)
        command = next(line for line in printed if " run --options " in line).split()
        page = next(line for line in printed if "status page:" in line)
        port = int(page.split("http://127.0.0.1:")[1].split("/")[0])
        run = subprocess.Popen([*CLI, *command[1:]], stderr=subprocess.DEVNULL)
        wait_until(lambda: _get(port, "/v1/plan").status_code == 200, 180, "a complete plan")
        assert processes_inside(workdir, (devcluster.pid, run.pid)), "no task process"
        os.killpg(devcluster.pid, signal.SIGINT)
        devcluster.communicate(timeout=60)
        left = processes_inside(workdir, (run.pid,))
    finally:
        for process in (run, devcluster):
            if process is not None:
                process.kill()
                process.wait()
        kill_leftovers(workdir)

    assert left == []
    assert devcluster.returncode == 0


def test_local_removes_its_temporary_work_dir_at_the_end_unless_kept(tmp_path):
    """Each run's host roots and sandboxes weigh ~200 MB: a temp dir goes at the end.
    With --keep it stays: test_commands.py's three-agent end-to-end run shows that."""
    env = {**os.environ, "TMPDIR": str(tmp_path), **LOCAL_FAST}
    argv = [*CLI, "local", "--agents", "1", "--public-agents", "0"]

    removed = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)

    assert removed.returncode == 0, removed.stdout + removed.stderr
    assert removed.stdout.splitlines()[-1].startswith(f"work dir {tmp_path}/calico-dcos-local-")
    assert removed.stdout.splitlines()[-1].endswith(
        " removed (--keep keeps it: host roots, sandboxes, logs)"
    )
    assert not list(tmp_path.glob("calico-dcos-local-*"))
