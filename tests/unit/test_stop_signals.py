"""`StopSignals`: the first stop signal stops, every later one is ignored, even one pymesos'
driver thread makes to hand its exception to the main thread (douban/pymesos
`pymesos/process.py`: `Process._run` stores `sys.exc_info()` in `_exc_info`, then calls
`_thread.interrupt_main()`). Real signals, raised in this process."""

import signal

import pymesos.process
import pytest

from calico_dcos.signals import STOP_SIGNALS, StopSignals


@pytest.fixture
def handlers():
    """The test's handlers go; pytest's own come back."""
    previous = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    yield
    for signum, handler in previous.items():
        signal.signal(signum, handler)


def driver_died(monkeypatch) -> RuntimeError:
    """What pymesos' driver thread leaves for the main thread when it aborts."""
    error = RuntimeError("Failed with HTTP 500: the master")
    monkeypatch.setattr(pymesos.process, "_exc_info", (RuntimeError, error, None))
    return error


def test_the_first_stop_signal_stops_and_later_ones_are_ignored(handlers, monkeypatch):
    stops = []
    signals = StopSignals(on_stop=lambda: stops.append("stop")).install()

    with pytest.raises(KeyboardInterrupt):
        signal.raise_signal(signal.SIGINT)
    driver_died(monkeypatch)  # aborting while the clean-up runs
    signal.raise_signal(signal.SIGINT)
    signal.raise_signal(signal.SIGTERM)

    assert signals.received == signal.SIGINT
    assert stops == ["stop"]
    assert pymesos.process._exc_info is not None  # left alone: nobody is waiting for it


def test_pymesos_exception_is_the_stop_when_it_comes_first(handlers, monkeypatch):
    signals = StopSignals().install()
    error = driver_died(monkeypatch)

    with pytest.raises(RuntimeError) as raised:
        signal.raise_signal(signal.SIGINT)  # as `interrupt_main` trips it
    signal.raise_signal(signal.SIGTERM)

    assert raised.value is error
    assert signals.received == signal.SIGINT


def test_shielded_every_stop_signal_is_ignored_by_the_system(handlers):
    signals = StopSignals().install()

    signals.shield()

    assert all(signal.getsignal(signum) == signal.SIG_IGN for signum in STOP_SIGNALS)
    assert signals.received is None
