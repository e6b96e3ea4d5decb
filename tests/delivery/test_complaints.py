"""Complaint reports (ARF, RFC 5965): a reader who pressed "spam" becomes "complained".

Each report returns a digest really sent through the SMTP sink, in the
shapes the feedback loops send: RFC 5965's own example (the whole message),
Yahoo's (the recipient given), Outlook's JMRP and an Italian provider's
(the recipient redacted, headers only).
"""

from __future__ import annotations

import csv
import io
import re
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session

from mailer import scheduler
from mailer.admin.stats import digest_counts
from mailer.delivery import deliver
from mailer.models import (
    ConsentEvent,
    Delivery,
    DeliveryStatus,
    Digest,
    OutboundMail,
    Subscriber,
    SubscriberStatus,
    utcnow,
)
from mailer.subscriptions import export_csv, import_csv
from mailer.tokens import confirm_token, preferences_token
from tests.delivery.factory import delivery, make_digest, statuses
from tests.delivery.test_bounces import maildir, status
from tests.smtp_sink import SmtpSink
from tests.subscriptions.conftest import confirm_path, english, mails, subscribe


def arf(returned: bytes, *, feedback_type: str = "abuse", user_agent: str = "SomeGenerator/1.0",
        rcpt: str = "<user@example.com>", kind: str = "message/rfc822", sender: str = "<abusedesk@example.com>",
        mail_from: str | None = None) -> bytes:
    """A feedback report as RFC 5965 (appendix B) lays it out, returning ``returned``."""
    if kind == "text/rfc822-headers":
        returned = returned.split(b"\r\n\r\n", 1)[0] + b"\r\n"
    fields = (
        f"Feedback-Type: {feedback_type}\r\nUser-Agent: {user_agent}\r\nVersion: 1\r\n"
        + (f"Original-Mail-From: {mail_from}\r\n" if mail_from else "")
        + f"Original-Rcpt-To: {rcpt}\r\nArrival-Date: Thu, 26 Nov 2026 14:00:00 +0100\r\n"
        "Reporting-MTA: dns; mail.example.com\r\nSource-IP: 192.0.2.1\r\n"
        "Authentication-Results: mail.example.com;\r\n        spf=pass smtp.mail=newsletter@example.it\r\n"
        "Reported-Domain: example.it\r\n"
    )
    return (
        f"From: {sender}\r\nDate: Thu, 26 Nov 2026 17:40:36 +0100\r\nSubject: FW: Le notizie della settimana\r\n"
        "To: <fbl@example.it>\r\nMIME-Version: 1.0\r\n"
        "Content-Type: multipart/report; report-type=feedback-report;\r\n"
        '     boundary="part1_13d.2e68ed54_boundary"\r\n\r\n'
        "--part1_13d.2e68ed54_boundary\r\nContent-Type: text/plain; charset=\"US-ASCII\"\r\n"
        "Content-Transfer-Encoding: 7bit\r\n\r\n"
        "This is an email abuse report for an email message received from IP\r\n"
        "192.0.2.1 on Thu, 26 Nov 2026 14:00:00 +0100.\r\n\r\n"
        "--part1_13d.2e68ed54_boundary\r\nContent-Type: message/feedback-report\r\n\r\n"
        f"{fields}\r\n"
        f"--part1_13d.2e68ed54_boundary\r\nContent-Type: {kind}\r\nContent-Disposition: inline\r\n\r\n"
    ).encode() + returned + b"\r\n--part1_13d.2e68ed54_boundary--\r\n"


def redacted(raw: bytes, address: str, mask: bytes) -> bytes:
    """The copy as JMRP or Libero return it: the reader's address replaced wherever it appears."""
    return raw.replace(address.encode(), mask)


