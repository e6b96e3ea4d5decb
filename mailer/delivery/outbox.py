"""Transactional mail (confirmations), sent by the web app itself.

``subscriptions/`` renders a mail into an ``OutboundMail`` row and calls
``app.extensions["mailer.outbox"].notify()`` after its commit. The worker
wakes a daemon thread of this process (started on first use, and again in a
forked gunicorn worker) that sends every due row through the same SMTP
transport as the digests, so the request never waits on SMTP. Temporary
failures are retried with backoff, by this thread and by the scheduler's
``send_outbox``. A row is claimed by bumping ``attempts`` with a
compare-and-set, so two processes never send the same row at once.

A signup's confirmation goes before the bulk of an import's requests to
confirm (``MailKind.IMPORT_CONFIRM``, thousands at once), so a reader who signs
up meanwhile still gets the mail within seconds. ``SEND_RATE`` paces each
pass as it paces a digest run (a bucket per pass, not shared with a digest
sender running at the same time).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

from flask import Flask
from sqlalchemy import func, or_, select, update

from mailer.background import Worker
from mailer.db import get_sessionmaker
from mailer.delivery.faults import SendOutcome, classify
from mailer.delivery.message import MailSettings, transactional_mail
from mailer.delivery.personalise import envelope_address
from mailer.delivery.report import DeliveryError
from mailer.delivery.senders import TokenBucket
from mailer.delivery.smtp import SmtpTransport
from mailer.delivery.transport import Transport, wire_form
from mailer.dkim import DkimError, DkimSigner, signer_from_config
from mailer.models import MailKind, OutboundMail, utcnow
from mailer.smtpurl import parse_smtp_url

EXTENSION = "mailer.outbox"
GIVE_UP_ATTEMPTS = 10
BACKOFF_SECONDS = 30.0
BACKOFF_CEILING = 3600.0
# A claimed row is due again after this, should its sender die mid-send.
CLAIM_SECONDS = 300
# The worker's pause after a pass that found the server unreachable, doubling.
UNREACHABLE_SECONDS = 2.0
UNREACHABLE_CEILING = 300.0
log = logging.getLogger("mailer.delivery.outbox")


def build_mail(row: OutboundMail, settings: MailSettings, eightbit: bool = False) -> tuple[bytes, bool]:
    """The row as a multipart/alternative message (plain, not yet dot-stuffed), and whether it is 8bit.

    ``eightbit``: the server offers 8BITMIME (else quoted-printable).
    """
    return transactional_mail(
        settings, to=row.to_address, subject=row.subject, text=row.text, html=row.html, eightbit=eightbit,
        message_id=f"<outbox-{row.id}.{uuid.uuid4().hex[:12]}@{settings.domain}>",
        date=format_datetime(datetime.now(UTC)),
    )


def send_outbox(
    app: Flask, *, transport: Transport | None = None, limit: int = 100, stop: threading.Event | None = None,
    now: datetime | None = None,
) -> int:
    """Send every due ``OutboundMail`` row; return how many were sent.

    Safe to call from several processes at once (the scheduler's job, the
    web app's thread). A server that cannot be reached leaves the rows for a
    later try and ends the pass; ``stop`` ends it between two mails. Due:
    rows whose ``next_attempt_at`` (a retry, or a confirmation the signups'
    hourly cap held back) has come by ``now`` (the clock's; tests move it).
    """
    return outbox_pass(app, transport=transport, limit=limit, stop=stop, now=now).sent


@dataclass(frozen=True, slots=True)
class OutboxPass:
    """What one pass over the outbox did."""

    sent: int
    # The SMTP server could not be used at all (refused, dropped, bad login).
    unreachable: bool


def outbox_pass(
    app: Flask, *, transport: Transport | None = None, limit: int = 100, stop: threading.Event | None = None,
    now: datetime | None = None,
) -> OutboxPass:
    """``send_outbox``, also telling whether the server was unreachable; ``stop`` ends it between mails."""
    config = app.config
    settings = MailSettings.from_config(config)
    try:
        signer = signer_from_config(config)
    except DkimError as exc:
        log.error("DKIM disabled for transactional mail: %s", exc)
        signer = None
    own = transport is None
    if transport is None:
        transport = SmtpTransport(parse_smtp_url(config["SMTP_URL"]), timeout=float(config["SMTP_TIMEOUT"]))
    factory = get_sessionmaker(app)
    bucket = TokenBucket(float(config["SEND_RATE"]))
    sent = 0
    try:
        while True:
            with factory() as session:
                due = session.execute(
                    select(OutboundMail.id, OutboundMail.attempts)
                    .where(OutboundMail.sent_at.is_(None), OutboundMail.attempts < GIVE_UP_ATTEMPTS,
                           or_(OutboundMail.next_attempt_at.is_(None),
                               OutboundMail.next_attempt_at <= (now or utcnow())))
                    # Signups first (False sorts first), oldest first, then an import's bulk.
                    .order_by(OutboundMail.kind == MailKind.IMPORT_CONFIRM, OutboundMail.id).limit(limit)
                ).all()
            for mail_id, attempts in due:
                if stop is not None and stop.is_set():
                    return OutboxPass(sent, unreachable=False)
                sent += _send_one(app, mail_id, attempts, settings, signer, transport, bucket)
            if len(due) < limit:
                return OutboxPass(sent, unreachable=False)
    except DeliveryError as exc:
        log.warning("transactional mail waits: %s", exc)
        return OutboxPass(sent, unreachable=True)
    finally:
        if own:
            transport.close()


def _send_one(app: Flask, mail_id: int, attempts: int, settings: MailSettings, signer: DkimSigner | None,
              transport: Transport, bucket: TokenBucket | None = None) -> int:
    """Claim, send and record one row; 1 if it was sent. DeliveryError passes through.

    ``bucket``: the pass's ``SEND_RATE``, taken before the message leaves.
    """
    factory = get_sessionmaker(app)
    now = utcnow()
    with factory() as session, session.begin():
        claimed = session.execute(
            update(OutboundMail)
            .where(OutboundMail.id == mail_id, OutboundMail.attempts == attempts, OutboundMail.sent_at.is_(None))
            .values(attempts=attempts + 1, next_attempt_at=now + timedelta(seconds=CLAIM_SECONDS))
        ).rowcount  # type: ignore[attr-defined]
        row = session.get(OutboundMail, mail_id) if claimed else None
        if row is not None:
            session.expunge(row)
    if row is None:
        return 0  # another process took it
    address, problem = envelope_address(row.to_address, transport.smtputf8)
    if address is None:
        _finish(app, mail_id, sent=False, error=problem, retry=None)
        return 0
    # The first mail of a connection finds it not yet open: quoted-printable then.
    # Signed: 7bit, so that no relay's downgrade can break the body hash (RFC 6376, 5.3).
    message, eightbit = build_mail(row, settings, transport.eightbit and signer is None)
    if signer is not None:
        message = signer.sign(message)
    if bucket is not None:
        bucket.take()
    try:
        options = ["BODY=8BITMIME"] if eightbit else []
        if not address.isascii():
            options.append("SMTPUTF8")
        reply = transport.send(settings.envelope_from, address, wire_form(message), options=options)
    except DeliveryError as exc:
        _finish(app, mail_id, sent=False, error=str(exc), retry=_backoff(attempts + 1))
        raise
    outcome = classify(reply)
    if outcome is SendOutcome.SENT:
        _finish(app, mail_id, sent=True, error=None, retry=None)
        return 1
    if outcome in (SendOutcome.FAILED, SendOutcome.BOUNCED):
        _finish(app, mail_id, sent=False, error=str(reply), retry=None)
    else:  # 4xx, and 5.7.x: our own setup, worth retrying once it is fixed
        if outcome is SendOutcome.PAUSE:
            log.error("transactional mail refused for a reason about the sender: %s", reply)
        _finish(app, mail_id, sent=False, error=str(reply), retry=_backoff(attempts + 1))
    return 0


def _backoff(attempts: int) -> timedelta:
    """The wait before the next try after ``attempts`` tries."""
    return timedelta(seconds=min(BACKOFF_CEILING, BACKOFF_SECONDS * 2 ** max(0, attempts - 1)))


def _finish(app: Flask, mail_id: int, *, sent: bool, error: str | None, retry: timedelta | None) -> None:
    """Record a row's outcome; ``retry`` None with ``sent`` False means given up."""
    now = utcnow()
    values: dict[str, object] = {"last_error": error[:2000] if error else None}
    if sent:
        values["sent_at"] = now
    elif retry is None:
        values["attempts"] = GIVE_UP_ATTEMPTS
        log.warning("transactional mail %d given up: %s", mail_id, error)
    else:
        values["next_attempt_at"] = now + retry
    with get_sessionmaker(app)() as session, session.begin():
        session.execute(update(OutboundMail).where(OutboundMail.id == mail_id).values(**values))


def next_due(app: Flask) -> datetime | None:
    """When the next unsent row is due (None: nothing left to send)."""
    with get_sessionmaker(app)() as session:
        pending = session.execute(
            select(func.count(), func.min(func.coalesce(OutboundMail.next_attempt_at, OutboundMail.created_at)))
            .where(OutboundMail.sent_at.is_(None), OutboundMail.attempts < GIVE_UP_ATTEMPTS)
        ).one()
    return pending[1] if pending[0] else None


class OutboxWorker(Worker):
    """A lazily started daemon thread per process that sends the outbox."""

    name = "outbox"

    def _reset(self) -> None:
        """Fresh thread state, for this process."""
        super()._reset()
        # After the server could not be reached, passes wait until then (a
        # monotonic time) however many signups notify: a flood of signups
        # while SMTP is down must not become a flood of connection attempts.
        self._quiet_until = 0.0
        self._unreachable_passes = 0

    def _after(self, result: OutboxPass) -> None:
        """Hold further passes back, longer each time, while the server is unreachable."""
        if not result.unreachable:
            self._unreachable_passes = 0
            return
        self._unreachable_passes += 1
        hold = min(UNREACHABLE_CEILING, UNREACHABLE_SECONDS * 2 ** (self._unreachable_passes - 1))
        self._quiet_until = time.monotonic() + hold

    def _loop(self, stop: threading.Event) -> None:
        """Send, then sleep until notified or the next retry; end after a quiet while or ``stop``."""
        wait = 0.0
        while True:
            woke = self._wake.wait(wait)
            if stop.is_set():
                return
            self._wake.clear()
            quiet = self._quiet_until - time.monotonic()
            if quiet > 0:
                wait = quiet
                continue
            try:
                self._after(outbox_pass(self.app, stop=stop))
                due = next_due(self.app)
            except Exception:  # the thread must outlive a bad moment
                log.exception("outbox pass failed")
                due = utcnow() + timedelta(seconds=BACKOFF_SECONDS)
            if due is None:
                wait = self.idle_seconds
                if not woke and self._exit_if_idle(stop):
                    return
            else:
                wait = min(self.idle_seconds, max(0.5, (due - utcnow()).total_seconds()))
