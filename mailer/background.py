"""A daemon thread per process that a request wakes after its commit.

The web app's queues (signups, transactional mail) are applied by such a
thread: started on first use, started again in a forked gunicorn worker
(the parent's thread stays in the parent), ended after an idle while or by
``stop``. The database is the queue; the thread is only what makes it move
at once, so losing one (a crash, a SIGKILL) loses nothing: the scheduler's
jobs take over what is left.
"""

from __future__ import annotations

import os
import threading

from flask import Flask


class Worker:
    """Start-on-notify thread plumbing; subclasses write ``_loop(stop)``."""

    name = "worker"

    def __init__(self, app: Flask, idle_seconds: float = 60.0) -> None:
        """Nothing starts until ``notify``."""
        self.app = app
        self.idle_seconds = idle_seconds
        self._reset()

    def _reset(self) -> None:
        """Fresh thread state, for this process (after a fork the parent's is void)."""
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        # Each thread has its own stop flag: a thread that outlives stop()'s
        # join (stuck on a slow server) still ends, and never serves an app
        # or database that is gone.
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def notify(self) -> None:
        """Something was committed for the thread: start it if needed, and wake it."""
        if self._pid != os.getpid():  # a forked worker: the thread stayed in the parent
            self._reset()
        with self._lock:
            self._wake.set()
            if self._thread is None:
                self._stop = threading.Event()
                self._thread = threading.Thread(target=self._loop, args=(self._stop,), name=self.name, daemon=True)
                self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """End the thread after the work in hand (app shutdown, end of a test)."""
        with self._lock:
            thread, self._thread = self._thread, None
            self._stop.set()
            self._wake.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    @property
    def running(self) -> bool:
        """True while the thread is alive."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    def _exit_if_idle(self, stop: threading.Event) -> bool:
        """After a wait that no notify ended: end the thread unless one came in meanwhile."""
        with self._lock:
            if self._wake.is_set() and not stop.is_set():
                return False
            if self._stop is stop:
                self._thread = None
            return True

    def _loop(self, stop: threading.Event) -> None:
        raise NotImplementedError
