"""The scheduler's log set-up: one line per record, `FORMAT`, made cheaply.

pymesos' event thread writes a line for every status update (13 per agent in an install),
so each line's cost is paid ~13,000 times at 1,000 agents. The standard library's record
does work the format never shows, which the Logging HOWTO lists as what to switch off when
it is not needed (docs.python.org/3/howto/logging.html, "Optimization"): the caller's file,
line and function (`logging._srcfile = None`: `findCaller` walks the stack for every
record), the thread's and process' names (`logThreads`, `logProcesses`,
`logMultiprocessing`). And `Formatter.formatTime` converts and formats the time for every
record; `SecondFormatter` does that once per second and adds the milliseconds, the same
text (`Formatter.default_time_format` and `default_msec_format`). Every line is still
written and flushed as it is logged, at every level: nothing is buffered or dropped.
Measured alone (`.venv/bin/python -m calico_dcos.logs`): ~16 µs of CPU a line before,
~10 after.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


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


def configure(
    level: str | int,
    filename: str | None = None,
    handlers: Iterable[logging.Handler] | None = None,
) -> None:
    """`logging.basicConfig(level=…, format=FORMAT)` into `filename`, or `handlers`, or
    standard error, with `SecondFormatter` and without the record fields the format never
    shows (see the module docstring)."""
    logging._srcfile = None  # type: ignore[attr-defined]  # the HOWTO's own advice
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    kwargs: dict = {"level": level, "format": FORMAT}
    if filename is not None:
        kwargs["filename"] = filename
    if handlers is not None:
        kwargs["handlers"] = list(handlers)
    logging.basicConfig(**kwargs)
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
