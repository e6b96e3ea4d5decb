"""deliver() against the real aiosmtpd server: the happy path and the mail itself."""

from __future__ import annotations

from email.message import EmailMessage

from flask import Flask
from sqlalchemy.orm import Session

from mailer.delivery import DeliveryReport, deliver
from mailer.models import DeliveryStatus, DigestStatus
from mailer.tokens import read_subscriber_token
from tests.delivery.factory import digest_row, make_digest, statuses
from tests.smtp_sink import SmtpSink


def test_every_reader_gets_one_personal_copy_and_the_digest_finishes(
    app: Flask, session: Session, smtp_server: SmtpSink
) -> None:
    made = make_digest(session, 7)
    lines: list[str] = []
    report = deliver(app, echo=lines.append)
    assert isinstance(report, DeliveryReport)
    assert (report.sent, report.deferred, report.failed, report.bounced) == (7, 0, 0, 0)
    messages = smtp_server.wait_for(7)
    assert sorted(r for m in messages for r in m.rcpt_tos) == sorted(made.emails)
    assert set(statuses(session, made.digest_id).values()) == {DeliveryStatus.SENT}
    digest = digest_row(session, made.digest_id)
    assert digest.status == DigestStatus.FINISHED and digest.finished_at is not None
    assert report.finished == [made.digest_id]
    assert any("finished" in line for line in lines)
    ids = set()
    for received in messages:
        message = received.message
        reader = made.readers[made.emails.index(received.rcpt_tos[0])]
        assert message["To"] == received.rcpt_tos[0]
        ids.add(message["Message-ID"])
        token = message["List-Unsubscribe"].split("/unsubscribe/")[1].rstrip(">")
        with app.app_context():
            assert read_subscriber_token("unsubscribe", token) == reader
        text, html = _parts(message)
        assert f"/unsubscribe/{token}" in text and f"/unsubscribe/{token}" in html
        assert "x0UNSUBSCRIBETOKEN0x" not in text + html and "x0PREFERENCESTOKEN0x" not in text + html
        pref = text.split("/preferences/")[1].split()[0]
        with app.app_context():
            assert read_subscriber_token("preferences", pref) == reader
    assert len(ids) == 7


def _parts(message: EmailMessage) -> tuple[str, str]:
    assert message.get_content_type() == "multipart/alternative"
    plain = message.get_body(("plain",))
    rich = message.get_body(("html",))
    assert plain is not None and rich is not None
    return plain.get_content(), rich.get_content()


def test_nothing_to_send_needs_no_smtp_server(app: Flask, session: Session) -> None:
    app.config["SMTP_URL"] = "smtp://127.0.0.1:1"  # nothing listens there
    report = deliver(app, echo=lambda _l: None)
    assert (report.sent, report.deferred) == (0, 0)
