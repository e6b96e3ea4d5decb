"""Named job locks: one holder at a time, released on exit, never stuck after a crash."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from datetime import timedelta

import pytest
from flask import Flask
from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from mailer.db import get_engine
from mailer.locks import HOST_ID, advisory_key, job_lock
from mailer.models import Lock, utcnow


def lease_row(session: Session, name: str) -> Lock | None:
    session.expire_all()
    return session.scalar(select(Lock).where(Lock.name == name))


def test_a_lease_lock_has_one_holder_and_is_released(app: Flask, session: Session) -> None:
    with job_lock(app, "send", kind="lease") as first:
        assert first
        assert lease_row(session, "send") is not None
        with job_lock(app, "send", kind="lease") as second:
            assert not second
        with job_lock(app, "feeds", kind="lease") as other_name:
            assert other_name
    assert lease_row(session, "send") is None
    with job_lock(app, "send", kind="lease") as again:
        assert again


def test_a_lease_lock_is_released_when_the_job_raises(app: Flask, session: Session) -> None:
    with pytest.raises(RuntimeError), job_lock(app, "send", kind="lease"):
        raise RuntimeError("job failed")
    assert lease_row(session, "send") is None


def test_an_expired_lease_is_taken_over(app: Flask, session: Session) -> None:
    # A holder on another machine that stopped renewing (crashed, frozen).
    session.add(Lock(name="send", owner="elsewhere:4242:abc", expires_at=utcnow() - timedelta(seconds=1)))
    session.commit()
    with job_lock(app, "send", kind="lease") as held:
        assert held
        assert lease_row(session, "send").owner.startswith(HOST_ID)  # type: ignore[union-attr]


def test_a_live_lease_elsewhere_is_respected(app: Flask, session: Session) -> None:
    session.add(Lock(name="send", owner="elsewhere:4242:abc", expires_at=utcnow() + timedelta(minutes=5)))
    session.commit()
    with job_lock(app, "send", kind="lease") as held:
        assert not held
    assert lease_row(session, "send").owner == "elsewhere:4242:abc"  # type: ignore[union-attr]


def test_a_lease_of_a_dead_process_on_this_host_is_taken_over_at_once(app: Flask, session: Session) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    session.add(Lock(name="send", owner=f"{HOST_ID}:{dead.pid}:abc", expires_at=utcnow() + timedelta(minutes=5)))
    session.commit()
    with job_lock(app, "send", kind="lease") as held:
        assert held
    # ... but not the lease of a live one (this very process, another job).
    session.add(Lock(name="send", owner=f"{HOST_ID}:{os.getpid()}:abc", expires_at=utcnow() + timedelta(minutes=5)))
    session.commit()
    with job_lock(app, "send", kind="lease") as held:
        assert not held


def test_the_heartbeat_keeps_a_long_job_locked(app: Flask, session: Session) -> None:
    lease = timedelta(seconds=0.5)
    with job_lock(app, "send", kind="lease", lease=lease) as held:
        assert held
        first = lease_row(session, "send").expires_at  # type: ignore[union-attr]
        time.sleep(1.2)  # more than two leases: only renewals keep it alive
        renewed = lease_row(session, "send")
        assert renewed is not None
        assert renewed.expires_at > first
        assert renewed.expires_at > utcnow()
        with job_lock(app, "send", kind="lease", lease=lease) as second:
            assert not second


def test_a_stolen_lease_is_not_released_by_its_old_holder(app: Flask, session: Session) -> None:
    with job_lock(app, "send", kind="lease") as held:
        assert held
        # Another scheduler took it over (our lease ran out while we froze).
        session.execute(update(Lock).where(Lock.name == "send").values(owner="elsewhere:1:x"))
        session.commit()
    assert lease_row(session, "send").owner == "elsewhere:1:x"  # type: ignore[union-attr]


def test_concurrent_lease_attempts_give_exactly_one_holder(app: Flask) -> None:
    barrier = threading.Barrier(6)
    results: list[bool] = []
    release = threading.Event()

    def attempt() -> None:
        barrier.wait()
        with job_lock(app, "send", kind="lease") as held:
            results.append(held)
            if held:
                release.wait(5)

    threads = [threading.Thread(target=attempt) for _ in range(6)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 10
    while len(results) < 6 and time.monotonic() < deadline:
        time.sleep(0.01)
    release.set()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 5 + [True]


@pytest.mark.postgresql_only
def test_the_advisory_lock_has_one_holder_and_is_released(app: Flask) -> None:
    with job_lock(app, "send") as first:
        assert first
        with job_lock(app, "send") as second:
            assert not second
        with get_engine(app).connect() as conn:
            holders = conn.scalar(text(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                "AND ((classid::bigint << 32) | objid::bigint) = (:key)::bigint"
            ), {"key": advisory_key("send")})
            assert holders == 1
            # The connection that holds it is not left "idle in transaction".
            states = conn.scalars(text(
                "SELECT state FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )).all()
            assert "idle in transaction" not in states
    with job_lock(app, "send") as again:
        assert again


@pytest.mark.postgresql_only
def test_the_advisory_lock_dies_with_its_holder(app: Flask) -> None:
    # Another process takes the lock and is killed: PostgreSQL drops it.
    url = app.config["DATABASE_URL"]
    code = (
        "import sys, time; from sqlalchemy import create_engine, text\n"
        f"e = create_engine({url!r}); c = e.connect()\n"
        f"print(c.scalar(text('SELECT pg_try_advisory_lock({advisory_key('send')})')), flush=True)\n"
        "time.sleep(60)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "True"
        with job_lock(app, "send") as held:
            assert not held
    finally:
        holder.kill()
        holder.wait()
    deadline = time.monotonic() + 5
    while True:
        with job_lock(app, "send") as held:
            if held or time.monotonic() > deadline:
                break
        time.sleep(0.05)
    assert held
