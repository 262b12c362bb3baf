"""Ctrl-C and SIGTERM for the commands that start processes (`local`, `devcluster`, `run`).

One stop, however the signal comes: to the process or to its whole foreground process
group, once or several times, during start-up, the rollout or the clean-up. The first SIGINT
or SIGTERM raises `KeyboardInterrupt` in the main thread (so every `with` and `finally`
between the signal and `main` runs: the devcluster's `stop()` kills its task processes); the
later ones are ignored, so they cannot cut that clean-up short. `shield()` before a clean-up
that is not an interruption makes every later signal ignored as well.

Both handlers are installed whatever the signal's disposition was: a shell that is not
interactive starts a background command with SIGINT ignored (POSIX, "Shell Command
Language" 2.11: "If job control is disabled … the signals SIGINT and SIGQUIT … shall be
ignored"), and pymesos' own SIGINT handler then calls that `SIG_IGN` as if it were a
function (douban/pymesos `pymesos/process.py` `_handle_sigint`: `_prev_handler(signum,
frame)`), a `TypeError: 'Handlers' object is not callable` instead of a stop.

pymesos also uses SIGINT to carry an exception from its driver thread into the main thread
(`_thread.interrupt_main()` after storing `sys.exc_info()` in `pymesos.process._exc_info`,
same file, `Process._run`); that exception is raised again here as pymesos would, by the
first stop signal only: once stopping, pymesos' is ignored like any other.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType

LOG = logging.getLogger("calico_dcos.signals")
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopSignals:
    """SIGINT and SIGTERM as one stop request. `on_stop` (optional) is called for every
    first signal, before `KeyboardInterrupt` is raised (unless `raise_interrupt=False`, for a
    main thread that waits on an event `on_stop` sets). Install it on the main thread."""

    def __init__(
        self, on_stop: Callable[[], None] | None = None, raise_interrupt: bool = True
    ) -> None:
        self.on_stop = on_stop
        self.raise_interrupt = raise_interrupt
        self.received: int | None = None  # the first stop signal's number
        self.shielded = False
        self.event = threading.Event()

    def install(self) -> StopSignals:
        for signum in STOP_SIGNALS:
            signal.signal(signum, self._handle)
        return self

    def shield(self) -> None:
        """From now on every stop signal is ignored (a clean-up is under way): SIG_IGN, so
        that one arriving while the interpreter exits, when Python puts back the default
        action of the signals it handled (CPython `Modules/signalmodule.c`
        `_PySignal_Fini`, which leaves ignored ones alone), cannot kill the process either."""
        self.shielded = True
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                signal.signal(signum, signal.SIG_IGN)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is not None or self.shielded:
            # Even one pymesos' `interrupt_main` made: its exception, raised in the middle
            # of the clean-up, would cut that short as a second Ctrl-C would.
            LOG.info("%s ignored: already stopping", signal.Signals(signum).name)
            return
        self.received = signum
        self.event.set()
        pymesos_relay(signum, frame)  # the stop is then pymesos' exception
        LOG.info("%s: stopping", signal.Signals(signum).name)
        if self.on_stop is not None:
            self.on_stop()
        if self.raise_interrupt:
            raise KeyboardInterrupt


def pymesos_relay(signum: int, frame: FrameType | None) -> None:
    """Raise the exception pymesos' driver thread handed to the main thread, if any."""
    process = sys.modules.get("pymesos.process")
    if signum == signal.SIGINT and getattr(process, "_exc_info", None) is not None:
        process._handle_sigint(signum, frame)  # re-raises it and clears it
