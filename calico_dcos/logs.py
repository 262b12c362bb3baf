"""The scheduler's log set-up: one line per record, `FORMAT`, made cheaply.

pymesos' event thread writes a line for every status update (13 per agent in an install),
so each line's cost is paid ~13,000 times at 1,000 agents. The standard library's record
does work the format never shows, which the Logging HOWTO lists as what to switch off when
it is not needed (docs.python.org/3/howto/logging.html, "Optimization"): the caller's file,
line and function (`logging._srcfile = None`: `findCaller` walks the stack for every
record), the thread's and process' names (`logThreads`, `logProcesses`,
`logMultiprocessing`). And `Formatter.formatTime` converts and formats the time for every
record; `SecondFormatter` does that once per second and adds the milliseconds, the same
text (`Formatter.default_time_format` and `default_msec_format`). Measured alone
(`.venv/bin/python -m calico_dcos.logs`): ~14 µs of CPU a line before, ~8 after.

One write per read of the event stream, not one per line (`HandOverStreamHandler`,
`HandOverFileHandler`): each line written at once is a write(2), and the GIL let go and
taken back around it while four sender lanes and the group committer want it too; at
1,000 agents the bench's scheduler used ~0.5 s less CPU with its INFO lines off (5.3-5.4
against 4.8 ms per agent, two runs each, load 0.7-1.2). So the INFO lines of a thread that
hands over (pymesos' event thread, `pipeline.handed_over`, called before it waits for the
next bytes of the stream) wait in memory until it does, and then go out in one write,
the same lines in the same order. They go out sooner when a line of WARNING or above
comes (after them, at once), when a line of another thread comes (the same), after
`MAX_WAITING_LINES`, and at exit (`logging.shutdown` flushes every handler). So an
operator reads every line, at most one read of the stream later; only a process killed
outright (SIGKILL, a crash of the interpreter) loses the INFO lines of the events it was
handling, whose effects the store may not have yet either.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Iterable

from calico_dcos.pipeline import at_hand_over

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
MAX_WAITING_LINES = 64  # a hand-over thread's lines kept before they are written anyway


class SecondFormatter(logging.Formatter):
    """`logging.Formatter` whose `%(asctime)s` text is made once per second of the clock
    (what `formatTime` gives without a `datefmt`, converted with `converter`)."""

    def __init__(self, fmt: str = FORMAT) -> None:
        super().__init__(fmt)
        self._second: tuple[int, str] = (-1, "")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        if datefmt:
            return super().formatTime(record, datefmt)
        second = int(record.created)
        made = self._second  # one tuple, replaced whole: safe from several handlers' threads
        if made[0] != second:
            made = (second, time.strftime(self.default_time_format, self.converter(second)))
            self._second = made
        return self.default_msec_format % (made[1], record.msecs)


class _HandOver:
    """What `HandOverStreamHandler` and `HandOverFileHandler` add to the standard library's
    handlers: the lines of a thread that hands over wait for its hand-over (module
    docstring). `emit` runs under the handler's lock (`Handler.handle`), and so does
    `write_waiting`, so the lines of all threads keep their order in the stream."""

    stream: object
    terminator: str
    lock: object

    def _start_waiting(self) -> None:
        self._waiting: list[str] = []
        # In the stream's write or flush: a line logged meanwhile by the same thread (a
        # signal handler runs in the main thread, between two of its bytecodes, even inside
        # the file's flush) waits instead of entering the file's write again, which
        # raises "reentrant call inside <_io.BufferedWriter …>"; the next write takes it.
        self._writing = False

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + self.terminator  # type: ignore[attr-defined]
            waiting = self._waiting
            if self._writing or (
                record.levelno < logging.WARNING
                and len(waiting) < MAX_WAITING_LINES
                and at_hand_over(self.write_waiting)
            ):
                waiting.append(line)
                return
            waiting.append(line)
            self.write_waiting()
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)  # type: ignore[attr-defined]

    def write_waiting(self) -> None:
        """Write the lines waiting (at the hand-over, and from `flush`)."""
        with self.lock:  # type: ignore[attr-defined]
            if self._writing:
                return  # re-entered from the write below (a signal handler): it goes on
            self._writing = True
            try:
                while self._waiting:
                    lines = "".join(self._waiting)
                    self._waiting.clear()
                    try:
                        self.stream.write(lines)  # type: ignore[attr-defined]
                    except Exception:  # as `Handler.handleError`: said on stderr, not raised
                        with contextlib.suppress(Exception):
                            sys.stderr.write(f"--- logging error; lines lost:\n{lines}")
                        return
                    logging.StreamHandler.flush(self)  # type: ignore[arg-type]
                logging.StreamHandler.flush(self)  # type: ignore[arg-type]
            finally:
                self._writing = False

    def flush(self) -> None:
        self.write_waiting()


class HandOverStreamHandler(_HandOver, logging.StreamHandler):
    """`logging.StreamHandler` (standard error by default) with hand-over writes."""

    def __init__(self, stream: object = None) -> None:
        logging.StreamHandler.__init__(self, stream)  # type: ignore[arg-type]
        self._start_waiting()


class HandOverFileHandler(_HandOver, logging.FileHandler):
    """`logging.FileHandler` (appending) with hand-over writes."""

    def __init__(self, filename: str) -> None:
        logging.FileHandler.__init__(self, filename, "a")
        self._start_waiting()


def configure(
    level: str | int,
    filename: str | None = None,
    handlers: Iterable[logging.Handler] | None = None,
) -> None:
    """`logging.basicConfig(level=…, format=FORMAT)` into `filename` (appending) or
    standard error, with hand-over writes, or into `handlers` as they are; with
    `SecondFormatter` and without the record fields the format never shows (see the
    module docstring)."""
    logging._srcfile = None  # type: ignore[attr-defined]  # the HOWTO's own advice
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    if handlers is None:
        made = HandOverFileHandler(filename) if filename else HandOverStreamHandler()
        handlers = [made]
    logging.basicConfig(level=level, format=FORMAT, handlers=list(handlers))
    for handler in logging.getLogger().handlers:
        if handler.formatter is None or handler.formatter._fmt == FORMAT:
            handler.setFormatter(SecondFormatter())


def _measure(lines: int = 20_000) -> None:
    """CPU per line, with the standard set-up and with `configure`'s, into /dev/null."""
    import resource

    def per_line() -> float:
        log = logging.getLogger("calico_dcos.scheduler")
        usage = resource.getrusage(resource.RUSAGE_THREAD)
        before = usage.ru_utime + usage.ru_stime
        for _ in range(lines):
            log.info("%s %s%s%s", "calico-docker__5f1c-S12__1234abcd__1", "TASK_RUNNING", "", "")
        usage = resource.getrusage(resource.RUSAGE_THREAD)
        return (usage.ru_utime + usage.ru_stime - before) / lines * 1e6

    with open("/dev/null", "w") as sink:  # noqa: PTH123
        logging.basicConfig(level="INFO", format=FORMAT, stream=sink)
        print(f"logging.basicConfig: {per_line():5.1f} µs of CPU a line")
        logging.getLogger().handlers.clear()
        configure("INFO", handlers=[logging.StreamHandler(sink)])
        print(f"logs.configure:      {per_line():5.1f} µs of CPU a line")


if __name__ == "__main__":
    _measure()
