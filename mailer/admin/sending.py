"""Sends started from the dashboard, run by a thread of the web app.

"Send now" and "Resume" must answer at once, while a send takes minutes: the
job runs in one background thread per app, and a lock makes a second click
(or a second admin) get "already running" instead of a second send. Across
gunicorn workers the delivery queue's row claims keep a message from leaving
twice; this guard only saves the pointless second run in one process.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flask import Flask

from mailer.models import utcnow

EXTENSION = "mailer.admin.sender"
# Not a failure: on SQLite one sender at a time holds the queue, and the
# other one (the scheduler, a command) is doing the work.
BUSY = "another sender (the scheduler or a command) is sending: it carries on"
log = logging.getLogger("mailer.admin")
_create_lock = threading.Lock()


Job = Callable[[Flask, Callable[[str], None]], Any]


@dataclass
class SendRun:
    """One background run: what it was, its progress lines and its outcome."""

    kind: str
    started_at: datetime = field(default_factory=utcnow)
    finished_at: datetime | None = None
    lines: deque[str] = field(default_factory=lambda: deque(maxlen=200))
    result: str | None = None
    error: str | None = None

    def echo(self, line: str) -> None:
        """Keep a progress line (the last 200) and log it."""
        self.lines.append(str(line))
        log.info("admin %s: %s", self.kind, line)

    @property
    def running(self) -> bool:
        """True until the job has returned or failed."""
        return self.finished_at is None


def describe(report: Any) -> str:
    """One line for a delivery report (or whatever the job returned)."""
    if report is None:
        return "done"
    try:
        return (
            f"sent {report.sent}, deferred {report.deferred}, failed {report.failed}, bounced {report.bounced}"
        )
    except AttributeError:
        return str(report)


class BackgroundSender:
    """At most one dashboard-started send at a time in this process."""

    def __init__(self, app: Flask) -> None:
        """Bind to ``app``: the thread runs its jobs with it."""
        self.app = app
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.last: SendRun | None = None

    @property
    def running(self) -> bool:
        """True while a run started here is still going."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    def start(self, kind: str, job: Job) -> bool:
        """Run ``job(app, echo)`` in the background; False if a run is going already."""
        with self._lock:
            if self.running:
                return False
            run = SendRun(kind)
            self.last = run
            # A daemon thread: stopping the web app must not wait for a whole
            # send. Delivery saves each message's state as it goes, and the
            # scheduler or the next "Send now" resumes where it stopped.
            self._thread = threading.Thread(target=self._run, args=(run, job), name=f"admin-{kind}", daemon=True)
            self._thread.start()
        return True

    def _run(self, run: SendRun, job: Job) -> None:
        try:
            run.result = describe(job(self.app, run.echo))
        except Exception as exc:  # reported on the dashboard, never lost
            log.exception("admin %s failed", run.kind)
            run.error = str(exc) or type(exc).__name__
        finally:
            run.finished_at = utcnow()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the current run to end (tests, shutdown); True if none is running."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return not self.running


def get_sender(app: Flask) -> BackgroundSender:
    """The app's background sender, made on first use."""
    with _create_lock:
        sender = app.extensions.get(EXTENSION)
        if sender is None:
            sender = app.extensions[EXTENSION] = BackgroundSender(app)
    assert isinstance(sender, BackgroundSender)
    return sender


def send_now_job(app: Flask, echo: Callable[[str], None]) -> Any:
    """What "Send now" runs: the scheduler's digest job (poll, finish, compose, send)."""
    from mailer import pipeline
    from mailer.delivery import SenderBusyError

    try:
        return pipeline.send_digest(app, poll=True, echo=echo)
    except SenderBusyError:
        return BUSY


def resume_job(app: Flask, echo: Callable[[str], None]) -> Any:
    """What "Resume" runs: finish every sending digest, compose nothing new."""
    from mailer.delivery import SenderBusyError, deliver

    try:
        return deliver(app, echo=echo)
    except SenderBusyError:
        return BUSY
