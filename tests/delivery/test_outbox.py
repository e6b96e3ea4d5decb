"""The outbox: transactional mail sent by a thread of the web app itself."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from flask import Flask
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from mailer.delivery import outbox, send_outbox
from mailer.delivery.outbox import EXTENSION, GIVE_UP_ATTEMPTS, OutboxWorker
from mailer.models import MailKind, OutboundMail, utcnow
from tests.smtp_sink import SmtpSink


def add_mail(session: Session, to: str = "reader@example.org", subject: str = "Conferma l'iscrizione – Notizie",
             kind: str = MailKind.CONFIRM) -> int:
    row = OutboundMail(kind=kind, to_address=to, subject=subject,
                       html="<p>Conferma: <a href=\"http://newsletter.test/confirm/abc\">qui</a> — àè</p>",
                       text="Conferma: http://newsletter.test/confirm/abc — àè\n.\n", created_at=utcnow())
    session.add(row)
    session.commit()
    return row.id


def fresh(session: Session, mail_id: int) -> OutboundMail:
    session.expire_all()
    row = session.get(OutboundMail, mail_id)
    assert row is not None
    return row


def test_create_app_installs_the_worker_without_starting_a_thread(app: Flask) -> None:
    worker = app.extensions[EXTENSION]
    assert isinstance(worker, OutboxWorker) and not worker.running


def test_notify_sends_the_row_from_a_thread(app: Flask, session: Session, smtp_server: SmtpSink) -> None:
    mail_id = add_mail(session)
    app.extensions[EXTENSION].notify()
    received = smtp_server.wait_for(1)[0]
    message = received.message
    assert received.rcpt_tos == ["reader@example.org"] and received.mail_from == "newsletter@example.it"
    assert message.get_content_type() == "multipart/alternative"
    assert message["Subject"] == "Conferma l'iscrizione – Notizie" and message["Message-ID"] and message["Date"]
    assert message["From"] == "Notizie Tech <newsletter@example.it>"
    plain, rich = message.get_body(("plain",)), message.get_body(("html",))
    assert plain is not None and rich is not None
    assert "confirm/abc — àè" in plain.get_content() and "\n.\n" in plain.get_content().replace("\r\n", "\n")
    assert "qui</a>" in rich.get_content()
    assert max(len(line) for line in received.data.split(b"\r\n")) <= 998
    for _ in range(100):
        if fresh(session, mail_id).sent_at is not None:
            break
        threading.Event().wait(0.05)
    row = fresh(session, mail_id)
    assert row.sent_at is not None and row.attempts == 1 and row.last_error is None


def test_the_first_mail_of_a_connection_is_quoted_printable_the_next_8bit(
    app: Flask, session: Session, smtp_server: SmtpSink
) -> None:
    """The mail is built before the connection says whether it takes 8BITMIME: both forms read the same."""
    for n in range(2):
        add_mail(session, to=f"reader{n}@example.org")
    assert send_outbox(app) == 2
    first, second = smtp_server.wait_for(2)
    assert b"Content-Transfer-Encoding: quoted-printable" in first.data and first.data.isascii()
    assert b"Content-Transfer-Encoding: 8bit" in second.data and "àè".encode() in second.data
    for received in (first, second):
        message = received.message
        assert message["Auto-Submitted"] == "auto-generated" and "List-Unsubscribe" not in message
        plain, rich = message.get_body(("plain",)), message.get_body(("html",))
        assert plain is not None and rich is not None
        assert plain.get_content().replace("\r\n", "\n") == "Conferma: http://newsletter.test/confirm/abc — àè\n.\n"
        assert rich.get_content().replace("\r\n", "\n") == (
            "<p>Conferma: <a href=\"http://newsletter.test/confirm/abc\">qui</a> — àè</p>\n")


def test_a_temporary_failure_is_retried_with_backoff(app: Flask, session: Session, smtp_server: SmtpSink) -> None:
    mail_id = add_mail(session)
    smtp_server.reply_to_data("451 4.3.0 Try again later")
    assert send_outbox(app) == 0
    row = fresh(session, mail_id)
    assert row.sent_at is None and row.attempts == 1 and "451 4.3.0" in (row.last_error or "")
    assert row.next_attempt_at is not None and row.next_attempt_at > utcnow() + timedelta(seconds=20)
    assert send_outbox(app) == 0  # not due yet
    session.execute(update(OutboundMail).values(next_attempt_at=utcnow()))
    session.commit()
    assert send_outbox(app) == 1
    row = fresh(session, mail_id)
    assert row.sent_at is not None and row.attempts == 2
    assert len(smtp_server.messages) == 1


def test_a_permanent_failure_is_given_up(app: Flask, session: Session, smtp_server: SmtpSink) -> None:
    mail_id = add_mail(session, to="nobody@example.org")
    smtp_server.reply_to_rcpt("nobody@example.org", "550 5.1.1 No such user")
    assert send_outbox(app) == 0
    row = fresh(session, mail_id)
    assert row.sent_at is None and row.attempts == GIVE_UP_ATTEMPTS and "5.1.1" in (row.last_error or "")
    smtp_server.handler.rcpt_replies.clear()
    assert send_outbox(app) == 0 and not smtp_server.messages


def test_an_unreachable_server_leaves_the_mail_for_later(app: Flask, session: Session) -> None:
    mail_id = add_mail(session)
    app.config["SMTP_URL"] = "smtp://127.0.0.1:1"
    assert send_outbox(app) == 0
    row = fresh(session, mail_id)
    assert row.sent_at is None and row.attempts == 1 and "cannot connect" in (row.last_error or "")


def test_two_senders_at_once_send_each_mail_once(app: Flask, session: Session, smtp_server: SmtpSink) -> None:
    ids = [add_mail(session, to=f"r{i}@example.org") for i in range(12)]
    smtp_server.handler.data_delay = 0.01
    threads = [threading.Thread(target=send_outbox, args=(app,)) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    received = sorted(r for m in smtp_server.messages for r in m.rcpt_tos)
    assert received == sorted(f"r{i}@example.org" for i in range(12))
    assert all(fresh(session, i).sent_at is not None for i in ids)


def test_a_forked_process_starts_its_own_thread(app: Flask, session: Session, smtp_server: SmtpSink,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    worker = OutboxWorker(app, idle_seconds=0.2)
    parent_thread = threading.Thread(target=lambda: None)
    worker._thread = parent_thread  # what the parent left behind: not running here
    monkeypatch.setattr("mailer.background.os.getpid", lambda: worker._pid + 1)
    add_mail(session)
    worker.notify()
    assert worker._thread is not parent_thread
    smtp_server.wait_for(1)


def test_the_thread_ends_when_idle_and_a_new_notify_starts_it_again(
    app: Flask, session: Session, smtp_server: SmtpSink
) -> None:
    worker = OutboxWorker(app, idle_seconds=0.1)
    add_mail(session, to="one@example.org")
    worker.notify()
    smtp_server.wait_for(1)
    for _ in range(100):
        if not worker.running:
            break
        threading.Event().wait(0.05)
    assert not worker.running
    add_mail(session, to="two@example.org")
    worker.notify()
    assert [m.rcpt_tos for m in smtp_server.wait_for(2)][1] == ["two@example.org"]
    assert session.scalars(select(OutboundMail.sent_at)).all()


def test_stop_ends_the_thread(app: Flask, session: Session, smtp_server: SmtpSink) -> None:
    worker = OutboxWorker(app, idle_seconds=30)
    add_mail(session)
    worker.notify()
    smtp_server.wait_for(1)
    worker.stop()
    assert not worker.running
    add_mail(session, to="later@example.org")
    worker.notify()  # a stopped worker starts again when asked
    smtp_server.wait_for(2)
    worker.stop()


def test_notifies_while_the_server_is_unreachable_do_not_hammer_it(app: Flask, session: Session) -> None:
    """A flood of signups while SMTP is down: one attempt, then the worker holds back."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    attempts: list[int] = []

    def drop_every_connection() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            attempts.append(1)
            conn.close()  # no greeting: smtplib sees a dropped connection

    threading.Thread(target=drop_every_connection, daemon=True).start()
    app.config["SMTP_URL"] = f"smtp://127.0.0.1:{listener.getsockname()[1]}"
    worker = app.extensions[EXTENSION]
    try:
        for n in range(30):
            add_mail(session, to=f"reader{n}@example.org")
            worker.notify()
            threading.Event().wait(0.02)
        threading.Event().wait(0.3)
        # 30 signups in ~1 s: the first pass fails, the next waits 2 s whatever the notifies.
        assert len(attempts) == 1
        assert session.scalar(select(OutboundMail.id).where(OutboundMail.sent_at.is_not(None))) is None
    finally:
        worker.stop()
        listener.close()


