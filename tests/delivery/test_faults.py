"""Temporary and permanent SMTP failures against the real aiosmtpd server."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import update
from sqlalchemy.orm import Session

from mailer.delivery import DeliveryError, deliver, resume_digest
from mailer.delivery.report import Progress
from mailer.models import Delivery, DeliveryStatus, DigestStatus, Subscriber, SubscriberStatus, utcnow
from tests.delivery.factory import delivery, digest_row, make_digest, statuses
from tests.smtp_sink import SmtpSink


def quiet(_line: str) -> None:
    """An echo that drops the lines."""


def test_a_4xx_defers_with_backoff_and_a_later_run_sends_it(
    app: Flask, session: Session, smtp_server: SmtpSink
) -> None:
    made = make_digest(session, 3)
    greylisted = made.emails[1]
    smtp_server.reply_to_rcpt(greylisted, "450 4.2.0 Greylisted, try again later")
    app.config["DELIVERY_BACKOFF_SECONDS"] = 3600
    report = deliver(app, echo=quiet)
    assert (report.sent, report.deferred, report.failed) == (2, 1, 0)
    row = delivery(session, made.digest_id, greylisted)
    assert row.status == DeliveryStatus.DEFERRED and row.attempts == 1
    assert row.last_reply is not None and row.last_reply.startswith("450 4.2.0")
    assert row.next_attempt_at is not None and row.next_attempt_at > utcnow() + timedelta(minutes=50)
    assert digest_row(session, made.digest_id).status == DigestStatus.SENDING  # never finished while deferred
    # Not due yet: a second run leaves it alone.
    assert deliver(app, echo=quiet).sent == 0
    assert len(smtp_server.messages) == 2
    # Due now, and the server has changed its mind.
    session.execute(update(Delivery).where(Delivery.id == row.id).values(next_attempt_at=utcnow()))
    session.commit()
    smtp_server.handler.rcpt_replies.clear()
    report = deliver(app, echo=quiet)
    assert (report.sent, report.deferred) == (1, 0)
    assert smtp_server.to(greylisted) and delivery(session, made.digest_id, greylisted).attempts == 2
    assert digest_row(session, made.digest_id).status == DigestStatus.FINISHED


def test_short_retries_happen_within_the_same_run(app: Flask, session: Session, smtp_server: SmtpSink) -> None:
    made = make_digest(session, 1)
    smtp_server.reply_to_data("451 4.3.0 try again", "451 4.3.0 try again")
    app.config.update(DELIVERY_BACKOFF_SECONDS=0.05, DELIVERY_RETRY_WITHIN_RUN_SECONDS=30)
    report = deliver(app, echo=quiet)
    assert (report.sent, report.deferred) == (1, 0)
    assert delivery(session, made.digest_id, made.emails[0]).attempts == 3
    assert digest_row(session, made.digest_id).status == DigestStatus.FINISHED


def test_421_closes_the_connection_the_message_is_deferred_and_the_rest_go_on(
    app: Flask, session: Session, smtp_server: SmtpSink
) -> None:
    made = make_digest(session, 6)
    app.config["SMTP_CONNECTIONS"] = 1
    smtp_server.reply_to_data("421 4.3.2 Too many messages, closing connection")
    before = smtp_server.handler.connections
    report = deliver(app, echo=quiet)
    assert (report.sent, report.deferred) == (5, 1)
    assert smtp_server.handler.connections - before == 2  # reconnected once
    assert list(statuses(session, made.digest_id).values()).count(DeliveryStatus.DEFERRED) == 1


def test_a_dropped_connection_counts_as_a_451(app: Flask, session: Session, smtp_server: SmtpSink) -> None:
    made = make_digest(session, 2)
    app.config["SMTP_CONNECTIONS"] = 1
    smtp_server.reply_to_rcpt(made.emails[0], "421 4.4.2 bye")  # then the server hangs up
    report = deliver(app, echo=quiet)
    assert (report.sent, report.deferred) == (1, 1)
    row = delivery(session, made.digest_id, made.emails[0])
    assert row.status == DeliveryStatus.DEFERRED and row.last_reply is not None


def test_deferred_past_the_give_up_time_fails_for_good(app: Flask, session: Session, smtp_server: SmtpSink) -> None:
    made = make_digest(session, 2)
    session.execute(update(Delivery).where(Delivery.digest_id == made.digest_id)
                    .values(created_at=utcnow() - timedelta(hours=73)))
    session.commit()
    smtp_server.reply_to_rcpt(made.emails[0], "452 4.2.2 Mailbox full")
    report = deliver(app, echo=quiet)
    assert (report.sent, report.deferred, report.failed) == (1, 0, 1)
    row = delivery(session, made.digest_id, made.emails[0])
    assert row.status == DeliveryStatus.FAILED and row.last_reply is not None and "gave up" in row.last_reply
    assert not row.bounce
    assert digest_row(session, made.digest_id).status == DigestStatus.FINISHED


def test_a_hard_bounce_fails_and_marks_the_bounce_but_leaves_the_status_to_subscriptions(
    app: Flask, session: Session, smtp_server: SmtpSink
) -> None:
    made = make_digest(session, 3)
    smtp_server.reply_to_rcpt(made.emails[0], "550 5.1.1 <x>: Recipient address rejected: User unknown")
    report = deliver(app, echo=quiet)
    assert (report.sent, report.failed, report.bounced, report.deferred) == (2, 1, 1, 0)
    row = delivery(session, made.digest_id, made.emails[0])
    assert row.status == DeliveryStatus.FAILED and row.bounce
    assert session.get(Subscriber, made.readers[0]).status == SubscriberStatus.CONFIRMED  # type: ignore[union-attr]
    assert digest_row(session, made.digest_id).status == DigestStatus.FINISHED
    # Failed for good: never tried again.
    smtp_server.handler.rcpt_replies.clear()
    assert deliver(app, echo=quiet).sent == 0 and not smtp_server.to(made.emails[0])


def test_another_5xx_fails_without_a_bounce(app: Flask, session: Session, smtp_server: SmtpSink) -> None:
    made = make_digest(session, 2)
    smtp_server.reply_to_data("552 5.3.4 Message size exceeds fixed limit")
    report = deliver(app, echo=quiet)
    assert (report.sent, report.failed, report.bounced) == (1, 1, 0)
    assert not any(delivery(session, made.digest_id, e).bounce for e in made.emails)


def test_a_5_7_x_pauses_the_digest_and_suppresses_nobody(app: Flask, session: Session, smtp_server: SmtpSink) -> None:
    made = make_digest(session, 40)
    app.config.update(SMTP_CONNECTIONS=1, DELIVERY_BATCH_SIZE=10)
    smtp_server.reply_to_rcpt(made.emails[2], "550 5.7.1 Service unavailable; client host blocked")
    lines: list[str] = []
    report = deliver(app, echo=lines.append)
    digest = digest_row(session, made.digest_id)
    assert digest.status == DigestStatus.PAUSED and "5.7.1" in (digest.paused_reason or "")
    assert report.paused and report.paused[0][0] == made.digest_id
    assert any("paused" in line for line in lines)
    assert report.sent == 2 and len(smtp_server.messages) == 2
    states = statuses(session, made.digest_id)
    assert list(states.values()).count(DeliveryStatus.PENDING) == 38  # the refused one included
    row = delivery(session, made.digest_id, made.emails[2])
    assert not row.bounce and row.attempts == 1 and row.claimed_by is None
    assert all(r.claimed_by is None for r in session.query(Delivery).filter_by(digest_id=made.digest_id))
    # Paused: later runs send nothing, and say why, until the operator resumes it.
    later: list[str] = []
    assert deliver(app, echo=later.append).sent == 0
    assert any(f"digest {made.digest_id} is paused" in line and "5.7.1" in line for line in later)
    # ... and `digest send` keeps exiting 1: those deliveries are not settled.
    again = app.test_cli_runner().invoke(args=["digest", "send"])
    assert again.exit_code == 1 and f"digest resume {made.digest_id}" in again.output
    smtp_server.handler.rcpt_replies.clear()
    assert resume_digest(session, made.digest_id) is not None
    session.commit()
    report = deliver(app, echo=quiet)
    assert report.sent == 38 and len(smtp_server.messages) == 40
    assert digest_row(session, made.digest_id).status == DigestStatus.FINISHED


def test_connection_refused_is_one_line_and_nothing_is_marked(app: Flask, session: Session) -> None:
    made = make_digest(session, 3)
    app.config["SMTP_URL"] = "smtp://127.0.0.1:1"
    with pytest.raises(DeliveryError) as raised:
        deliver(app, echo=quiet)
    assert str(raised.value).startswith("cannot connect to the SMTP server at 127.0.0.1:1")
    assert "\n" not in str(raised.value)
    assert set(statuses(session, made.digest_id).values()) == {DeliveryStatus.PENDING}
    assert all(r.claimed_by is None and r.attempts == 0
               for r in session.query(Delivery).filter_by(digest_id=made.digest_id))


def test_digest_send_exits_1_with_one_line_when_the_server_refuses(app: Flask, session: Session) -> None:
    make_digest(session, 1)
    app.config["SMTP_URL"] = "smtp://127.0.0.1:1"
    result = app.test_cli_runner().invoke(args=["digest", "send"])
    assert result.exit_code == 1
    assert result.stderr.strip() == "error: cannot connect to the SMTP server at 127.0.0.1:1: Connection refused"


def test_the_counts_add_up_when_deferred_deliveries_are_retried_within_the_run(
    app: Flask, session: Session, smtp_server: SmtpSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A delivery deferred twice is one deferred delivery, not two."""
    app.config.update(DELIVERY_RETRY_WITHIN_RUN_SECONDS=3, DELIVERY_BACKOFF_SECONDS=1)
    made = make_digest(session, 6)
    for email in made.emails[:2]:
        smtp_server.reply_to_rcpt(email, "451 4.3.0 Try again later")
    smtp_server.reply_to_rcpt(made.emails[2], "550 5.1.1 No such user")
    bars: list[Progress] = []

    class Recorded(Progress):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            bars.append(self)

    monkeypatch.setattr("mailer.delivery.run.Progress", Recorded)
    lines: list[str] = []
    report = deliver(app, echo=lines.append)
    assert (report.sent, report.deferred, report.failed, report.bounced) == (3, 2, 1, 1)
    assert f"digest {made.digest_id}: 3 sent, 2 deferred, 1 failed (1 bounced)" in lines
    [bar] = bars
    assert (bar.done, bar.total) == (6, 6)  # six deliveries, however many tries the deferred ones had
