"""``deliver``: send every sending digest's due deliveries, then stop.

The main thread owns the database: it claims batches of due rows, hands them
to one worker thread per SMTP connection, and records the outcomes in
batched commits (each commit lets the workers end their next message, see
``gate.py``). Then, per digest: retries that fall due within a short window
are waited for, rows other senders hold are waited for, and the digest is
marked finished once nothing is pending or deferred.
"""

from __future__ import annotations

import logging
import queue
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import Flask
from sqlalchemy import Connection, Engine, event

from mailer.db import make_engine
from mailer.delivery import deliveries as rows
from mailer.delivery.connection import ConnectionThread, Inbox, ReaderCheck, Switch, drain
from mailer.delivery.deliveries import Feeder
from mailer.delivery.gate import Results
from mailer.delivery.message import MailSettings
from mailer.delivery.personalise import Composer
from mailer.delivery.record import Recorder
from mailer.delivery.report import DeliveryError, DeliveryReport, Progress, duration, n_deliveries
from mailer.delivery.senders import TokenBucket, exclusive_sender, is_dead_neighbour, sender_name
from mailer.delivery.settings import RunSettings
from mailer.delivery.smtp import SmtpTransport
from mailer.delivery.transport import Transport
from mailer.dkim import signer_from_config
from mailer.models import DigestStatus, utcnow
from mailer.smtpurl import parse_smtp_url

log = logging.getLogger("mailer.delivery")
Echo = Callable[[str], Any]


@dataclass
class Pass:
    """The main loop's state while it sends one digest."""

    digest_id: int
    progress: Progress
    window_end: datetime
    size: int  # rows the next claim asks for
    outstanding: int = 0  # claimed rows handed out and not yet recorded
    exhausted: bool = False  # the last claim found nothing
    after: int = 0  # the last row handed out (a sender alone reads on from there)
    last_look: float = 0.0
    stopping: bool = False


