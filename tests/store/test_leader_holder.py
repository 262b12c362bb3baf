"""Who holds the leader lock, on both stores: `calico-dcos uninstall` refuses at once while
another scheduler runs on its state, naming it and what to do; a waiting scheduler says who
it waits for, again and again.

Real stores (SQLite in a directory, a real ZooKeeper) and real `calico-dcos` processes; the
running scheduler is given an unreachable master (127.0.0.1:1): it holds the lock and serves
its API before it subscribes, which is all the uninstall meets.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import types
from pathlib import Path

from calico_dcos import service as service_module
from tests.helpers.wait import wait_until
from tests.store.test_store_contract import HOLDER

CLI = str(Path(sys.executable).with_name("calico-dcos"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def held_by(url: str) -> subprocess.Popen:
    """A process that holds the lock of `url` until killed (tests/store/lock_holder.py)."""
    holder = subprocess.Popen(
        [sys.executable, str(HOLDER), url], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout.readline().strip() == "leader"
    return holder


def test_try_acquire_never_waits_and_the_holder_is_named_by_its_pid(backend):
    holder = held_by(backend.url)
    try:
        store = backend.open()
        assert store.try_acquire_leadership(lambda: None) is False
        named = store.leader_holder()
        where = "this host" if backend.kind == "file" else f"host {socket.gethostname()}"
        assert named == f"pid {holder.pid} on {where}"
    finally:
        holder.kill()
        holder.wait()
    wait_until(lambda: store.try_acquire_leadership(lambda: None), 15, "the dead holder's lock")
    assert backend.open().leader_holder() == named.replace(str(holder.pid), str(os.getpid()))
    store.release_leadership()
    assert backend.open().leader_holder() is None


def test_a_waiting_scheduler_says_again_and_again_who_holds_the_lock(backend, monkeypatch, caplog):
    leader, waiting = backend.open(), backend.open()
    leader.acquire_leadership(lambda: None)
    monkeypatch.setattr(service_module, "LEADER_WAIT_REPORT_SECONDS", 0.05)
    late = types.SimpleNamespace(waiting_for=service_module.waiting_words(backend.url, None))
    led = threading.Event()
    caplog.set_level(logging.INFO, logger="calico_dcos.service")

    def lead() -> None:
        service_module._wait_for_leadership(waiting, lambda: None, backend.url, late)
        led.set()

    threading.Thread(target=lead, daemon=True).start()

    def said() -> list[str]:
        messages = [record.getMessage() for record in caplog.records]
        return [message for message in messages if "waiting to be the leader" in message]

    wait_until(lambda: len(said()) >= 3, 15, "the waiting scheduler to say so three times")
    assert not led.is_set()
    assert f"holds its lock (pid {os.getpid()} on " in said()[-1]
    assert late.waiting_for.startswith(f"waiting to be the leader of {backend.url}: another")

    leader.release_leadership()
    assert led.wait(15), "the waiting scheduler never took the lock"
    assert backend.open().try_acquire_leadership(lambda: None) is False


def test_uninstall_while_a_scheduler_runs_on_the_same_state_refuses_at_once(backend, tmp_path):
    """The trial's case: `run` on the state, then `uninstall --revert-hosts --options …` with
    the same options (the same API port). It used to fail on the port ("address already in
    use") or, with another port, wait silently for the lock; it now names the scheduler that
    holds the lock and what to do, and leaves it running."""
    options = tmp_path / "options.json"
    options.write_text(f'{{"service": {{"state": "{backend.url}", "api_port": {free_port()}}}}}')
    env = {**os.environ, "CALICO_SERVICE_MASTER": "127.0.0.1:1"}
    run = subprocess.Popen(
        [CLI, "run", "--options", str(options)], env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        seen = []
        while not any("API on port" in line for line in seen):
            line = run.stderr.readline()
            assert line, "".join(seen)
            seen.append(line)
        for port in ("", "0"):  # the same port as `run`, and any port
            uninstall = subprocess.run(
                [CLI, "uninstall", "--revert-hosts", "--options", str(options)],
                env={**env, **({"CALICO_SERVICE_API_PORT": port} if port else {})},
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert uninstall.returncode == 1, uninstall.stdout + uninstall.stderr
            where = "this host" if backend.kind == "file" else f"host {socket.gethostname()}"
            assert (
                f"calico-dcos: another scheduler holds the leader lock of {backend.url} "
                f"(pid {run.pid} on {where})" in uninstall.stderr
            ), uninstall.stderr
            assert "stop that one first" in uninstall.stderr
            assert "dcos package uninstall calico-dcos" in uninstall.stderr
            assert ("until its session ends" in uninstall.stderr) == (backend.kind == "zk")
            assert "cannot serve the API" not in uninstall.stderr
            assert "Traceback" not in uninstall.stderr
        assert run.poll() is None, "the running scheduler was disturbed"
    finally:
        run.send_signal(signal.SIGTERM)
        run.communicate(timeout=30)