@pytest.fixture
def copies(app: Flask, session: Session, smtp_server: SmtpSink) -> dict[str, bytes]:
    """A digest really sent to three confirmed readers: address -> the message each received."""
    made = make_digest(session, 3)
    session.execute(update(Subscriber).values(confirmed_at=utcnow() - timedelta(days=30)))
    session.commit()
    deliver(app, echo=lambda _line: None)
    sent = {m.rcpt_tos[0]: m.data for m in smtp_server.wait_for(3)}
    assert len(sent) == 3
    return sent | {"digest": str(made.digest_id).encode()}


def readers(copies: dict[str, bytes]) -> list[str]:
    return sorted(address for address in copies if "@" in address)


def test_a_complaint_in_the_maildir_marks_the_reader_complained(
    runner: FlaskCliRunner, session: Session, copies: dict[str, bytes], tmp_path: Path
) -> None:
    """RFC 5965's example, returning the whole digest the reader received."""
    angry, *others = readers(copies)
    root = maildir(tmp_path, arf(copies[angry], rcpt=f"<{angry}>"))
    result = runner.invoke(args=["bounces", "process", str(root)])
    assert result.exit_code == 0, result.output
    assert f"{angry}: complaint (abuse): the reader will be suppressed as complained" in result.output
    assert "0 readers suppressed after a hard bounce, 1 after a complaint" in result.output
    assert status(session, angry) is SubscriberStatus.COMPLAINED
    assert {status(session, address) for address in others} == {SubscriberStatus.CONFIRMED}
    digest_id = int(copies["digest"])
    row = delivery(session, digest_id, angry)
    assert row.complaint and not row.bounce and row.last_reply == "complaint (ARF): abuse SomeGenerator/1.0"
    event = session.scalars(select(ConsentEvent).where(ConsentEvent.action == "complaint")).one()
    assert event.channel == "system" and event.details == {"previous_status": "confirmed"}
    counts, = digest_counts(session, [session.get(Digest, digest_id)])  # type: ignore[list-item]
    assert counts.complained == 1 and counts.sent == 3
    assert [p.name for p in (root / "cur").iterdir()] == ["1764064800.0.relay:2,S"]
    again = runner.invoke(args=["bounces", "process", str(root)])
    assert "0 after a complaint" in again.output


def test_yahoo_complaint_from_a_file_names_the_verp_sender(
    make_app, smtp_server: SmtpSink, tmp_path: Path
) -> None:
    """Yahoo's feedback loop: Original-Mail-From is our VERP envelope sender."""
    app = make_app(BOUNCE_ADDRESS="bounces@example.it")
    from mailer.db import get_sessionmaker

    with get_sessionmaker(app)() as session:
        make_digest(session, 2)
        session.execute(update(Subscriber).values(confirmed_at=utcnow() - timedelta(days=30)))
        session.commit()
        deliver(app, echo=lambda _line: None)
        sent = {m.rcpt_tos[0]: m for m in smtp_server.wait_for(2)}
        angry = min(sent)
        # The returned copy's headers only, without its Message-ID: the VERP address alone names it.
        headers = re.sub(rb"Message-ID: [^\r]*\r\n", b"", sent[angry].data)
        report = tmp_path / "yahoo.eml"
        report.write_bytes(arf(headers, user_agent="Yahoo!-Mail-Feedback/2.0", rcpt=angry,
                               kind="text/rfc822-headers", sender="feedback@arf.mail.yahoo.com",
                               mail_from=f"<{sent[angry].mail_from}>"))
        result = app.test_cli_runner().invoke(args=["bounces", "process", str(report)])
        assert result.exit_code == 0, result.output
        assert status(session, angry) is SubscriberStatus.COMPLAINED
        assert status(session, max(sent)) is SubscriberStatus.CONFIRMED


def test_outlook_jmrp_complaint_on_standard_input_with_the_recipient_redacted(
    runner: FlaskCliRunner, session: Session, copies: dict[str, bytes]
) -> None:
    angry = readers(copies)[1]
    returned = redacted(copies[angry], angry, b"xxxxxxxx@outlook.com")
    assert angry.encode() not in returned
    report = arf(returned, user_agent="Microsoft JMRP", rcpt="xxxxxxxx@outlook.com", sender="staff@hotmail.com")
    result = runner.invoke(args=["bounces", "process", "-"], input=report)
    assert result.exit_code == 0, result.output
    assert status(session, angry) is SubscriberStatus.COMPLAINED


