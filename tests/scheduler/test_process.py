"""``flask --app wsgi scheduler run`` as a real process: it sends once, SIGTERM stops it cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mailer.delivery import deliver
from mailer.models import Delivery, DeliveryStatus, Digest, JobRun
from tests.http_server import FeedServer
from tests.scheduler.conftest import add_readers, rss
from tests.scheduler.test_runner import daily_an_hour_ago
from tests.smtp_sink import SmtpSink

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


@pytest.fixture
def start_scheduler(app: Flask, tmp_path: Path) -> Iterator[object]:
    """Start ``scheduler run`` on the test database with extra ``MAILER_*`` variables."""
    processes: list[subprocess.Popen[str]] = []

    def start(**variables: str) -> subprocess.Popen[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAILER_")}
        env.update({
            "MAILER_ENV": "testing", "MAILER_DATABASE_URL": app.config["DATABASE_URL"],
            "MAILER_SECRET_KEY": "test-secret", "MAILER_SMTP_URL": app.config["SMTP_URL"],
            "MAILER_BASE_URL": "http://newsletter.test", "MAILER_FROM": app.config["FROM"],
            "MAILER_INSTANCE_PATH": str(tmp_path / "instance"), "PYTHONUNBUFFERED": "1",
            "MAILER_FEED_ALLOW_NETWORKS": "127.0.0.0/8",  # the test feed server
        })
        env.update(variables)
        process = subprocess.Popen(
            [sys.executable, "-m", "flask", "--app", "wsgi", "scheduler", "run"], cwd=ROOT, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        processes.append(process)
        return process

    yield start
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait()


def wait_for_finished_run(session: Session, job: str, timeout: float) -> None:
    """Wait until ``job_runs`` records a finished run of ``job`` (another process writes it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        session.expire_all()
        run = session.get(JobRun, job)
        if run is not None and run.finished_at is not None:
            return
        session.rollback()  # a fresh snapshot for the next look
        time.sleep(0.05)
    raise AssertionError(f"no finished {job} run within {timeout} s")


def stop(process: subprocess.Popen[str]) -> tuple[int, str]:
    """SIGTERM, then the exit status and everything it printed."""
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=20)
    return process.returncode, output


def test_the_scheduler_process_sends_a_missed_digest_once_and_stops_on_sigterm(
    start_scheduler, session: Session, smtp_server: SmtpSink, feed_server: FeedServer
) -> None:
    schedule, slot = daily_an_hour_ago()
    add_readers(session, ["anna@example.it", "bruno@example.it", "carla@example.it"])
    # It was down at its last slot: it must send that digest when it comes back.
    session.add(JobRun(name="digest", last_fire_at=slot - timedelta(days=2)))
    session.commit()
    process = start_scheduler(MAILER_DIGEST_SCHEDULE=schedule, MAILER_FEEDS=feed_server.add("/feed.xml", rss(2)))

    smtp_server.wait_for(3, timeout=30)
    # Wait for the run to be recorded as finished, then stop: SIGTERM lets a job
    # already started finish, so a second, wrong, run would show in the output.
    wait_for_finished_run(session, "digest", timeout=30)
    status, output = stop(process)

    assert status == 0, output
    assert sorted(r for m in smtp_server.messages for r in m.rcpt_tos) == [
        "anna@example.it", "bruno@example.it", "carla@example.it",
    ]
    assert "digest job missed its slot" in output
    assert output.count("digest job started") == 1, output
    assert "SIGTERM received" in output
    assert "scheduler stopped" in output
    assert "Traceback" not in output
    session.expire_all()
    assert session.scalar(select(func.count()).select_from(Digest)) == 1
    assert session.get(JobRun, "digest").last_fire_at == slot  # type: ignore[union-attr]


def test_sigterm_during_a_send_finishes_the_messages_in_flight_and_saves_state(
    start_scheduler, app: Flask, session: Session, smtp_server: SmtpSink, feed_server: FeedServer
) -> None:
    schedule, slot = daily_an_hour_ago()
    emails = [f"reader{i:02d}@example.it" for i in range(40)]
    add_readers(session, emails)
    session.add(JobRun(name="digest", last_fire_at=slot - timedelta(days=1)))
    session.commit()
    # Ten messages a second on one connection: the send takes four seconds.
    process = start_scheduler(MAILER_DIGEST_SCHEDULE=schedule, MAILER_FEEDS=feed_server.add("/feed.xml", rss(2)),
                              MAILER_SEND_RATE="10", MAILER_SMTP_CONNECTIONS="1")
    smtp_server.wait_for(3, timeout=30)
    status, output = stop(process)

    assert status == 0, output
    received = [r for m in smtp_server.messages for r in m.rcpt_tos]
    assert 3 <= len(received) < len(emails)
    session.expire_all()
    states = Counter(session.scalars(select(Delivery.status)).all())
    # Saved as sent exactly what left; the rest waits, claimed by nobody.
    assert states[DeliveryStatus.SENT] == len(received)
    assert states[DeliveryStatus.PENDING] == len(emails) - len(received)
    assert session.scalar(select(func.count()).select_from(Delivery).where(Delivery.claimed_by.is_not(None))) == 0

    # The next run finishes the send without sending anyone a second copy.
    app.config["SEND_RATE"] = 0
    deliver(app, echo=lambda _line: None)
    received = [r for m in smtp_server.messages for r in m.rcpt_tos]
    assert sorted(received) == emails
