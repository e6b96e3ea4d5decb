"""Jobs that call several stages in order, and the scheduler that runs them.

``poll_feeds`` and ``send_digest`` are shared by the command line and the
scheduler, so both do exactly the same thing. ``JOBS`` is what ``scheduler
run`` (``run_forever``) and the devserver schedule; ``mailer.runner`` runs
them under their locks.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.interval import IntervalTrigger
from flask import Flask
from sqlalchemy import select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from mailer.crontab import cron_trigger
from mailer.db import get_sessionmaker, session_scope
from mailer.delivery import DeliveryReport, SenderBusyError, deliver, send_outbox
from mailer.delivery.bounces import Source, mark_read, read_paths, record_bounce
from mailer.digest import compose_digest, skip_reason
from mailer.feeds import FetchResult, fetch_all_feeds, sync_configured_feeds
from mailer.locks import advisory_key
from mailer.models import Digest, DigestStatus, utcnow
from mailer.runner import Job, SchedulerT, build_scheduler
from mailer.shutdown import die_by_signal, stop_on_signals
from mailer.subscriptions import apply_queue, purge_unconfirmed, suppress_bounced

log = logging.getLogger("mailer.scheduler")
# Seconds a sender waits for another one's composing before it gives up (exit 75).
COMPOSE_WAIT = 300
# Unconfirmed signups are purged every night, in MAILER_TIMEZONE.
PURGE_SCHEDULE = "17 3 * * *"


def poll_feeds(app: Flask, stop: threading.Event | None = None) -> list[FetchResult]:
    """Poll every enabled feed (those of ``MAILER_FEEDS`` are added first).

    ``stop`` abandons the downloads in progress (a feed may hang for
    ``FEED_TIMEOUT``): the scheduler's shutdown does not wait for them.
    """
    with app.app_context():
        with session_scope(app) as session:
            sync_configured_feeds(session, app.config["FEEDS"])
        return fetch_all_feeds(get_sessionmaker(app), app.config, stop=stop)


def send_digest(app: Flask, *, poll: bool, echo: Callable[[str], None] = print,
                stop: threading.Event | None = None) -> DeliveryReport:
    """Finish unfinished digests, compose a new one if there is news, send it.

    ``poll`` first polls the feeds (the scheduler's digest job does; the
    ``digest send`` command does not). ``stop`` (SIGTERM in the scheduler)
    ends the send after the messages in flight, leaving the rest queued.
    Raises ``DeliveryError`` when the SMTP server cannot be used at all.
    """
    with app.app_context():
        if poll:
            for result in poll_feeds(app, stop):
                echo(result.line())
        # Unfinished digests first: a crash or a deferral must not wait a week.
        report = deliver(app, echo=echo, stop=stop)
        _suppress_bounced(app, echo)
        if stop is not None and stop.is_set():
            return report
        joining: list[int] = []
        with session_scope(app) as session:
            wait_for_composer(session, echo)
            now = utcnow()
            digest = compose_digest(session, app.config, now)
            if digest is None:
                echo(f"no new digest: {skip_reason(session, app.config, now) or 'another process composed it'}")
                # Composed by a sender started with us: join it and carry a share.
                sending = session.scalars(select(Digest.id).where(Digest.status == DigestStatus.SENDING))
                joining = [digest_id for digest_id in sending if digest_id not in report.digests]
                for digest_id in joining:
                    echo(f"digest {digest_id} is being sent by another process: joining it")
            else:
                echo(f"composed digest {digest.id} ({digest.period}) with {digest.article_count} articles")
        if digest is not None or joining:
            report = report.merge(deliver(app, echo=echo, stop=stop))
            _suppress_bounced(app, echo)
        return report


def wait_for_composer(session: Session, echo: Callable[[str], None]) -> None:
    """PostgreSQL: compose one at a time, waiting (bounded) for a composer's commit.

    The lock is the transaction's: it goes with the composer's commit, after
    which this sender sees the digest composed and joins its send instead of
    rendering it a second time. SQLite serialises writers by itself.
    """
    if session.get_bind().dialect.name != "postgresql":
        return
    key = {"key": advisory_key("compose")}
    if session.scalar(text("SELECT pg_try_advisory_xact_lock(:key)"), key):
        return
    echo(f"another process is composing the digest: waiting for it (at most {COMPOSE_WAIT} s)")
    session.execute(text(f"SET LOCAL lock_timeout = '{COMPOSE_WAIT}s'"))
    try:
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), key)
    except OperationalError:
        raise SenderBusyError(f"another process has been composing the digest for {COMPOSE_WAIT} s: "
                              "try again when it has finished") from None
    session.execute(text("SET LOCAL lock_timeout = 0"))


def process_bounce_mail(app: Flask, sources: Iterable[Source], echo: Callable[[str], None] = print) -> int:
    """Record the bounce reports that came back by mail, then suppress the hard-bounced readers.

    Each mail is committed before it is marked read (a Maildir's new/ to
    cur/), so a crash in between reads it again, which changes nothing.
    Returns how many readers were suppressed.
    """
    with app.app_context():
        for source in sources:
            with session_scope(app) as session:
                lines = record_bounce(session, source.raw)
            mark_read(source)
            for line in lines:
                echo(f"{source.name}: {line}")
        with session_scope(app) as session:
            count = suppress_bounced(session)
    echo(f"{count} readers suppressed after a hard bounce")
    return count


def _suppress_bounced(app: Flask, echo: Callable[[str], None]) -> None:
    """Readers whose address hard-bounced get no further digest."""
    with session_scope(app) as session:
        count = suppress_bounced(session)
    if count:
        echo(f"{count} readers suppressed after a hard bounce")


# --- the scheduler's jobs: (app, stop) -> None, run by mailer.runner -------


def digest_job(app: Flask, stop: threading.Event) -> None:
    """Poll the feeds, finish unfinished digests, compose and send this one."""
    report = send_digest(app, poll=True, echo=log.info, stop=stop)
    log.info("digest job: %s", report.line())


def feeds_job(app: Flask, stop: threading.Event) -> None:
    """Poll every enabled feed; the scheduler's log gets each feed's line."""
    for result in poll_feeds(app, stop):
        log.info("%s", result.line())


def deliveries_job(app: Flask, stop: threading.Event) -> None:
    """Retry deferred deliveries and resume unfinished or resumed sends."""
    report = deliver(app, echo=log.info, stop=stop)
    _suppress_bounced(app, log.info)
    if report.sent or report.failed or report.deferred:
        log.info("deliveries job: %s", report.line())


def purge_job(app: Flask, stop: threading.Event) -> None:
    """Drop signups left unconfirmed too long."""
    with session_scope(app) as session:
        count = purge_unconfirmed(session, app.config, utcnow())
    log.info("purged %d unconfirmed signups", count)


def signups_job(app: Flask, stop: threading.Event) -> None:
    """Apply the signups a web process queued but did not apply (it died, or runs no worker)."""
    with app.app_context():
        applied = apply_queue(app, stop=stop)
    if applied:
        log.info("applied %d queued signups", applied)


def bounces_job(app: Flask, stop: threading.Event) -> None:
    """Read the bounce reports in MAILER_BOUNCE_MAILDIR, if set."""
    maildir = app.config.get("BOUNCE_MAILDIR")
    if maildir:
        process_bounce_mail(app, read_paths([maildir]), echo=log.info)


def outbox_job(app: Flask, stop: threading.Event) -> None:
    """Send what waits in the outbox: the confirmation mails the web app left
    behind (it died, SMTP was down) and those an import queued. SIGTERM
    ends it between two mails (an import may have queued thousands)."""
    sent = send_outbox(app, stop=stop)
    if sent:
        log.info("sent %d transactional mails left in the outbox", sent)


def _every(key: str, default: float) -> Callable[[Mapping[str, Any]], BaseTrigger]:
    return lambda config: IntervalTrigger(minutes=float(config.get(key) or default), timezone=UTC)


JOBS = [
    Job("digest", digest_job, lambda c: cron_trigger(c["DIGEST_SCHEDULE"], c["TIMEZONE"]), lock="send",
        cron=True, executor="send"),
    Job("deliveries", deliveries_job, _every("SCHEDULER_RETRY_MINUTES", 5), lock="send", executor="send"),
    Job("feeds", feeds_job, _every("FEED_INTERVAL", 60), lock="feeds"),
    Job("purge", purge_job, lambda c: cron_trigger(PURGE_SCHEDULE, c["TIMEZONE"]), lock="purge", cron=True),
    Job("signups", signups_job, _every("SIGNUP_QUEUE_MINUTES", 1), lock="signups"),
    Job("outbox", outbox_job, _every("OUTBOX_MINUTES", 1), lock="outbox"),
    Job("bounces", bounces_job, _every("BOUNCE_MINUTES", 5), lock="bounces"),
]


def new_scheduler(app: Flask, cls: type[SchedulerT]) -> SchedulerT:
    """An APScheduler scheduler in ``MAILER_TIMEZONE`` with the executors the jobs use."""
    scheduler: SchedulerT = cls(
        timezone=ZoneInfo(app.config["TIMEZONE"]),
        # "send": one thread, so the digest waits behind a retry run instead
        # of both delivering at once in this process.
        executors={"default": ThreadPoolExecutor(4), "send": ThreadPoolExecutor(1)},
    )
    return scheduler


def run_forever(app: Flask) -> None:
    """Run the scheduler in the foreground (``scheduler run``) until SIGTERM or Ctrl-C.

    The signal sets the stop event: a send finishes the messages in flight,
    saves its state and returns; a feed poll abandons its downloads; queued
    runs do not start; then this returns.
    """
    # The main thread only waits: the jobs run in the executors' threads, so
    # the handler may log. A second signal ends the process at once.
    with stop_on_signals(log.info, at_once=die_by_signal) as stop:
        scheduler = build_scheduler(app, new_scheduler(app, BackgroundScheduler), JOBS, stop)
        scheduler.start()
        log.info("scheduler started: %s", describe(scheduler))
        while not stop.wait(3600):
            pass
        scheduler.shutdown(wait=True)
    log.info("scheduler stopped")


def describe(scheduler: BaseScheduler) -> str:
    """The jobs and their next run times, on one line."""
    parts = []
    for job in scheduler.get_jobs():
        when = job.next_run_time.strftime("%Y-%m-%d %H:%M %Z") if job.next_run_time else "paused"
        parts.append(f"{job.id} next at {when}")
    return "; ".join(parts)
