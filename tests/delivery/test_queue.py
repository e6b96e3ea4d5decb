"""The queue: state saved as work is done, the reader checked just before sending,
pauses from elsewhere, claims of dead senders, one sender on SQLite."""

from __future__ import annotations

import os
import socket
import threading
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import create_engine, select, update
from sqlalchemy.orm import Session

from mailer.delivery import SenderBusyError, deliver, pause_digest, resume_digest
from mailer.delivery.senders import exclusive_sender
from mailer.delivery.stamp import Stamper
from mailer.delivery.transport import MemoryTransport, Reply
from mailer.models import Delivery, DeliveryStatus, DigestStatus, Subscriber, SubscriberStatus, utcnow
from tests.delivery.factory import delivery, digest_row, make_digest, statuses
from tests.smtp_sink import SmtpSink


def quiet(_line: str) -> None:
    """An echo that drops the lines."""


class CheckingTransport(MemoryTransport):
    """Before ending a message, checks that the previous one's "sent" is committed."""

    def __init__(self, database_url: str) -> None:
        super().__init__()
        self.engine = create_engine(database_url)
        self.accepted: list[str] = []

    def send(self, sender: str, recipient: str, payload: bytes, *, options: Any = (), before_end: Any = None) -> Reply:
        assert before_end is not None and before_end()
        if self.accepted:
            with self.engine.connect() as conn:
                status = conn.scalar(
                    select(Delivery.status).join(Subscriber, Subscriber.id == Delivery.subscriber_id)
                    .where(Subscriber.email == self.accepted[-1])
                )
            # The only message of this connection not yet recorded is the one being sent.
            assert status == DeliveryStatus.SENT, f"{self.accepted[-1]} accepted but not committed"
        self.accepted.append(recipient)
        return super().send(sender, recipient, payload, options=options)

    def close(self) -> None:
        self.engine.dispose()


def test_a_message_ends_only_once_the_previous_sent_is_committed(app: Flask, session: Session) -> None:
    made = make_digest(session, 60)
    app.config["SMTP_CONNECTIONS"] = 3
    transports: list[CheckingTransport] = []

    def factory() -> CheckingTransport:
        transports.append(CheckingTransport(app.config["DATABASE_URL"]))
        return transports[-1]

    report = deliver(app, echo=quiet, transport_factory=factory)
    assert report.sent == 60
    assert sorted(r for t in transports for r in t.accepted) == sorted(made.emails)


def _send_in_background(app: Flask, result: dict[str, Any]) -> threading.Thread:
    def run() -> None:
        try:
            result["report"] = deliver(app, echo=quiet)
        except Exception as exc:  # noqa: BLE001 - the test asserts on it
            result["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_a_reader_who_unsubscribes_during_the_send_gets_nothing_more(
    app: Flask, session: Session, smtp_server: SmtpSink
) -> None:
    made = make_digest(session, 10)
    app.config["SMTP_CONNECTIONS"] = 1
    smtp_server.handler.data_delay = 0.05
    result: dict[str, Any] = {}
    thread = _send_in_background(app, result)
    smtp_server.wait_for(2)
    leaving = made.emails[8]  # already claimed and waiting in the sender's memory
    session.execute(update(Subscriber).where(Subscriber.email == leaving)
                    .values(status=SubscriberStatus.UNSUBSCRIBED))
    session.commit()
    thread.join(30)
    report = result["report"]
    assert report.sent == 9 and report.skipped == 1
    assert not smtp_server.to(leaving) and len(smtp_server.messages) == 9
    row = delivery(session, made.digest_id, leaving)
    assert row.status == DeliveryStatus.SKIPPED and not row.bounce and "no longer subscribed" in (row.last_reply or "")
    assert digest_row(session, made.digest_id).status == DigestStatus.FINISHED


def test_a_pause_from_elsewhere_stops_the_send_and_resume_finishes_it_once(
    app: Flask, session: Session, smtp_server: SmtpSink
) -> None:
    made = make_digest(session, 30)
    app.config["SMTP_CONNECTIONS"] = 1
    smtp_server.handler.data_delay = 0.05
    result: dict[str, Any] = {}
    thread = _send_in_background(app, result)
    smtp_server.wait_for(2)
    assert pause_digest(session, None, "paused from the command line") is not None
    session.commit()
    thread.join(30)
    sent = len(smtp_server.messages)
    assert result["report"].sent == sent < 30
    assert digest_row(session, made.digest_id).status == DigestStatus.PAUSED
    rows = session.scalars(select(Delivery).where(Delivery.digest_id == made.digest_id)).all()
    assert sum(r.status == DeliveryStatus.PENDING for r in rows) == 30 - sent
    assert all(r.claimed_by is None for r in rows)
    assert resume_digest(session, None) is not None
    session.commit()
    smtp_server.handler.data_delay = 0
    assert deliver(app, echo=quiet).sent == 30 - sent
    received = [r for m in smtp_server.messages for r in m.rcpt_tos]
    assert sorted(received) == sorted(made.emails)  # everyone once
    assert digest_row(session, made.digest_id).status == DigestStatus.FINISHED


def test_pause_and_resume_need_a_digest_in_the_right_state(app: Flask, session: Session) -> None:
    made = make_digest(session, 1, status=DigestStatus.FINISHED)
    assert pause_digest(session, made.digest_id, "x") is None
    assert resume_digest(session, made.digest_id) is None
    assert pause_digest(session, None, "x") is None