def test_the_scheduler_reads_an_italian_providers_complaint(
    app: Flask, session: Session, copies: dict[str, bytes], tmp_path: Path
) -> None:
    """Headers only (text/rfc822-headers), the recipient redacted, as Libero's and Virgilio's loops send."""
    angry = readers(copies)[2]
    report = arf(redacted(copies[angry], angry, b"redacted@libero.it"), user_agent="Italiaonline-FBL/1.0",
                 rcpt="redacted@libero.it", kind="text/rfc822-headers", sender="fbl@libero.it")
    app.config["BOUNCE_MAILDIR"] = str(maildir(tmp_path, report))
    scheduler.bounces_job(app, threading.Event())
    assert status(session, angry) is SubscriberStatus.COMPLAINED


def test_forged_and_foreign_complaints_change_nothing(
    runner: FlaskCliRunner, session: Session, copies: dict[str, bytes], tmp_path: Path
) -> None:
    first, second, third = readers(copies)
    digest_id = int(copies["digest"])
    real = re.search(rb"<digest-[^>]+>", copies[first]).group(0)  # type: ignore[union-attr]
    delivery_id = delivery(session, digest_id, first).id
    wrong_mac = re.sub(rb"\.[0-9a-f]{24}@", b"." + b"f" * 24 + b"@", real)
    sequential = f"<digest-{digest_id}.{delivery_id}.20261126080000@example.it>".encode()
    forged = [
        arf(copies[first].replace(real, wrong_mac)),  # right format, wrong MAC
        arf(copies[first].replace(real, sequential)),  # the old, unsigned form with a guessed id
        arf(b"From: someone@example.org\r\nSubject: spam\r\nMessage-ID: <1@example.org>\r\n\r\nbody\r\n"),
        arf(copies[second], feedback_type="not-spam"),  # the reader says it is not spam
        arf(copies[second], feedback_type="auth-failure"),  # about DKIM/SPF, not the reader
        arf(copies[second] + b"\r\n", rcpt="<x@example.com>").replace(  # two readers' copies in one
            b"Content-Disposition: inline\r\n\r\n",
            b"Content-Disposition: inline\r\n\r\nMessage-ID: "
            + re.search(rb"<digest-[^>]+>", copies[third]).group(0) + b"\r\n", 1),  # type: ignore[union-attr]
    ]
    result = runner.invoke(args=["bounces", "process", str(maildir(tmp_path, *forged))])
    assert result.exit_code == 0, result.output
    assert "stamp(s) that do not verify" in result.output
    assert "complaint: the report names none of our deliveries: ignored" in result.output
    assert f"{second}: feedback not-spam: not a complaint" in result.output
    assert f"{second}: feedback auth-failure: not a complaint" in result.output
    assert "ambiguous, ignored" in result.output
    assert "0 after a complaint" in result.output
    assert {status(session, address) for address in (first, second, third)} == {SubscriberStatus.CONFIRMED}
    assert not session.scalars(select(ConsentEvent).where(ConsentEvent.action == "complaint")).all()


