"""Runs the scheduler's jobs under APScheduler 3: triggers, locks, catch-up, stop.

``build_scheduler`` adds every ``Job`` to an APScheduler scheduler (blocking or
background, the same jobs either way). Each run of a job:

- returns at once once the stop event is set (SIGTERM, Ctrl-C);
- takes the job's named lock (``mailer.locks``) and is skipped when another
  scheduler holds it, so two schedulers never run it at the same time;
- is recorded in ``job_runs``: a cron job whose last slot (within the grace
  time) has no finished run is started at once, when the scheduler starts
  and every few minutes after. A slot missed while no scheduler was up, or
  a run that failed, fires once, not once per missed slot.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, EVENT_JOB_MISSED, EVENT_JOB_SUBMITTED, JobEvent
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.interval import IntervalTrigger
from flask import Flask
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from mailer.crontab import last_fire_time
from mailer.db import session_scope
from mailer.delivery import DeliveryError, SenderBusyError
from mailer.locks import job_lock
from mailer.models import JobOutcome, JobRun, utcnow

log = logging.getLogger("mailer.scheduler")
SchedulerT = TypeVar("SchedulerT", bound=BaseScheduler)


@dataclass(frozen=True)
class Job:
    """One job: what it runs, its trigger, its lock, its executor."""

    name: str
    run: Callable[[Flask, threading.Event], None]
    trigger: Callable[[Mapping[str, Any]], BaseTrigger]
    lock: str
    # Cron jobs have slots that must not be lost; interval jobs start at once.
    cron: bool = False
    # Jobs that send share the one-thread "send" executor: they queue up in
    # this process instead of skipping each other.
    executor: str = "default"


def grace(config: Mapping[str, Any]) -> timedelta:
    """How late a cron job's slot may still fire (``SCHEDULER_GRACE_HOURS``)."""
    return timedelta(hours=float(config["SCHEDULER_GRACE_HOURS"]))


def run_job(app: Flask, job: Job, stop: threading.Event) -> JobOutcome:
    """Run ``job`` once under its lock; return how it ended."""
    if stop.is_set():
        return JobOutcome.STOPPED
    started = datetime.now(UTC)
    error: str | None = None
    with app.app_context():
        try:
            with job_lock(app, job.lock) as held:
                if not held:
                    log.info("%s job skipped: another scheduler (or a send started by hand) holds its lock", job.name,
                             extra={"job": job.name, "outcome": JobOutcome.SKIPPED})
                    return JobOutcome.SKIPPED
                log.info("%s job started", job.name, extra={"job": job.name})
                job.run(app, stop)
        except SenderBusyError as exc:
            log.info("%s job skipped: %s", job.name, exc, extra={"job": job.name, "outcome": JobOutcome.SKIPPED})
            return JobOutcome.SKIPPED
        except DeliveryError as exc:
            error = f"SMTP: {exc}"
        except Exception as exc:  # one failed run must not stop the scheduler
            log.exception("%s job failed", job.name, extra={"job": job.name, "outcome": JobOutcome.ERROR})
            error = f"{type(exc).__name__}: {exc}"
        if error and error.startswith("SMTP: "):
            log.error("%s job failed: %s", job.name, error, extra={"job": job.name, "outcome": JobOutcome.ERROR})
        outcome = JobOutcome.STOPPED if stop.is_set() and not error else (JobOutcome.ERROR if error else JobOutcome.OK)
        if outcome is JobOutcome.OK:
            log.info("%s job finished", job.name, extra={"job": job.name, "outcome": JobOutcome.OK})
        _record(app, job, started, outcome, error)
    return outcome


def _record(app: Flask, job: Job, started: datetime, outcome: JobOutcome, error: str | None) -> None:
    """Write the run to ``job_runs``; a finished cron run marks its slot as done."""
    slot = last_fire_time(job.trigger(app.config), started, grace(app.config)) if job.cron else None
    try:
        with session_scope(app) as session:
            _insert_job_run(session, job.name)
            row = session.get_one(JobRun, job.name)
            row.started_at = started.replace(tzinfo=None)
            row.finished_at = utcnow()
            row.outcome, row.error = outcome, error
            if outcome is JobOutcome.OK and slot is not None:
                done = slot.astimezone(UTC).replace(tzinfo=None)
                row.last_fire_at = max(done, row.last_fire_at or done)
    except Exception:  # the database may be the reason the job failed
        log.warning("could not record the %s job run", job.name, exc_info=True)


