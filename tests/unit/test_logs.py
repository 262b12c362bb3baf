"""The scheduler's log set-up (`calico_dcos.logs`): the same lines as the standard
library's formatter, each in the file as soon as it is logged, tracebacks included."""

from __future__ import annotations

import logging

import pytest

from calico_dcos import logs


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
