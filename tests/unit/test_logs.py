"""The scheduler's log set-up (`calico_dcos.logs`): the same lines as the standard
library's formatter, in a real file; the lines of a thread that hands over (pymesos' event
thread) go out together at its hand-over, at once for a warning or another thread's line,
bounded, and at exit; other threads' lines as they are logged, tracebacks included."""

from __future__ import annotations

import logging
import queue
import threading

import pytest

from calico_dcos import logs
from calico_dcos.pipeline import handed_over


def record(created: float) -> logging.LogRecord:
    made = logging.LogRecord("calico_dcos.scheduler", logging.INFO, "", 0, "%s up", ("x",), None)
    made.created, made.msecs = created, (created - int(created)) * 1000
    return made


@pytest.mark.parametrize("created", [1_790_000_000.001, 1_790_000_000.999, 1_790_000_001.5])
def test_a_line_reads_as_the_standard_formatters(created):
    standard = logging.Formatter(logs.FORMAT)
    cheap = logs.SecondFormatter()
    cheap.format(record(created - 1))  # another second made before: replaced, not reused

    assert cheap.format(record(created)) == standard.format(record(created))


@pytest.fixture
def root_logger():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    root.handlers.clear()
    yield root
    for handler in root.handlers:
        handler.close()
    root.handlers[:] = handlers
    root.setLevel(level)


def test_every_line_is_in_the_file_as_it_is_logged(tmp_path, root_logger):
    log = tmp_path / "scheduler.log"
    root_logger.handlers.clear()  # pytest's capture, added for the test's body
    logs.configure("INFO", filename=str(log))
    scheduler = logging.getLogger("calico_dcos.scheduler")

    scheduler.info("%s %s", "calico-docker__S1__1", "TASK_RUNNING")
    assert log.read_text().endswith(
        " INFO calico_dcos.scheduler: calico-docker__S1__1 TASK_RUNNING\n"
    )
    try:
        raise RuntimeError("the store is gone")
    except RuntimeError:
        scheduler.exception("handling update failed; carrying on")
    text = log.read_text()
    assert "ERROR calico_dcos.scheduler: handling update failed; carrying on\n" in text
    assert "RuntimeError: the store is gone" in text


class HandOverThread:
    """A thread that hands over as pymesos' event thread does (`pipeline.handed_over`
    before each wait), running what it is given one at a time."""

    def __init__(self) -> None:
        self.jobs: queue.Queue = queue.Queue()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        self.run(handed_over)  # from now on its lines wait for its hand-over

    def _run(self) -> None:
        while (job := self.jobs.get()) is not None:
            job[0]()
            job[1].set()

    def run(self, fn) -> None:
        done = threading.Event()
        self.jobs.put((fn, done))
        assert done.wait(10)

    def stop(self) -> None:
        self.jobs.put(None)
        self.thread.join(10)


@pytest.fixture
def handler(tmp_path):
    made = logs.HandOverFileHandler(str(tmp_path / "scheduler.log"))
    made.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    log = logging.getLogger("test_logs.hand_over")
    log.propagate, log.level = False, logging.INFO
    log.addHandler(made)
    thread = HandOverThread()
    yield made, log, thread, tmp_path / "scheduler.log"
    thread.stop()
    log.removeHandler(made)
    made.close()


def test_the_event_threads_lines_go_out_together_at_its_hand_over(handler):
    _, log, thread, path = handler

    thread.run(lambda: [log.info("update %d", n) for n in range(3)])
    assert path.read_text() == ""  # waiting for the thread's next wait
    thread.run(handed_over)

    assert path.read_text() == "INFO update 0\nINFO update 1\nINFO update 2\n"


def test_a_warning_or_another_threads_line_writes_the_waiting_lines_first(handler):
    _, log, thread, path = handler

    thread.run(lambda: log.info("update 1"))
    thread.run(lambda: log.warning("agent gone"))
    assert path.read_text() == "INFO update 1\nWARNING agent gone\n"
    thread.run(lambda: log.info("update 2"))
    log.info("launching")  # the test's own thread, as a sender lane

    assert path.read_text().endswith("WARNING agent gone\nINFO update 2\nINFO launching\n")


def test_waiting_lines_are_bounded_and_written_at_exit(handler):
    made, log, thread, path = handler

    thread.run(lambda: [log.info("update %d", n) for n in range(logs.MAX_WAITING_LINES + 3)])
    written = path.read_text().splitlines()
    assert written == [f"INFO update {n}" for n in range(logs.MAX_WAITING_LINES + 1)]
    made.flush()  # as logging.shutdown does at exit

    assert len(path.read_text().splitlines()) == logs.MAX_WAITING_LINES + 3


class SignalledStream:
    """A real file whose first write is interrupted by a signal handler that logs, as
    Python runs a handler in the main thread between two bytecodes, even inside the file's
    write or flush (`calico_dcos/signals.py` logs the signal it got)."""

    def __init__(self, path, log: logging.Logger) -> None:
        self.file = open(path, "w")  # noqa: SIM115 (closed by the handler)
        self.log = log
        self.signalled = False
        self.inside = False

    def write(self, text: str) -> int:
        if self.inside:  # as io.BufferedWriter refuses it
            raise RuntimeError("reentrant call inside the file's write")
        self.inside = True
        try:
            written = self.file.write(text)
            if not self.signalled:
                self.signalled = True
                self.log.info("SIGTERM: stopping")
            return written
        finally:
            self.inside = False

    def flush(self) -> None:
        self.file.flush()

    def close(self) -> None:
        self.file.close()


def test_a_line_logged_by_a_signal_handler_inside_a_write_waits_for_the_next_write(tmp_path):
    log = logging.getLogger("test_logs.signalled")
    log.propagate, log.level = False, logging.INFO
    stream = SignalledStream(tmp_path / "local.log", log)
    made = logs.HandOverStreamHandler(stream)
    made.setFormatter(logging.Formatter("%(message)s"))
    made.handleError = lambda record: pytest.fail(f"a logging error: {record.getMessage()}")
    log.addHandler(made)
    try:
        log.info("stopping the scheduler")
        made.flush()  # as logging.shutdown does at exit
    finally:
        log.removeHandler(made)
        made.close()

    assert (tmp_path / "local.log").read_text() == "stopping the scheduler\nSIGTERM: stopping\n"
