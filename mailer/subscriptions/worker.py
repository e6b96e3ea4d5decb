"""The signup worker: the thread of each web process that applies the signup queue.

A signup request commits its ``signup_queue`` row and calls ``notify``; the
thread wakes and applies everything queued (``signup.apply_queue``), so the
confirmation mail is in the outbox a few milliseconds after the answer.
Under a flood the thread is busy with one batch while the next requests
queue, so batches grow by themselves: the busier the site, the cheaper each
signup. The scheduler's ``signups`` job applies what a dead process left.
"""

from __future__ import annotations

import logging
import os
import threading
import time

from flask import Flask

from mailer.background import Worker
from mailer.subscriptions.signup import apply_queue

EXTENSION = "mailer.signups"
# The pause after a pass that failed (the database away), before the next try.
RETRY_SECONDS = 2.0
# After a pass that found more than one request (a flood has begun), the
# next one waits this long since the last began, so the requests meanwhile
# make one batch (one write transaction) instead of one each; a lone signup
# is applied at once. The mail leaves a quarter second later; each signup of
# the flood costs the processes about half the CPU (bench/signup.py).
PASS_INTERVAL = 0.25
log = logging.getLogger("mailer.subscriptions.worker")


class SignupWorker(Worker):
    """Applies the signup queue from a daemon thread, woken by each request."""

    name = "signups"

    def _reset(self) -> None:
        """Fresh thread state, for this process."""
        super()._reset()
        # Notifies seen, and how many of them a finished pass covers.
        self._progress = threading.Condition()
        self._notified = 0
        self._applied = 0
        self._last_pass = 0.0
        self._busy = False

    def notify(self) -> None:
        """A signup request was queued: apply it now."""
        if self._pid != os.getpid():
            self._reset()
        # Counted before the wake, so that the pass that sees it covers it.
        with self._progress:
            self._notified += 1
        super().notify()

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until every request notified so far is applied; False on timeout."""
        with self._progress:
            target = self._notified
            return self._progress.wait_for(lambda: self._applied >= target, timeout)

    def _loop(self, stop: threading.Event) -> None:
        """Apply the queue whenever notified; end after an idle while or ``stop``."""
        while True:
            woke = self._wake.wait(self.idle_seconds)
            if stop.is_set():
                return
            early = self._last_pass + PASS_INTERVAL - time.monotonic()
            if self._busy and early > 0 and stop.wait(early):
                return
            self._wake.clear()
            self._last_pass = time.monotonic()
            with self._progress:
                covered = self._notified
            try:
                with self.app.app_context():
                    self._busy = apply_queue(self.app, stop=stop) > 1
            except Exception:  # the thread must outlive a bad moment
                log.exception("signup pass failed; trying again in %.0f s", RETRY_SECONDS)
                if stop.wait(RETRY_SECONDS):
                    return
                self._wake.set()
                continue
            with self._progress:
                self._applied = max(self._applied, covered)
                self._progress.notify_all()
            if not woke and self._exit_if_idle(stop):
                return


def notify_signups(app: Flask) -> None:
    """Wake the app's signup worker (after the request's commit)."""
    worker = app.extensions.get(EXTENSION)
    if worker is not None:
        worker.notify()
