"""SIGTERM and SIGINT as a request to stop, not a kill.

systemd, Docker and Kubernetes stop a job with SIGTERM. A send killed by it
would leave each connection's last accepted message unrecorded, and the
rerun would send it again; so the first signal only sets an event (the send
finishes the messages in flight, records them and returns), and a second
one stops at once.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from types import FrameType


def _raise_interrupt(signum: int) -> None:
    """A second signal: stop now (the send abandons its message in flight before its final ".")."""
    raise KeyboardInterrupt(signal.Signals(signum).name)


@contextmanager
def stop_on_signals(echo: Callable[[str], object] | None = None, *, at_once: Callable[[int], None] = _raise_interrupt,
                    signals: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGINT)) -> Iterator[threading.Event]:
    """Yield an event that the first SIGTERM or SIGINT sets; the second calls ``at_once``.

    ``echo`` tells the operator; without it the line goes straight to file
    descriptor 2 (a handler that wrote through ``sys.stdout`` while the main
    thread is writing its progress would meet a reentrant write).
    Only the main thread may install handlers: elsewhere (a test runner's
    thread) the event is yielded and no signal is caught.
    """
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        if stop.is_set():
            at_once(signum)
            return
        stop.set()
        line = f"{signal.Signals(signum).name} received: finishing the messages in flight " \
               "(a second signal stops at once)"
        (echo or _to_stderr)(line)

    previous = {signum: signal.signal(signum, on_signal) for signum in signals}
    try:
        yield stop
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _to_stderr(line: str) -> None:
    """One line on file descriptor 2, bypassing Python's buffered streams."""
    with suppress(OSError, ValueError):
        os.write(sys.__stderr__.fileno() if sys.__stderr__ else 2, f"{line}\n".encode())


def die_by_signal(signum: int) -> None:
    """A second signal to the scheduler: the default action (the process ends by that signal)."""
    signal.signal(signum, signal.SIG_DFL)
    signal.raise_signal(signum)
