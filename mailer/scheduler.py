"""The scheduler: its jobs and how it runs them.

The stages each job calls in order live in ``pipeline.py`` (shared with the
command line, the dashboard and the mail viewer). ``JOBS`` is what
``scheduler run`` (``run_forever``) and the devserver schedule;
``mailer.runner`` runs them under their locks.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from datetime import UTC
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.interval import IntervalTrigger
from flask import Flask

from mailer.crontab import cron_trigger
from mailer.db import session_scope
from mailer.delivery import deliver, send_outbox
from mailer.delivery.bounces import expire_read, read_paths
from mailer.models import utcnow
from mailer.pipeline import poll_feeds, process_bounce_mail, send_digest, suppress_bounced_readers
from mailer.runner import Job, SchedulerT, build_scheduler
from mailer.shutdown import die_by_signal, stop_on_signals
from mailer.subscriptions import apply_queue, purge_outbox, purge_unconfirmed

log = logging.getLogger("mailer.scheduler")
# Unconfirmed signups are purged every night, in MAILER_TIMEZONE.
PURGE_SCHEDULE = "17 3 * * *"


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
    suppress_bounced_readers(app, log.info)
    if report.sent or report.failed or report.deferred:
        log.info("deliveries job: %s", report.line())


def purge_job(app: Flask, stop: threading.Event) -> None:
    """Drop signups left unconfirmed too long, and transactional mails past OUTBOX_RETENTION_DAYS."""
    with session_scope(app) as session:
        count = purge_unconfirmed(session, app.config, utcnow())
        purge_outbox(session, app.config, utcnow())
    log.info("purged %d unconfirmed signups", count)


def signups_job(app: Flask, stop: threading.Event) -> None:
    """Apply the signups a web process queued but did not apply (it died, or runs no worker)."""
    with app.app_context():
        applied = apply_queue(app, stop=stop)
    if applied:
        log.info("applied %d queued signups", applied)


def bounces_job(app: Flask, stop: threading.Event) -> None:
    """Read the reports in MAILER_BOUNCE_MAILDIR, if set; delete those read BOUNCE_RETENTION_DAYS ago."""
    maildir = app.config["BOUNCE_MAILDIR"]
    if maildir:
        process_bounce_mail(app, read_paths([maildir]), echo=log.info)
        expired = expire_read(Path(maildir), int(app.config["BOUNCE_RETENTION_DAYS"]))
        if expired:
            log.info("deleted %d report mails older than %s days", expired, app.config["BOUNCE_RETENTION_DAYS"])


def outbox_job(app: Flask, stop: threading.Event) -> None:
    """Send what waits in the outbox: the confirmation mails the web app left
    behind (it died, SMTP was down) and those an import queued. SIGTERM
    ends it between two mails (an import may have queued thousands)."""
    sent = send_outbox(app, stop=stop)
    if sent:
        log.info("sent %d transactional mails left in the outbox", sent)


def _every(key: str) -> Callable[[Mapping[str, Any]], BaseTrigger]:
    """A trigger every ``config[key]`` minutes (the default in config/defaults.py)."""
    return lambda config: IntervalTrigger(minutes=float(config[key]), timezone=UTC)


JOBS = [
    Job("digest", digest_job, lambda c: cron_trigger(c["DIGEST_SCHEDULE"], c["TIMEZONE"]), lock="send",
        cron=True, executor="send"),
    Job("deliveries", deliveries_job, _every("SCHEDULER_RETRY_MINUTES"), lock="send", executor="send"),
    Job("feeds", feeds_job, _every("FEED_INTERVAL"), lock="feeds"),
    Job("purge", purge_job, lambda c: cron_trigger(PURGE_SCHEDULE, c["TIMEZONE"]), lock="purge", cron=True),
    Job("signups", signups_job, _every("SIGNUP_QUEUE_MINUTES"), lock="signups"),
    Job("outbox", outbox_job, _every("OUTBOX_MINUTES"), lock="outbox"),
    Job("bounces", bounces_job, _every("BOUNCE_MINUTES"), lock="bounces"),
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