class Run:
    """One call of ``deliver``: its threads, its queues and its report."""

    def __init__(self, app: Flask, engine: Engine, echo: Echo, stop: threading.Event | None,
                 transport_factory: Callable[[], Transport]) -> None:
        """Read the settings; nothing connects yet."""
        config = app.config
        self.settings = RunSettings.from_config(config)
        self.engine = engine
        self.echo = echo
        self.switch = Switch(stop or threading.Event())
        self.transport_factory = transport_factory
        self.me = sender_name()
        mail = MailSettings.from_config(config)
        from mailer.digest import PREFERENCES_TOKEN, UNSUBSCRIBE_TOKEN

        self.composer = Composer(mail, config["SECRET_KEY"], (UNSUBSCRIBE_TOKEN, PREFERENCES_TOKEN),
                                 signer_from_config(config))
        self.bucket = TokenBucket(self.settings.rate)
        self.recorder = Recorder(self.settings, self._paused)
        self.report = self.recorder.report
        self.inbox: Inbox = queue.SimpleQueue()
        self.results = Results()
        self.workers: list[ConnectionThread] = []
        self.exclusive = False
        self._renewed = time.monotonic()

    def _paused(self, digest_id: int, reason: str) -> None:
        """The recorder paused the digest (a 5.7.x): no more of it leaves."""
        self.switch.halt(digest_id)
        self.echo(f"digest {digest_id} paused: {reason}")

    def execute(self, exclusive: bool) -> DeliveryReport:
        """Send every sending digest; raise DeliveryError when the server is unusable.

        ``exclusive``: no other sender can run (SQLite's lock), so rows are
        read rather than claimed.
        """
        self.exclusive = exclusive
        self.feeder = Feeder(self.engine, self.me, self.settings.lease, exclusive)
        with self.engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                # Each write is one statement, so autocommit saves the COMMIT's
                # round trip on every batch of outcomes.
                conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            digests = self._begin(conn)
            try:
                for digest_id in digests:
                    self.send_one(conn, digest_id)
                    if self.switch.aborted or self.switch.stop.is_set():
                        break
            except BaseException:
                # Ctrl-C or a database failure: the workers give up their
                # message in flight (no final ".", so the server drops it).
                self.switch.aborted = True
                raise
            finally:
                self.shutdown(conn)
            self.report.deferred = rows.count_deferred(conn)
        if self.switch.error is not None:
            raise self.switch.error
        return self.report

    def _begin(self, conn: Connection) -> list[int]:
        """The digests to send; say which are paused; take back the claims of dead senders."""
        digests = rows.sending_digests(conn)
        self.report.digests = list(digests)
        for digest_id, reason in rows.paused_digests(conn):
            self.echo(f"digest {digest_id} is paused ({reason or 'no reason given'}): "
                      f"'digest resume {digest_id}' sends the rest")
            self.report.still_paused.append(digest_id)
        # Any claim at all when the file lock says we are alone (SQLite), else
        # those of dead processes on this host.
        for claimant in {c for d in digests for c in rows.claimants(conn, d, utcnow())}:
            if self.exclusive or is_dead_neighbour(claimant):
                rows.release(conn, claimant)
        conn.commit()
        return digests

    def start_workers(self) -> None:
        """One thread per connection; each connects at once (a refusal ends the run)."""
        if self.workers:
            return
        for number in range(self.settings.connections):
            worker = ConnectionThread(number + 1, self.transport_factory(), self._reader_check, inbox=self.inbox,
                                      results=self.results, switch=self.switch, composer=self.composer,
                                      bucket=self.bucket)
            worker.start()
            self.workers.append(worker)

    def _reader_check(self) -> ReaderCheck:
        return ReaderCheck(self.engine.connect().execution_options(isolation_level="AUTOCOMMIT"))

    def send_one(self, conn: Connection, digest_id: int) -> None:
        """Send one digest's due rows, wait for its short retries, finish it if done."""
        step = self._start_pass(conn, digest_id)
        while True:
            self._look_around(conn, step)
            self._claim(step)
            self._hand_out(conn, step)
            self._record(conn, step)
            if step.outstanding > 0 or self.feeder.busy or not (step.exhausted or step.stopping):
                if step.outstanding and self.switch.aborted and not any(w.is_alive() for w in self.workers):
                    break  # nobody left to finish them: shutdown() releases what is left
                continue  # the last claim found rows: claim again before looking at what is left
            if step.stopping:
                break
            wait = self._wait_for(conn, digest_id, step.window_end)
            if wait is None or self.switch.stop.wait(wait):
                break
            step.exhausted = False
        self._end_pass(conn, step)

    def _start_pass(self, conn: Connection, digest_id: int) -> Pass:
        """Fail what waited too long, count what is due, tell the operator."""
        now = utcnow()
        self.report.failed += rows.give_up_expired(conn, digest_id, now - self.recorder.give_up, now)
        conn.commit()
        total = rows.count_due(conn, digest_id, now)
        if total:
            self.echo(f"digest {digest_id}: {n_deliveries(total)} to send over "
                      f"{min(total, self.settings.connections)} connection(s)")
        # Shared with other senders: small claims first, doubling as they are
        # sent, so that a sender started a moment later still finds work.
        size = self.settings.batch if self.exclusive else min(self.settings.batch, 2 * self.settings.connections)
        return Pass(digest_id, Progress(self.echo, total, f"digest {digest_id}"),
                    now + timedelta(seconds=self.settings.retry_window), size)

    def _claim(self, step: Pass) -> None:
        """Ask the feeder for the next rows once those handed out run low."""
        low_water = self.settings.batch if self.exclusive else max(1, step.size // 2)
        if step.stopping or step.exhausted or self.feeder.busy or step.outstanding >= low_water:
            return
        # Alone (SQLite), rows are read from a cursor; with nothing in
        # flight (after waiting for retries) from the start again.
        self.feeder.request(step.digest_id, step.after if step.outstanding else 0, utcnow(), step.size)
        step.size = min(self.settings.batch, step.size * 2)

    def _hand_out(self, conn: Connection, step: Pass) -> None:
        """Put the claimed rows in the workers' inbox (or give them back when stopping)."""
        claimed = self.feeder.ready(timeout=0.0 if step.outstanding else 0.05)
        if claimed is None:
            return
        if step.stopping:
            self.recorder.release(conn, claimed)
        elif claimed:
            step.after = claimed[-1].delivery_id
            self.composer.load(conn, {item.edition_id for item in claimed})
            self.start_workers()
            for item in claimed:
                self.inbox.put(item)
            step.outstanding += len(claimed)
        step.exhausted = not claimed

    def _record(self, conn: Connection, step: Pass) -> None:
        """Commit the workers' results (which lets them end their next message)."""
        done = self.recorder.collect(conn, self.results, wait=0.05 if step.outstanding else 0.0,
                                     connections=sum(w.is_alive() for w in self.workers))
        step.outstanding -= done.handled
        step.progress.advance(done.tried)

    def _end_pass(self, conn: Connection, step: Pass) -> None:
        """Say what this run did; mark the digest finished when nothing waits."""
        digest_id = step.digest_id
        step.progress.close()
        if step.progress.done:
            self.echo(f"digest {digest_id}: {self.recorder.line(digest_id)}")
        if not self.switch.halted(digest_id) and rows.finish_if_done(conn, digest_id, utcnow()):
            conn.commit()
            self.report.finished.append(digest_id)
            self.echo(f"digest {digest_id} finished")
        conn.commit()

    def _wait_for(self, conn: Connection, digest_id: int, window_end: datetime) -> float | None:
        """Seconds to wait before claiming again, or None when this run is done with the digest."""
        now = utcnow()
        left = rows.remaining(conn, digest_id, self.me, now)
        if left.held:  # other senders' claims: wait for them to finish, or for a dead one's lease
            for claimant in rows.claimants(conn, digest_id, now):
                if claimant != self.me and is_dead_neighbour(claimant):
                    rows.release(conn, claimant)
            conn.commit()
            return 1.0
        if left.deferred and left.next_retry is not None and left.next_retry <= window_end:
            wait = max(0.0, (left.next_retry - now).total_seconds())
            if wait >= 1:
                self.echo(f"digest {digest_id}: {left.deferred} deferred, next retry in {duration(wait)}")
            return wait
        if left.deferred:
            self.echo(f"digest {digest_id}: {n_deliveries(left.deferred)} deferred for a later run")
        return None

    def _look_around(self, conn: Connection, step: Pass) -> None:
        """Once a second: notice a pause from elsewhere, renew our leases; each turn: stopping yet?"""
        digest_id = step.digest_id
        if time.monotonic() - step.last_look >= 1.0:
            step.last_look = time.monotonic()
            status, reason = rows.digest_status(conn, digest_id)
            if status != DigestStatus.SENDING and not self.switch.halted(digest_id):
                self.switch.halt(digest_id)
                self.echo(f"digest {digest_id} is {status.value if status else 'gone'}: {reason or 'stopping'}")
            if not self.exclusive and time.monotonic() - self._renewed >= self.settings.lease / 4:
                self._renewed = time.monotonic()
                rows.renew(conn, digest_id, self.me, utcnow(), self.settings.lease)
            conn.commit()
        step.stopping = self.switch.halted(digest_id)
        if step.stopping and step.outstanding:
            step.outstanding -= self.recorder.release(conn, drain(self.inbox))

    def shutdown(self, conn: Connection) -> None:
        """Stop the workers after their message in flight; record and release the rest."""
        self.recorder.release(conn, self.feeder.close())
        self.recorder.release(conn, drain(self.inbox))
        for _ in self.workers:
            self.inbox.put(None)
        for worker in self.workers:
            while worker.is_alive():
                worker.join(0.1)
                self.recorder.collect(conn, self.results, wait=0.0)
        self.recorder.collect(conn, self.results, wait=0.0)
        rows.release(conn, self.me)
        conn.commit()


def _no_commit_wait(dbapi_connection: Any, _record: Any) -> None:
    """PostgreSQL: a commit returns before its WAL record is flushed to disk.

    The workers wait for each commit before ending their next message, so a
    disk flush per commit would pace the whole send. The server still has
    every commit when this process is killed (SIGKILL loses nothing); only
    a crash of the database server itself could lose the last fraction of a
    second of "sent" marks, and with them send those few messages again.
    """
    with dbapi_connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit TO OFF")
    dbapi_connection.commit()


def deliver(app: Flask, *, echo: Echo = print, stop: threading.Event | None = None,
            transport_factory: Callable[[], Transport] | None = None) -> DeliveryReport:
    """Send the due deliveries of every sending digest (see the module docstring).

    ``stop`` ends the run early (after the messages in flight); the
    ``transport_factory`` makes one transport per connection (tests pass a
    fake). Raises ``DeliveryError`` when the SMTP server cannot be used;
    ``SenderBusyError`` (one) when another sender holds a SQLite database.
    """
    url = app.config["DATABASE_URL"]
    if transport_factory is None:
        try:
            smtp = parse_smtp_url(app.config["SMTP_URL"])
        except ValueError as exc:
            raise DeliveryError(f"MAILER_SMTP_URL: {exc}") from None
        timeout = RunSettings.from_config(app.config).timeout
        context = ssl.create_default_context() if smtp.security != "none" else None
        transport_factory = lambda: SmtpTransport(smtp, timeout=timeout, context=context)  # noqa: E731
    with exclusive_sender(url) as exclusive:
        # A connection each: the main thread, the feeder, every reader check.
        connections = RunSettings.from_config(app.config).connections
        engine = make_engine(url, pool_size=connections + 3, max_overflow=2)
        if engine.dialect.name == "postgresql":
            event.listen(engine, "connect", _no_commit_wait)
        try:
            return Run(app, engine, echo, stop, transport_factory).execute(exclusive)
        finally:
            engine.dispose()