def missed_jobs(app: Flask, jobs: list[Job], now: datetime) -> list[Job]:
    """Cron jobs whose latest slot within the grace time has no finished run.

    A job never seen before gets a row marking ``now`` as its start, so the
    very first start of a scheduler does not fire a job off-schedule.
    """
    missed = []
    baseline = now.astimezone(UTC).replace(tzinfo=None)
    with session_scope(app) as session:
        for job in (j for j in jobs if j.cron):
            row = session.get(JobRun, job.name)
            if row is None:
                if _insert_job_run(session, job.name, last_fire_at=baseline):
                    continue
                row = session.get_one(JobRun, job.name)  # another scheduler's, added meanwhile
            if row.last_fire_at is None:
                row.last_fire_at = baseline
                continue
            slot = last_fire_time(job.trigger(app.config), now, grace(app.config))
            if slot is not None and row.last_fire_at < slot.astimezone(UTC).replace(tzinfo=None):
                missed.append(job)
    return missed


def _insert_job_run(session: Session, name: str, **values: Any) -> bool:
    """Add the ``job_runs`` row of ``name`` unless there is one; True if this call added it.

    INSERT ... ON CONFLICT DO NOTHING, not a read then an insert: two
    schedulers started at the same instant on a fresh database would both
    read nothing and the second insert would fail on the primary key.
    """
    dialect = sqlite if session.get_bind().dialect.name == "sqlite" else postgresql
    statement = dialect.insert(JobRun).values(name=name, **values).on_conflict_do_nothing(index_elements=["name"])
    added: int = session.execute(statement).rowcount  # type: ignore[attr-defined]
    return added == 1


def build_scheduler(app: Flask, scheduler: SchedulerT, jobs: list[Job], stop: threading.Event,
                    *, first_run: datetime | None = None) -> SchedulerT:
    """Add ``jobs`` (and the catch-up check) to ``scheduler``, not started.

    Interval jobs and the catch-up check first run at ``first_run`` (default:
    now); the devserver passes a moment after its web server listens.
    """
    config = app.config
    start = first_run or datetime.now(UTC)
    # Runs submitted to an executor and not yet over, per job: a queued run
    # (waiting behind a send) must not be submitted again by the catch-up.
    inflight: Counter[str] = Counter()
    inflight_lock = threading.Lock()

    def track(event: JobEvent) -> None:
        with inflight_lock:
            inflight[event.job_id] += 1 if event.code == EVENT_JOB_SUBMITTED else -1

    scheduler.add_listener(track, EVENT_JOB_SUBMITTED | EVENT_JOB_EXECUTED | EVENT_JOB_ERROR | EVENT_JOB_MISSED)
    for job in jobs:
        trigger = job.trigger(config)
        # A cron job waits for its first slot (the catch-up covers missed
        # ones); an interval job runs at start. (next_run_time=None would
        # add the job paused, so it is left out for cron jobs.)
        first: dict[str, Any] = {} if job.cron else {"next_run_time": start}
        scheduler.add_job(
            run_job, trigger, args=[app, job, stop], id=job.name, name=job.name, executor=job.executor,
            coalesce=True, max_instances=1,
            misfire_grace_time=int(grace(config).total_seconds()) if job.cron else _interval_grace(trigger),
            **first,
        )

    def catch_up() -> None:
        """Start now the cron jobs that missed their slot (and are not running)."""
        if stop.is_set():
            return
        with app.app_context():
            try:
                missed = missed_jobs(app, jobs, datetime.now(UTC))
            except Exception:  # the database is down: try at the next check
                log.warning("could not check for missed jobs", exc_info=True)
                return
        for job in missed:
            with inflight_lock:
                busy = inflight[job.name] != 0
            if not busy:
                log.info("%s job missed its slot: running it now", job.name, extra={"job": job.name})
                scheduler.modify_job(job.name, next_run_time=datetime.now(UTC))

    check = IntervalTrigger(minutes=float(config["SCHEDULER_RETRY_MINUTES"]), timezone=UTC)
    scheduler.add_job(catch_up, check, id="catch-up", name="catch-up", coalesce=True, max_instances=1,
                      next_run_time=start)
    return scheduler


def _interval_grace(trigger: BaseTrigger) -> int | None:
    """An interval job may run late by up to one interval (then it coalesces)."""
    interval = getattr(trigger, "interval", None)
    return int(interval.total_seconds()) if isinstance(interval, timedelta) else None