def test_a_complained_reader_shows_in_the_export_and_stays_suppressed_through_an_import(
    app: Flask, runner: FlaskCliRunner, session: Session, copies: dict[str, bytes], tmp_path: Path
) -> None:
    angry = readers(copies)[0]
    runner.invoke(args=["bounces", "process", "-"], input=arf(copies[angry]))
    out = tmp_path / "list.csv"
    assert runner.invoke(args=["subscribers", "export", "--out", str(out)]).exit_code == 0
    exported = {row["email"]: row for row in csv.DictReader(io.StringIO(out.read_text()))}
    assert exported[angry]["status"] == "complained"
    # Moved to a new server, even with --confirmed: the complaint stays a complaint.
    session.execute(delete(ConsentEvent))
    session.execute(delete(Subscriber))
    session.commit()
    with app.app_context():
        report = import_csv(session, io.StringIO(out.read_text()), confirmed=True, source="list.csv")
    session.commit()
    assert report.imported == 3 and not report.problems
    assert status(session, angry) is SubscriberStatus.COMPLAINED
    again = io.StringIO()
    export_csv(session, again)
    assert {r["email"]: r["status"] for r in csv.DictReader(io.StringIO(again.getvalue()))}[angry] == "complained"
    # Known as complained: a later import of the address skips it.
    with app.app_context():
        later = import_csv(session, io.StringIO(f"email\n{angry}\n"), confirmed=True, source="again.csv")
    assert later.suppressed == 1 and later.imported == 0


def test_a_complained_reader_gets_no_digest_and_comes_back_only_by_a_new_double_opt_in(
    app: Flask, runner: FlaskCliRunner, session: Session, copies: dict[str, bytes], smtp_server: SmtpSink
) -> None:
    angry = readers(copies)[0]
    reader = session.scalars(select(Subscriber).where(Subscriber.email == angry)).one()
    old_link = f"/confirm/{confirm_token(reader.id, reader.confirm_nonce, app.config['SECRET_KEY'])}"
    runner.invoke(args=["bounces", "process", "-"], input=arf(copies[angry]))
    assert status(session, angry) is SubscriberStatus.COMPLAINED
    client: FlaskClient = english(app.test_client())
    # A confirmation link mailed before the complaint does not bring them back ...
    client.post(old_link)
    assert status(session, angry) is SubscriberStatus.COMPLAINED
    # ... nor the preferences page of the reported mail, which says how to come back.
    preferences = f"/preferences/{preferences_token(reader.id, app.config['SECRET_KEY'])}"
    page = client.get(f"{preferences}?lang=en").get_data(as_text=True)
    assert "You reported the newsletter as spam" in page and 'value="resubscribe"' not in page
    client.post(preferences, data={"action": "resubscribe"})
    assert status(session, angry) is SubscriberStatus.COMPLAINED
    # A digest composed before the complaint was read still leaves them out at sending time.
    smtp_server.reset()
    made = make_digest(session, 1)
    session.execute(insert(Delivery), [{
        "digest_id": made.digest_id, "subscriber_id": reader.id, "edition_id": made.edition_id,
        "status": DeliveryStatus.PENDING, "attempts": 0, "bounce": False, "created_at": utcnow()}])
    session.commit()
    deliver(app, echo=lambda _line: None)
    assert [m.rcpt_tos for m in smtp_server.wait_for(1)] == [made.emails]
    assert statuses(session, made.digest_id)[angry] is not DeliveryStatus.SENT
    assert not smtp_server.to(angry)
    # Signing up again: still complained, a confirmation mail goes out; only its link brings them back.
    subscribe(client, app, angry)
    assert status(session, angry) is SubscriberStatus.COMPLAINED
    confirmation = mails(session, angry)[-1]
    client.post(confirm_path(confirmation))
    assert status(session, angry) is SubscriberStatus.CONFIRMED
    # The old complaint does not count against the new confirmation.
    runner.invoke(args=["bounces", "process", "-"], input=arf(copies[angry]))
    assert status(session, angry) is SubscriberStatus.CONFIRMED


def test_the_admin_shows_complained_readers(
    app: Flask, runner: FlaskCliRunner, session: Session, copies: dict[str, bytes]
) -> None:
    from mailer.admin.stats import reader_counts
    from mailer.admin.templating import status_label

    angry = readers(copies)[0]
    runner.invoke(args=["bounces", "process", "-"], input=arf(copies[angry]))
    assert reader_counts(session)[SubscriberStatus.COMPLAINED] == 1
    with app.test_request_context():
        assert status_label(SubscriberStatus.COMPLAINED) == "complained"
    assert session.scalar(select(OutboundMail.id)) is None  # a complaint mails nobody
