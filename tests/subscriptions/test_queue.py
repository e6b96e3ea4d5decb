"""The signup queue: a request only queues; workers apply the queue, each request once."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from flask import Flask
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from mailer import scheduler
from mailer.db import get_engine
from mailer.models import ConsentChannel, ConsentEvent, OutboundMail, QueuedSignup, Subscriber, SubscriberStatus, utcnow
from mailer.subscriptions import erase, signup, worker
from mailer.subscriptions.signup import apply_batch, apply_queue, backlog, claim_batch, enqueue
from mailer.subscriptions.worker import SignupWorker
from tests.subscriptions.conftest import mails, subscriber
from tests.subscriptions.test_limits import request_for


def count(session: Session, model: type) -> int:
    session.expire_all()
    return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_the_request_only_queues_and_the_queue_is_applied_after(app: Flask, session: Session) -> None:
    app.extensions.pop("mailer.signups")  # no worker thread: what the request alone does
    client = app.test_client()
    response = client.post("/api/subscribe", json={"email": "Mario@Example.it", "consent": True,
                                                   "source": "https://news.example.it/article"},
                           headers={"User-Agent": "Firefox/140", "Accept-Language": "en"})
    assert response.status_code == 202
    assert count(session, QueuedSignup) == 1
    assert count(session, Subscriber) == count(session, ConsentEvent) == count(session, OutboundMail) == 0
    received = session.scalars(select(QueuedSignup)).one().received_at

    with app.app_context():
        assert apply_queue(app) == 1
    reader = subscriber(session, "mario@example.it")
    assert reader.status is SubscriberStatus.PENDING and reader.created_at == received
    event = session.scalars(select(ConsentEvent)).one()
    # The consent event says when the reader asked, and from where, not when the worker ran.
    assert (event.occurred_at, event.ip, event.user_agent, event.source_page, event.channel) == (
        received, "127.0.0.1", "Firefox/140", "https://news.example.it/article", "api")
    assert event.subscriber_id == reader.id and event.details["outcome"] == "mailed"
    assert [m.to_address for m in mails(session)] == ["mario@example.it"]
    assert count(session, QueuedSignup) == 0  # applied requests leave no personal data behind


def test_batches_apply_every_request_once(app: Flask, session: Session) -> None:
    engine = get_engine(app)
    for n in range(250):
        enqueue(engine, request_for(app, f"reader{n % 100}@example.it"))
    with app.app_context():
        assert apply_queue(app, limit=40) == 250
    assert backlog(engine) == 0
    assert count(session, Subscriber) == 100
    assert count(session, ConsentEvent) == 250
    assert count(session, OutboundMail) == 100  # the repeats within 10 minutes are throttled


def test_workers_in_parallel_apply_every_request_once(app: Flask, session: Session) -> None:
    """Three workers at once on one queue (SKIP LOCKED on PostgreSQL, the write lock on SQLite)."""
    engine = get_engine(app)
    for n in range(300):
        enqueue(engine, request_for(app, f"reader{n % 100}@example.it"))
    applied: list[int] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            with app.app_context():
                applied.append(apply_queue(app, limit=15))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    assert sum(applied) == 300
    assert count(session, Subscriber) == 100
    assert count(session, ConsentEvent) == 300
    # Each address mailed once, whichever worker applied its first request.
    per_address = session.execute(select(OutboundMail.to_address, func.count()).group_by(OutboundMail.to_address))
    assert {n for _address, n in per_address} == {1}
    assert count(session, OutboundMail) == 100


def test_a_dead_workers_claim_expires(app: Flask, session: Session) -> None:
    engine = get_engine(app)
    enqueue(engine, request_for(app, "late@example.it"))
    token, rows = claim_batch(engine)  # a worker claims the request, then dies
    with app.app_context():
        assert apply_queue(app) == 0  # a live claim is left alone
        session.execute(update(QueuedSignup).values(claimed_at=utcnow() - signup.CLAIM_TIMEOUT - timedelta(seconds=1)))
        session.commit()
        assert apply_queue(app) == 1
        # The "dead" worker wakes up after all: the request is not applied twice.
        assert apply_batch(app, engine, token, rows) == 0
    assert count(session, ConsentEvent) == 1
    assert len(mails(session)) == 1


def test_the_scheduler_applies_what_a_dead_process_left(app: Flask, session: Session) -> None:
    app.extensions.pop("mailer.signups")
    response = app.test_client().post("/api/subscribe", json={"email": "left@example.it", "consent": True})
    assert response.status_code == 202
    scheduler.signups_job(app, threading.Event())
    assert subscriber(session, "left@example.it").status is SubscriberStatus.PENDING
    assert backlog(get_engine(app)) == 0


def test_the_worker_thread_applies_on_notify_and_ends_when_idle(app: Flask, session: Session) -> None:
    thread_worker = SignupWorker(app, idle_seconds=0.1)
    enqueue(get_engine(app), request_for(app, "thread@example.it"))
    thread_worker.notify()
    assert thread_worker.wait_idle(10)
    assert subscriber(session, "thread@example.it").status is SubscriberStatus.PENDING
    for _ in range(100):
        if not thread_worker.running:
            break
        time.sleep(0.05)
    assert not thread_worker.running
    enqueue(get_engine(app), request_for(app, "again@example.it"))
    thread_worker.notify()  # a new notify starts a new thread
    assert thread_worker.wait_idle(10)
    assert subscriber(session, "again@example.it")
    thread_worker.stop()


def test_a_failed_pass_is_tried_again(app: Flask, session: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    failures = [RuntimeError("database away")]
    real = worker.apply_queue  # type: ignore[attr-defined]

    def flaky(*args: object, **kwargs: object) -> int:
        if failures:
            raise failures.pop()
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(worker, "apply_queue", flaky)
    monkeypatch.setattr(worker, "RETRY_SECONDS", 0.05)
    thread_worker = SignupWorker(app)
    enqueue(get_engine(app), request_for(app, "retry@example.it"))
    thread_worker.notify()
    assert thread_worker.wait_idle(10)
    assert not failures
    assert subscriber(session, "retry@example.it").status is SubscriberStatus.PENDING
    thread_worker.stop()


def test_a_forked_process_starts_its_own_thread(app: Flask, session: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    thread_worker = SignupWorker(app, idle_seconds=0.2)
    parent_thread = threading.Thread(target=lambda: None)
    thread_worker._thread = parent_thread  # what the parent left behind: not running here
    child = thread_worker._pid + 1
    monkeypatch.setattr("mailer.background.os.getpid", lambda: child)
    enqueue(get_engine(app), request_for(app, "forked@example.it"))
    thread_worker.notify()
    assert thread_worker._thread is not parent_thread
    assert thread_worker.wait_idle(10)
    assert subscriber(session, "forked@example.it")
    thread_worker.stop()


def test_a_signup_queued_before_an_erasure_does_not_bring_the_address_back(app: Flask, session: Session) -> None:
    engine = get_engine(app)
    req = request_for(app, "forget-me@example.it")
    enqueue(engine, req, utcnow() - timedelta(hours=1))
    with app.app_context():
        apply_queue(app)
        enqueue(engine, req)  # still waiting in the queue...
        enqueue(engine, req)
        token, rows = claim_batch(engine, limit=1)  # ...one of them already in a worker's hands
        reader = subscriber(session, "forget-me@example.it")
        assert erase(session, reader, channel=ConsentChannel.LINK)  # ...when the reader asks to be erased
        session.commit()
        assert backlog(engine) == 1  # the unclaimed request went with the erasure
        assert apply_batch(app, engine, token, rows) == 1  # the claimed one is skipped
    session.expire_all()
    assert session.scalars(select(Subscriber.email)).all() == [None]
    assert [e.action for e in session.scalars(select(ConsentEvent).order_by(ConsentEvent.id))] == [
        "signup", "erasure"]
    assert {e.ip for e in session.scalars(select(ConsentEvent))} == {None}
    # A signup typed in after the erasure is a new consent, as ever.
    enqueue(engine, req)
    with app.app_context():
        assert apply_queue(app) == 1
    # The address is stored again, with a fresh confirmation mail; the status changes when it is confirmed.
    assert subscriber(session, "forget-me@example.it").status is SubscriberStatus.ERASED
    assert len(mails(session)) == 1