def test_a_thread_that_outlives_stop_still_ends_and_sends_nothing(
        app: Flask, session: Session, smtp_server: SmtpSink) -> None:
    """stop() gives up waiting on a thread stuck on a silent server; that thread must still end."""
    import socket

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    app.config.update(SMTP_URL=f"smtp://127.0.0.1:{silent.getsockname()[1]}", SMTP_TIMEOUT=1)
    worker = app.extensions[EXTENSION]
    try:
        for n in range(3):
            add_mail(session, to=f"late{n}@example.org")
        worker.notify()
        threading.Event().wait(0.3)  # the thread now waits for a greeting that never comes
        stuck = worker._thread
        worker.stop(timeout=0.05)
        assert stuck is not None and stuck.is_alive()
        app.config["SMTP_URL"] = smtp_server.url  # a working server from now on
        stuck.join(6)
        assert not stuck.is_alive()
        assert smtp_server.messages == []
    finally:
        silent.close()


def test_a_signups_mail_goes_before_an_imports_bulk(app: Flask, session: Session, smtp_server: SmtpSink) -> None:
    """An import queues thousands of requests at once: a reader who signs up meanwhile does not wait for them."""
    for n in range(3):
        add_mail(session, to=f"imported{n}@example.org", kind=MailKind.IMPORT_CONFIRM)
    add_mail(session, to="signup@example.org")
    assert send_outbox(app, limit=2) == 4
    assert [m.rcpt_tos[0] for m in smtp_server.wait_for(4)] == [
        "signup@example.org", "imported0@example.org", "imported1@example.org", "imported2@example.org"]


def test_send_rate_paces_the_outbox(make_app, session: Session, smtp_server: SmtpSink,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    taken: list[float] = []

    class Bucket:
        def __init__(self, rate: float) -> None:
            self.rate = rate

        def take(self) -> None:
            taken.append(self.rate)

    monkeypatch.setattr(outbox, "TokenBucket", Bucket)
    app = make_app(SEND_RATE=5)
    for n in range(3):
        add_mail(session, to=f"reader{n}@example.org", kind=MailKind.IMPORT_CONFIRM)
    assert send_outbox(app) == 3
    assert taken == [5.0, 5.0, 5.0]


def test_stop_ends_a_pass_between_two_mails(app: Flask, session: Session, smtp_server: SmtpSink) -> None:
    """The scheduler's outbox job passes its stop flag: SIGTERM does not wait for an import's thousands."""
    for n in range(3):
        add_mail(session, to=f"reader{n}@example.org", kind=MailKind.IMPORT_CONFIRM)
    stop = threading.Event()
    stop.set()
    assert send_outbox(app, stop=stop) == 0
    assert send_outbox(app) == 3
