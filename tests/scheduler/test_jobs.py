"""The scheduler's jobs, called directly: what each does, under its lock, once."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from mailer import create_app
from mailer.db import get_engine
from mailer.locks import job_lock
from mailer.models import (
    ConsentEvent,
    Delivery,
    DeliveryStatus,
    Digest,
    JobOutcome,
    JobRun,
    OutboundMail,
    Subscriber,
    SubscriberStatus,
    utcnow,
)
from mailer.runner import run_job
from tests.http_server import FeedServer
from tests.scheduler.conftest import add_readers, job, rss
from tests.smtp_sink import SmtpSink

ROME = ZoneInfo("Europe/Rome")


def digests(session: Session) -> int:
    session.expire_all()
    return session.scalar(select(func.count()).select_from(Digest)) or 0


def test_the_digest_job_polls_composes_sends_and_records_its_slot(
    app: Flask, session: Session, smtp_server: SmtpSink, feed_server: FeedServer
) -> None:
    slot = (datetime.now(ROME) - timedelta(hours=1)).replace(second=0, microsecond=0)
    app.config.update(FEEDS=[feed_server.add("/feed.xml", rss(3))], DIGEST_SCHEDULE=f"{slot.minute} {slot.hour} * * *")
    add_readers(session, ["anna@example.it", "bruno@example.it"])

    assert run_job(app, job("digest"), threading.Event()) is JobOutcome.OK

    assert sorted(r for m in smtp_server.messages for r in m.rcpt_tos) == ["anna@example.it", "bruno@example.it"]
    assert "Notizia 1" in smtp_server.messages[0].message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert digests(session) == 1
    run = session.get(JobRun, "digest")
    assert run is not None
    assert run.outcome is JobOutcome.OK
    # The run covered the slot an hour ago (stored in UTC): a restart will not repeat it.
    assert run.last_fire_at == slot.astimezone(UTC).replace(tzinfo=None)


def test_the_digest_job_skips_while_another_scheduler_holds_the_lock(
    app: Flask, session: Session, smtp_server: SmtpSink, feed_server: FeedServer
) -> None:
    app.config.update(FEEDS=[feed_server.add("/feed.xml", rss(2))])
    add_readers(session, ["anna@example.it"])
    other = create_app({**app.config, "TESTING": True})  # another scheduler process, same database
    try:
        with job_lock(other, "send") as held:
            assert held
            assert run_job(app, job("digest"), threading.Event()) is JobOutcome.SKIPPED
            assert smtp_server.messages == []
            assert digests(session) == 0
    finally:
        get_engine(other).dispose()
    assert run_job(app, job("digest"), threading.Event()) is JobOutcome.OK
    assert len(smtp_server.messages) == 1


def test_two_schedulers_running_the_digest_job_at_once_send_it_once(
    app: Flask, session: Session, smtp_server: SmtpSink, feed_server: FeedServer
) -> None:
    # The feed answers slowly, so the first job still holds the lock when
    # the second one starts: without the lock both would poll and send.
    app.config.update(FEEDS=[feed_server.add("/feed.xml", rss(3), delay=0.6)])
    emails = [f"reader{i}@example.it" for i in range(5)]
    add_readers(session, emails)
    other = create_app({**app.config, "TESTING": True})
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def scheduler(instance: Flask) -> None:
        barrier.wait()
        outcomes.append(run_job(instance, job("digest"), threading.Event()))

    threads = [threading.Thread(target=scheduler, args=(a,)) for a in (app, other)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    finally:
        get_engine(other).dispose()
    assert sorted(outcomes) == [JobOutcome.OK, JobOutcome.SKIPPED]
    assert digests(session) == 1
    assert sorted(r for m in smtp_server.messages for r in m.rcpt_tos) == emails


def test_a_stopping_scheduler_starts_no_job(app: Flask, session: Session, smtp_server: SmtpSink,
                                            feed_server: FeedServer) -> None:
    app.config.update(FEEDS=[feed_server.add("/feed.xml", rss(2))])
    add_readers(session, ["anna@example.it"])
    stop = threading.Event()
    stop.set()
    assert run_job(app, job("digest"), stop) is JobOutcome.STOPPED
    assert smtp_server.messages == []
    assert feed_server.requests == []


def test_hard_bounces_are_suppressed_after_the_digest_job(
    app: Flask, session: Session, smtp_server: SmtpSink, feed_server: FeedServer
) -> None:
    app.config.update(FEEDS=[feed_server.add("/feed.xml", rss(2))])
    add_readers(session, ["anna@example.it", "ghost@example.it"])
    smtp_server.reply_to_rcpt("ghost@example.it", "550 5.1.1 No such user")

    assert run_job(app, job("digest"), threading.Event()) is JobOutcome.OK

    session.expire_all()
    rows = session.execute(select(Subscriber.email, Subscriber.status)).tuples().all()
    status: dict[str | None, SubscriberStatus] = dict(rows)
    assert status == {"anna@example.it": SubscriberStatus.CONFIRMED, "ghost@example.it": SubscriberStatus.BOUNCED}


def test_the_deliveries_job_retries_deferred_deliveries(
    app: Flask, session: Session, smtp_server: SmtpSink, feed_server: FeedServer
) -> None:
    app.config.update(FEEDS=[feed_server.add("/feed.xml", rss(2))], DELIVERY_BACKOFF_SECONDS=3600)
    add_readers(session, ["anna@example.it"])
    smtp_server.reply_to_data("451 4.3.0 Try again later")
    assert run_job(app, job("digest"), threading.Event()) is JobOutcome.OK
    assert smtp_server.messages == []
    session.expire_all()
    assert session.scalar(select(Delivery.status)) == DeliveryStatus.DEFERRED

    # Not due yet: the job leaves it alone.
    assert run_job(app, job("deliveries"), threading.Event()) is JobOutcome.OK
    assert smtp_server.messages == []
    # Due now (an hour later): the job sends it.
    session.execute(update(Delivery).values(next_attempt_at=utcnow() - timedelta(seconds=1)))
    session.commit()
    assert run_job(app, job("deliveries"), threading.Event()) is JobOutcome.OK
    assert [m.rcpt_tos for m in smtp_server.messages] == [["anna@example.it"]]
    session.expire_all()
    assert session.scalar(select(Delivery.status)) == DeliveryStatus.SENT


def test_a_failed_run_is_recorded_and_its_slot_stays_open(
    app: Flask, session: Session, feed_server: FeedServer
) -> None:
    # Nothing listens on port 1: the composed digest cannot be sent.
    app.config.update(SMTP_URL="smtp://127.0.0.1:1", FEEDS=[feed_server.add("/feed.xml", rss(1))])
    add_readers(session, ["anna@example.it"])
    session.add(JobRun(name="digest", last_fire_at=datetime(2020, 1, 1)))
    session.commit()
    assert run_job(app, job("digest"), threading.Event()) == "error"
    session.expire_all()
    run = session.get(JobRun, "digest")
    assert run is not None
    assert (run.outcome, run.last_fire_at) == ("error", datetime(2020, 1, 1))
    assert run.error and "SMTP" in run.error
    assert session.scalar(select(Delivery.status)) == DeliveryStatus.PENDING  # waits for the next run


def test_the_purge_job_drops_stale_unconfirmed_signups(app: Flask, session: Session) -> None:
    old = utcnow() - timedelta(days=8)
    session.add_all([
        Subscriber(email="old@example.it", email_hash="a" * 64, status=SubscriberStatus.PENDING, language="it",
                   topics="", confirm_nonce="n1", created_at=old, confirm_requested_at=old),
        Subscriber(email="new@example.it", email_hash="b" * 64, status=SubscriberStatus.PENDING, language="it",
                   topics="", confirm_nonce="n2", confirm_requested_at=utcnow()),
    ])
    session.commit()
    assert run_job(app, job("purge"), threading.Event()) is JobOutcome.OK
    session.expire_all()
    assert session.scalars(select(Subscriber.email)).all() == ["new@example.it"]
    assert session.scalar(select(func.count()).select_from(ConsentEvent).where(ConsentEvent.action == "purge")) == 1


def test_the_purge_job_deletes_transactional_mails_past_their_retention(app: Flask, session: Session) -> None:
    """A sent confirmation holds the address and a live link: kept OUTBOX_RETENTION_DAYS (7), then deleted.

    What the hourly caps count (the last hour's rows, sent or waiting) stays.
    """
    now = utcnow()

    def mail(to: str, created: datetime, sent: datetime | None) -> OutboundMail:
        return OutboundMail(kind="confirm", to_address=to, subject="Conferma", html="<p>x</p>", text="x",
                            created_at=created, not_before=created, sent_at=sent)

    session.add_all([
        mail("old@example.it", now - timedelta(days=9), now - timedelta(days=8)),
        mail("never-left@example.it", now - timedelta(days=8), None),
        mail("late@example.it", now - timedelta(days=8), now - timedelta(days=6)),  # sent 6 days ago: kept
        mail("hour@example.it", now - timedelta(minutes=30), now - timedelta(minutes=29)),
        mail("waiting@example.it", now - timedelta(minutes=5), None),
    ])
    session.commit()
    assert app.config["OUTBOX_RETENTION_DAYS"] == 7
    assert run_job(app, job("purge"), threading.Event()) == "ok"
    session.expire_all()
    assert set(session.scalars(select(OutboundMail.to_address))) == {
        "late@example.it", "hour@example.it", "waiting@example.it"}


def test_the_outbox_job_sends_what_the_web_app_left_behind(app: Flask, session: Session, smtp_server: SmtpSink) -> None:
    session.add(OutboundMail(kind="confirm", to_address="anna@example.it", subject="Conferma",
                             html="<p>Conferma</p>", text="Conferma"))
    session.commit()
    assert run_job(app, job("outbox"), threading.Event()) is JobOutcome.OK
    assert [m.rcpt_tos for m in smtp_server.wait_for(1)] == [["anna@example.it"]]
    session.expire_all()
    assert session.scalar(select(OutboundMail.sent_at)) is not None


def test_the_feeds_job_polls_every_feed(app: Flask, session: Session, feed_server: FeedServer) -> None:
    app.config.update(FEEDS=[feed_server.add("/a.xml", rss(2, "Alfa")), feed_server.add("/b.xml", rss(1, "Beta"))])
    assert run_job(app, job("feeds"), threading.Event()) is JobOutcome.OK
    assert sorted(path for path, _headers in feed_server.requests) == ["/a.xml", "/b.xml"]


def test_the_feeds_job_logs_one_line_per_feed(app: Flask, feed_server: FeedServer, caplog) -> None:
    """The poll's own per-feed record is DEBUG (``feeds fetch`` prints the line); the job logs it once, at INFO."""
    caplog.set_level(logging.INFO, logger="mailer")
    url = feed_server.add("/a.xml", rss(2, "Alfa"))
    app.config.update(FEEDS=[url])
    assert run_job(app, job("feeds"), threading.Event()) is JobOutcome.OK
    about = [r for r in caplog.records if url in r.getMessage()]
    assert [(r.name, r.levelno, r.getMessage()) for r in about] == [
        ("mailer.scheduler", logging.INFO, f"ok     {url}: 2 new, 0 updated"),
    ]


@pytest.mark.sqlite_only
def test_a_deliveries_run_skips_while_another_process_sends_from_the_sqlite_file(
    app: Flask, session: Session, smtp_server: SmtpSink, feed_server: FeedServer
) -> None:
    # `digest send` from a terminal holds SQLite's one-sender lock: the
    # scheduler's run is skipped (not an error), and the send is not doubled.
    from mailer.delivery.senders import exclusive_sender

    app.config.update(FEEDS=[feed_server.add("/feed.xml", rss(1))])
    add_readers(session, ["anna@example.it"])
    with exclusive_sender(app.config["DATABASE_URL"]):
        assert run_job(app, job("digest"), threading.Event()) is JobOutcome.SKIPPED
        assert run_job(app, job("deliveries"), threading.Event()) is JobOutcome.SKIPPED
    assert smtp_server.messages == []
    # Its slot stays open: the catch-up check runs the digest job again.
    assert session.get(JobRun, "digest") is None
    assert run_job(app, job("digest"), threading.Event()) is JobOutcome.OK
    assert [m.rcpt_tos for m in smtp_server.messages] == [["anna@example.it"]]


def test_outbox_retention_is_read_from_the_environment_and_a_bad_value_refused(tmp_path) -> None:
    from mailer.config import ConfigError, Launch, load_config

    assert load_config({"MAILER_OUTBOX_RETENTION_DAYS": "2"}, None, str(tmp_path),
                       Launch.COMMAND)["OUTBOX_RETENTION_DAYS"] == 2
    with pytest.raises(ConfigError, match="MAILER_OUTBOX_RETENTION_DAYS"):
        load_config({"MAILER_OUTBOX_RETENTION_DAYS": "0"}, None, str(tmp_path), Launch.COMMAND)
