"""The confirmation mail: queued in the request, sent by the outbox, nothing but the confirmation."""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from mailer.models import SubscriberStatus
from tests.smtp_sink import SmtpSink
from tests.subscriptions.conftest import confirm_path, delivered, mails, subscribe, subscriber


class Blackhole:
    """A TCP server that accepts connections and never says a word (a hung SMTP server)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.accepted = threading.Event()
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _addr = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            self.accepted.set()

    def close(self) -> None:
        for conn in self.conns:
            conn.close()
        self.sock.close()


@pytest.fixture
def blackhole() -> Iterator[Blackhole]:
    hole = Blackhole()
    yield hole
    hole.close()


def test_answer_does_not_wait_for_smtp(make_app, session: Session, blackhole: Blackhole) -> None:
    """The SMTP server accepts the connection and never answers: the signup is answered anyway."""
    app = make_app(SMTP_URL=f"smtp://127.0.0.1:{blackhole.port}", SMTP_TIMEOUT=60)
    answers: list[int] = []
    request = threading.Thread(target=lambda: answers.append(
        subscribe(app.test_client(), app, "hung@example.it").status_code))
    request.start()
    request.join(15)  # sending inside the request would hang here for SMTP_TIMEOUT
    assert answers == [200], "the signup waited for the SMTP server"
    assert blackhole.accepted.wait(10), "the outbox worker never tried to send"
    assert [m.to_address for m in mails(session)] == ["hung@example.it"]


def test_confirmation_mail_is_delivered(app: Flask, client: FlaskClient, session: Session,
                                        smtp_server: SmtpSink) -> None:
    subscribe(client, app, "Mario+news@Città.it", language="en")
    [received] = delivered(smtp_server, "mario+news@xn--citt-3na.it")
    assert received.rcpt_tos == ["mario+news@xn--citt-3na.it"]  # IDN: the ASCII form
    message = received.message
    assert message.get_content_type() == "multipart/alternative"
    assert message["Subject"] == "Confirm your subscription to Notizie Tech"
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    path = confirm_path(mails(session)[0])
    assert f"http://newsletter.test{path}" in text and f'href="http://newsletter.test{path}"' in html
    assert "mario+news@città.it" in text
    # Wrapped for mail programs that do not (URLs stay whole), signed off with the "-- " separator.
    assert all(len(line) <= 78 or line.startswith("http") for line in text.splitlines()), text
    assert "\n-- \n" in text.replace("\r\n", "\n")
    # Nothing but the confirmation: no other links, images, tracking or style sheets.
    links = set(re.findall(r'href="([^"]+)"', html))
    assert links == {f"http://newsletter.test{path}", "http://newsletter.test/privacy"}
    assert "<img" not in html and "<style" not in html and "<script" not in html
    assert 'style="' in html  # CSS inlined by hand
    assert '<html lang="en">' in html
    # Confirm from the delivered mail.
    assert client.post(path).status_code == 200
    assert subscriber(session, "mario+news@xn--citt-3na.it").status is SubscriberStatus.CONFIRMED


def test_mail_language_follows_the_choice(app: Flask, client: FlaskClient, session: Session) -> None:
    subscribe(client, app, "anna@example.it", language="it")
    assert '<html lang="it">' in mails(session)[0].html


def test_outbox_sends_once_per_allowed_request(app: Flask, client: FlaskClient, session: Session,
                                               smtp_server: SmtpSink) -> None:
    for _ in range(5):
        subscribe(client, app, "bombed@example.it")  # the client waits until the worker applied it
    # All five applied: the outbox holds one mail for the address, so no second one can come.
    assert len(mails(session, "bombed@example.it")) == 1
    delivered(smtp_server, "bombed@example.it")
    assert len(smtp_server.to("bombed@example.it")) == 1
