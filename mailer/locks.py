"""Named locks, so two schedulers started by mistake never run a job twice.

``job_lock(app, name)`` yields True when this process got the lock and False
when someone else holds it (the job is then skipped, not queued).

- PostgreSQL: ``pg_try_advisory_lock`` on a connection of its own, held for
  the whole job. The server drops it if the process dies, so a crash never
  leaves a stale lock behind.
- SQLite (and any other database): a row in ``locks`` with a lease, renewed
  by a heartbeat thread while the job runs. A crashed holder's row expires
  after the lease, or at once when the holder was on this host and its
  process is gone.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from flask import Flask
from sqlalchemy import Engine, delete, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from mailer.db import get_engine, get_sessionmaker
from mailer.models import Lock, utcnow

log = logging.getLogger("mailer.locks")

LEASE = timedelta(minutes=5)


def _host_id() -> str:
    """This host, and its PID namespace: containers on one host see other PIDs."""
    try:
        namespace = os.readlink("/proc/self/ns/pid").removeprefix("pid:")
    except OSError:
        namespace = ""
    return f"{socket.gethostname()}{namespace}"


HOST_ID = _host_id()


@contextmanager
def job_lock(app: Flask, name: str, *, lease: timedelta = LEASE, kind: str | None = None) -> Iterator[bool]:
    """Hold the lock ``name`` for the ``with`` block; yield whether we got it.

    ``kind`` ("advisory" or "lease") overrides the choice by database, for tests.
    """
    engine = get_engine(app)
    kind = kind or ("advisory" if engine.dialect.name == "postgresql" else "lease")
    if kind == "advisory":
        with _advisory_lock(engine, name) as held:
            yield held
    else:
        with _lease_lock(get_sessionmaker(app), name, lease) as held:
            yield held


def advisory_key(name: str) -> int:
    """A stable signed 64-bit key for ``name`` (advisory locks take a bigint)."""
    return int.from_bytes(hashlib.sha256(f"mailer:{name}".encode()).digest()[:8], "big", signed=True)


@contextmanager
def _advisory_lock(engine: Engine, name: str) -> Iterator[bool]:
    key = advisory_key(name)
    with engine.connect() as conn:
        held = bool(conn.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}))
        # The lock belongs to the session, not the transaction: end the
        # transaction so the connection does not sit "idle in transaction".
        conn.commit()
        if not held:
            yield False
            return
        try:
            yield True
        finally:
            try:
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                conn.commit()
            except SQLAlchemyError:  # a dead connection has dropped the lock already
                log.warning("could not release lock %s; dropping its connection", name)
                conn.invalidate()


@contextmanager
def _lease_lock(factory: sessionmaker[Session], name: str, lease: timedelta) -> Iterator[bool]:
    owner = f"{HOST_ID}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
    if not _acquire(factory, name, owner, lease):
        yield False
        return
    stop = threading.Event()
    heartbeat = threading.Thread(
        target=_renew, args=(factory, name, owner, lease, stop), name=f"lock-{name}", daemon=True
    )
    heartbeat.start()
    try:
        yield True
    finally:
        stop.set()
        heartbeat.join()
        with factory() as session, session.begin():
            session.execute(delete(Lock).where(Lock.name == name, Lock.owner == owner))


def _acquire(factory: sessionmaker[Session], name: str, owner: str, lease: timedelta) -> bool:
    """Insert our row unless a live holder has one; True when we hold the lock."""
    with factory() as session, session.begin():
        now = utcnow()
        current = session.scalar(select(Lock).where(Lock.name == name))
        if current is not None and (current.expires_at < now or _holder_is_gone(current.owner)):
            log.warning("taking over lock %s from %s (lease expired or process gone)", name, current.owner)
            # By owner too: if another scheduler took it over meanwhile, its
            # fresh row stays and our insert below does nothing.
            session.execute(delete(Lock).where(Lock.name == name, Lock.owner == current.owner))
        insert = (postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert)(Lock)
        # ON CONFLICT DO NOTHING: the other scheduler's row wins, without an
        # IntegrityError aborting our transaction.
        inserted = session.scalar(
            insert.values(name=name, owner=owner, acquired_at=now, expires_at=now + lease)
            .on_conflict_do_nothing().returning(Lock.name)
        )
        return inserted is not None


def _renew(factory: sessionmaker[Session], name: str, owner: str, lease: timedelta, stop: threading.Event) -> None:
    """Push the lease forward every fifth of it until ``stop``."""
    while not stop.wait(lease.total_seconds() / 5):
        try:
            with factory() as session, session.begin():
                renewed = session.execute(
                    update(Lock).where(Lock.name == name, Lock.owner == owner).values(expires_at=utcnow() + lease)
                ).rowcount  # type: ignore[attr-defined]
        except Exception:  # a busy database must not kill the job; retry next beat
            log.warning("could not renew lock %s", name, exc_info=True)
            continue
        if not renewed:
            log.error("lock %s was taken over by another process while held", name)


def _holder_is_gone(owner: str) -> bool:
    """True when ``owner`` names a process on this host that no longer exists."""
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != HOST_ID or not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, owned by another user
    return False


def holder(app: Flask, name: str) -> str | None:
    """Who holds the lease lock ``name`` now (None if free), for messages."""
    with get_sessionmaker(app)() as session:
        row = session.scalar(select(Lock).where(Lock.name == name, Lock.expires_at >= utcnow()))
        return row.owner if row else None
