"""deliver() against the real aiosmtpd server: the happy path and the mail itself."""

from __future__ import annotations

from email.message import EmailMessage

import pytest
from flask import Flask
from sqlalchemy.orm import Session

from mailer.delivery import DeliveryReport, deliver
from mailer.models import Delivery, DeliveryStatus, DigestEdition, DigestStatus
from mailer.tokens import read_subscriber_token
from tests.delivery.factory import add_readers, digest_row, make_digest, statuses
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


class FakeTime:
    """A clock that moves only when slept on (for the token bucket)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_send_rate_spaces_the_messages(
    app: Flask, session: Session, smtp_server: SmtpSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeTime()
    monkeypatch.setattr("mailer.delivery.senders.time", fake)
    make_digest(session, 7)
    app.config["SEND_RATE"] = 2.0  # two at once, then one every half second
    assert deliver(app, echo=lambda _l: None).sent == 7
    assert len(fake.sleeps) == 5 and fake.now == pytest.approx(2.5)


def test_each_reader_gets_the_edition_of_their_segment(app: Flask, session: Session, smtp_server: SmtpSink) -> None:
    made = make_digest(session, 2)
    english = DigestEdition(digest_id=made.digest_id, topics="ai", language="en", subject="This week's news",
                            html="<p>Hello</p>\n", text="Hello\n")
    session.add(english)
    session.flush()
    reader = add_readers(session, ["english@example.org"], language="en")[0]
    session.add(Delivery(digest_id=made.digest_id, subscriber_id=reader, edition_id=english.id))
    session.commit()
    assert deliver(app, echo=lambda _l: None).sent == 3
    subjects = {m.rcpt_tos[0]: m.message["Subject"] for m in smtp_server.wait_for(3)}
    assert subjects["english@example.org"] == "This week's news"
    assert subjects[made.emails[0]] == "Le notizie della settimana – 25 novembre"
    english_copy = smtp_server.to("english@example.org")[0].message
    assert english_copy["Content-Language"] == "en"


def test_progress_is_a_bar_on_a_terminal(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from mailer.delivery.report import Progress

    monkeypatch.setattr("sys.stdout.isatty", lambda: True)
    clock = [0.0]
    progress = Progress(print, 100, "digest 1", clock=lambda: clock[0])
    clock[0] = 1.0
    progress.advance(50)
    progress.close()
    out = capsys.readouterr().out
    assert "\r[###############---------------] digest 1  50/100 (50%)  50/s  ETA 0:01" in out
    assert out.endswith("\n")
