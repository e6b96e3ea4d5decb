"""The scheduler around the jobs: catch-up of missed slots, coalescing, stop."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.events import EVENT_JOB_EXECUTED, EVENT_JOB_SUBMITTED, JobEvent, JobExecutionEvent
from apscheduler.schedulers.background import BackgroundScheduler
from flask import Flask
from sqlalchemy import event, func, insert, select
from sqlalchemy.orm import Session

from mailer.db import get_engine, make_engine
from mailer.models import Digest, JobOutcome, JobRun
from mailer.runner import Job, build_scheduler, missed_jobs, run_job
from mailer.scheduler import JOBS, new_scheduler
from tests.http_server import FeedServer
from tests.scheduler.conftest import add_readers, job, rss
from tests.smtp_sink import SmtpSink

ROME = ZoneInfo("Europe/Rome")


def daily_an_hour_ago() -> tuple[str, datetime]:
    """A daily schedule whose latest slot was an hour ago, and that slot (naive UTC)."""
    slot = (datetime.now(ROME) - timedelta(hours=1)).replace(second=0, microsecond=0)
    return f"{slot.minute} {slot.hour} * * *", slot.astimezone(UTC).replace(tzinfo=None)


def test_the_first_start_marks_a_baseline_and_fires_nothing(app: Flask, session: Session) -> None:
    app.config["DIGEST_SCHEDULE"], _slot = daily_an_hour_ago()
    assert missed_jobs(app, JOBS, datetime.now(UTC)) == []
    session.expire_all()
    baseline = session.get(JobRun, "digest")
    assert baseline is not None
    assert baseline.last_fire_at is not None
    assert datetime.now(UTC).replace(tzinfo=None) - baseline.last_fire_at < timedelta(minutes=1)
    assert missed_jobs(app, JOBS, datetime.now(UTC)) == []


def test_a_slot_missed_while_down_is_caught_up_once(app: Flask, session: Session, feed_server: FeedServer) -> None:
    app.config["DIGEST_SCHEDULE"], slot = daily_an_hour_ago()
    app.config["FEEDS"] = [feed_server.add("/feed.xml", rss(1))]
    # The scheduler last ran three days ago: three daily slots were missed.
    session.add(JobRun(name="digest", last_fire_at=slot - timedelta(days=3)))
    session.commit()
    assert [j.name for j in missed_jobs(app, JOBS, datetime.now(UTC))] == ["digest"]
    assert run_job(app, job("digest"), threading.Event()) == "ok"
    session.expire_all()
    assert session.get(JobRun, "digest").last_fire_at == slot  # type: ignore[union-attr]
    assert missed_jobs(app, JOBS, datetime.now(UTC)) == []


def test_a_slot_older_than_the_grace_time_waits_for_the_next_one(app: Flask, session: Session) -> None:
    app.config["DIGEST_SCHEDULE"], slot = daily_an_hour_ago()
    app.config["SCHEDULER_GRACE_HOURS"] = 0.5  # the slot an hour ago is too late now
    session.add(JobRun(name="digest", last_fire_at=slot - timedelta(days=1)))
    session.commit()
    assert missed_jobs(app, JOBS, datetime.now(UTC)) == []


def test_the_jobs_are_scheduled_in_the_time_zone_with_coalescing(app: Flask) -> None:
    app.config.update(DIGEST_SCHEDULE="0 8 * * mon", FEED_INTERVAL=30)
    scheduler = build_scheduler(app, new_scheduler(app, BackgroundScheduler), JOBS, threading.Event())
    jobs = {j.id: j for j in scheduler.get_jobs()}
    assert set(jobs) == {"digest", "deliveries", "feeds", "purge", "signups", "outbox", "bounces", "catch-up"}
    for name in ("digest", "deliveries", "feeds", "purge", "signups", "outbox"):
        assert jobs[name].coalesce is True
        assert jobs[name].max_instances == 1
        assert jobs[name].misfire_grace_time
    assert jobs["digest"].misfire_grace_time == 12 * 3600
    assert jobs["digest"].executor == jobs["deliveries"].executor == "send"
    assert jobs["feeds"].trigger.interval == timedelta(minutes=30)
    scheduler.start(paused=True)
    try:
        digest_at = scheduler.get_job("digest").next_run_time.astimezone(ROME)
        assert digest_at.strftime("%a %H:%M") == "Mon 08:00"
    finally:
        scheduler.shutdown(wait=False)


def test_a_running_scheduler_catches_up_a_missed_digest_once(
    app: Flask, session: Session, smtp_server: SmtpSink, feed_server: FeedServer
) -> None:
    app.config["DIGEST_SCHEDULE"], slot = daily_an_hour_ago()
    app.config["FEEDS"] = [feed_server.add("/feed.xml", rss(2))]
    add_readers(session, ["anna@example.it", "bruno@example.it"])
    session.add(JobRun(name="digest", last_fire_at=slot - timedelta(days=3)))
    session.commit()
    stop = threading.Event()
    scheduler = build_scheduler(app, new_scheduler(app, BackgroundScheduler), JOBS, stop)
    runs: list[JobExecutionEvent] = []
    submitted: list[JobEvent] = []
    first_run = threading.Event()

    def executed(event: JobExecutionEvent) -> None:
        if event.job_id == "digest":
            runs.append(event)
            first_run.set()

    scheduler.add_listener(executed, EVENT_JOB_EXECUTED)
    scheduler.add_listener(lambda e: submitted.append(e) if e.job_id == "digest" else None, EVENT_JOB_SUBMITTED)
    scheduler.start()
    try:
        smtp_server.wait_for(2)
        assert first_run.wait(5), "the digest run did not finish"
    finally:
        stop.set()
        scheduler.shutdown(wait=True)  # a second, wrong, run already submitted runs to its end first
    assert len(submitted) == 1
    assert len(runs) == 1
    assert runs[0].retval is JobOutcome.OK
    assert len(smtp_server.messages) == 2
    session.expire_all()
    assert session.scalar(select(func.count()).select_from(Digest)) == 1


@contextmanager
def another_scheduler_inserts_first(app: Flask, name: str, **values: Any) -> Iterator[None]:
    """Just before this process's first INSERT into job_runs, another process inserts ``name``'s row and commits.

    What two ``scheduler run`` started at the same instant on a fresh database
    do: both read no row, then both insert one.
    """
    other = make_engine(app.config["DATABASE_URL"])
    done: list[bool] = []

    def first(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if not done and statement.lstrip().upper().startswith("INSERT INTO JOB_RUNS"):
            done.append(True)
            with other.begin() as conn:
                conn.execute(insert(JobRun).values(name=name, **values))

    event.listen(get_engine(app), "before_cursor_execute", first)
    try:
        yield
    finally:
        event.remove(get_engine(app), "before_cursor_execute", first)
        other.dispose()
    assert done, "no INSERT into job_runs was seen"


def test_two_schedulers_starting_at_once_both_check_for_missed_jobs(
    app: Flask, session: Session, caplog
) -> None:
    app.config["DIGEST_SCHEDULE"], _slot = daily_an_hour_ago()
    theirs = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    with another_scheduler_inserts_first(app, "digest", last_fire_at=theirs):
        assert missed_jobs(app, JOBS, datetime.now(UTC)) == []  # was IntegrityError: UNIQUE job_runs.name
    session.expire_all()
    assert session.get(JobRun, "digest").last_fire_at == theirs  # type: ignore[union-attr]
    assert session.get(JobRun, "purge").last_fire_at is not None  # type: ignore[union-attr]


def test_the_first_record_of_a_job_does_not_collide_with_another_schedulers(
    app: Flask, session: Session, caplog
) -> None:
    caplog.set_level(logging.INFO, logger="mailer.scheduler")
    probe = Job("probe", lambda _app, _stop: None, lambda _config: None, lock="probe")
    with another_scheduler_inserts_first(app, "probe", outcome="skipped"):
        assert run_job(app, probe, threading.Event()) == "ok"
    assert "could not record" not in caplog.text
    session.expire_all()
    assert session.get(JobRun, "probe").outcome == "ok"  # type: ignore[union-attr]