def test_a_stop_request_ends_the_run_after_the_messages_in_flight(
    app: Flask, session: Session, smtp_server: SmtpSink
) -> None:
    made = make_digest(session, 20)
    stop = threading.Event()
    smtp_server.handler.data_delay = 0.05
    app.config["SMTP_CONNECTIONS"] = 1
    result: dict[str, Any] = {}

    def run() -> None:
        result["report"] = deliver(app, echo=quiet, stop=stop)

    thread = threading.Thread(target=run)
    thread.start()
    smtp_server.wait_for(2)
    stop.set()
    thread.join(30)
    sent = result["report"].sent
    assert sent == len(smtp_server.messages) < 20
    assert list(statuses(session, made.digest_id).values()).count(DeliveryStatus.SENT) == sent
    assert digest_row(session, made.digest_id).status == DigestStatus.SENDING


def test_erased_readers_and_hostile_addresses_are_never_sent(
    app: Flask, session: Session, smtp_server: SmtpSink
) -> None:
    made = make_digest(session, 3)
    session.execute(update(Subscriber).where(Subscriber.id == made.readers[0]).values(email=None))
    session.execute(update(Subscriber).where(Subscriber.id == made.readers[1])
                    .values(email="x@example.org>\r\nRCPT TO:<victim@example.org"))
    session.commit()
    report = deliver(app, echo=quiet)
    assert (report.sent, report.failed, report.skipped) == (1, 1, 1)
    assert [m.rcpt_tos for m in smtp_server.messages] == [[made.emails[2]]]


def test_the_envelope_sender_is_the_bounce_address(app: Flask, session: Session, smtp_server: SmtpSink) -> None:
    made = make_digest(session, 1)
    app.config["BOUNCE_ADDRESS"] = "bounces+digest@example.it"
    deliver(app, echo=quiet)
    # Its VERP form: the delivery id and its MAC after a "+" (stamp.py), what bounces are matched by.
    delivery_id = delivery(session, made.digest_id, made.emails[0]).id
    mac = Stamper(app.config["SECRET_KEY"]).mac(delivery_id)
    assert smtp_server.wait_for(1)[0].mail_from == f"bounces+digest+{delivery_id}-{mac}@example.it"
    assert smtp_server.messages[0].message["From"] == "Notizie Tech <newsletter@example.it>"


@pytest.mark.parametrize("eightbit", [True, False])
def test_8bit_with_8bitmime_and_quoted_printable_without(
    app: Flask, session: Session, smtp_server: SmtpSink, eightbit: bool
) -> None:
    make_digest(session, 2)
    smtp_server.handler.eightbit = eightbit
    deliver(app, echo=quiet)
    messages = smtp_server.wait_for(2)
    for received, options in zip(messages, smtp_server.handler.mail_options, strict=True):
        assert ("BODY=8BITMIME" in options) is eightbit
        assert received.data.isascii() is not eightbit
        cte = "8bit" if eightbit else "quoted-printable"
        assert received.data.count(f"Content-Transfer-Encoding: {cte}".encode()) == 2
        plain = received.message.get_body(("plain",))
        assert plain is not None and "perché è così?" in plain.get_content()
        assert "\r\n. A line that starts with a dot" in plain.get_content()


@pytest.mark.sqlite_only
def test_a_second_sender_on_sqlite_says_so_and_exits_75(app: Flask, session: Session, smtp_server: SmtpSink) -> None:
    make_digest(session, 2)
    with exclusive_sender(app.config["DATABASE_URL"]) as alone:
        assert alone
        with pytest.raises(SenderBusyError) as raised:
            deliver(app, echo=quiet)
        assert f"pid {os.getpid()}" in str(raised.value)
        result = app.test_cli_runner().invoke(args=["digest", "send"])
        assert result.exit_code == 75 and "SQLite allows one at a time" in result.stderr
    assert not smtp_server.messages
    assert deliver(app, echo=quiet).sent == 2


def test_claims_of_a_dead_sender_on_this_host_are_taken_back_at_once(
    app: Flask, session: Session, smtp_server: SmtpSink
) -> None:
    made = make_digest(session, 3)
    dead = os.fork()
    if dead == 0:  # a child that exits at once: its pid is free afterwards
        os._exit(0)
    os.waitpid(dead, 0)
    namespace = os.readlink("/proc/self/ns/pid").removeprefix("pid:[").removesuffix("]")
    session.execute(update(Delivery).where(Delivery.digest_id == made.digest_id).values(
        claimed_by=f"{socket.gethostname()[:40]}/{namespace}/{dead}/deadbeef",
        lease_until=utcnow() + timedelta(hours=1),
    ))
    session.commit()
    assert deliver(app, echo=quiet).sent == 3


@pytest.mark.postgresql_only
def test_on_postgresql_rows_another_live_sender_holds_are_waited_for(
    app: Flask, session: Session, smtp_server: SmtpSink
) -> None:
    made = make_digest(session, 3)
    session.execute(update(Delivery).where(Delivery.subscriber_id == made.readers[0]).values(
        claimed_by="another-host/1/123/cafe", lease_until=utcnow() + timedelta(seconds=1.5),
    ))
    session.commit()
    report = deliver(app, echo=quiet)  # sends two, waits for the lease, then takes the third
    assert report.sent == 3 and len(smtp_server.messages) == 3
    assert digest_row(session, made.digest_id).status == DigestStatus.FINISHED
