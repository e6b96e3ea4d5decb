"""The capture SMTP server and the captured-mail viewer, through real SMTP and HTTP."""

from __future__ import annotations

import html
import re
import smtplib
from email.message import EmailMessage
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from mailer import create_app
from mailer.devmail import store
from mailer.devmail.capture import CaptureServer
from tests.admin.conftest import add_admin, csrf_token, log_in
from tests.http_server import FeedServer
from tests.scheduler.conftest import add_readers, rss
from tests.smtp_sink import SmtpSink

HOSTILE_HTML = (
    '<html><body><h1 style="color:#c0392b">Le notizie</h1><script>alert("x")</script>'
    '<a href="http://newsletter.test/unsubscribe/abc">Disiscriviti</a>"\'></iframe><b>fine</b></body></html>'
)


def digest_like(subject: str = "Le notizie della settimana – perché") -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Notizie Tech <newsletter@example.it>"
    message["To"] = "anna@example.it"
    message["Subject"] = subject
    message["List-Unsubscribe"] = "<http://newsletter.test/unsubscribe/abc>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message.set_content("Le notizie, in testo: àèìòù.\n")
    message.add_alternative(HOSTILE_HTML, subtype="html")
    return message


def send(capture: CaptureServer, message: EmailMessage, rcpts: list[str] | None = None) -> None:
    host, port = capture.address.split(":")
    with smtplib.SMTP(host, int(port)) as smtp:
        smtp.send_message(message, from_addr="bounces@example.it", to_addrs=rcpts or [str(message["To"])])


def only_key(app: Flask) -> str:
    keys = store.newest_first(app.config["CAPTURE_MAILDIR"])
    assert len(keys) == 1
    return keys[0]


def test_the_capture_server_stores_each_message_with_its_envelope(app: Flask, capture: CaptureServer) -> None:
    send(capture, digest_like(), ["anna@example.it", "bcc@example.it"])
    found = store.load(app.config["CAPTURE_MAILDIR"], only_key(app))
    assert found is not None
    message, raw = found
    assert message["Return-Path"] == "<bounces@example.it>"
    assert message.get_all("Delivered-To") == ["anna@example.it", "bcc@example.it"]
    assert message["Subject"] == "Le notizie della settimana – perché"
    assert b"=?utf-8?" in raw  # stored as it came: RFC 2047 encoded


def test_the_list_shows_date_from_to_and_subject_newest_first(
    app: Flask, client: FlaskClient, capture: CaptureServer
) -> None:
    send(capture, digest_like("Primo"))
    send(capture, digest_like("Secondo"), ["bruno@example.it"])
    page = client.get("/dev/mail/").get_data(as_text=True)
    assert page.index("Secondo") < page.index("Primo")
    assert "Notizie Tech &lt;newsletter@example.it&gt;" in page
    assert "bruno@example.it" in page
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", page)


def test_one_mail_shows_html_sandboxed_text_headers_and_source(
    app: Flask, client: FlaskClient, capture: CaptureServer
) -> None:
    send(capture, digest_like())
    key = only_key(app)
    response = client.get(f"/dev/mail/{key}")
    assert response.status_code == 200
    page = response.get_data(as_text=True)

    frame = re.search(r'<iframe[^>]*sandbox="([^"]*)"[^>]*srcdoc="([^"]*)"', page)
    assert frame is not None
    sandbox, srcdoc = frame.groups()
    assert "allow-scripts" not in sandbox
    assert "allow-same-origin" not in sandbox
    # The mail's HTML lives only inside the attribute, escaped: its script and
    # its attempt to close the iframe never reach the page itself.
    assert "<script>" not in page
    assert "</iframe><b>fine" not in page
    assert '<h1 style="color:#c0392b">Le notizie</h1>' in html.unescape(srcdoc)
    assert '<base target="_blank">' in html.unescape(srcdoc)
    assert "script-src 'none'" in response.headers["Content-Security-Policy"]

    assert "Le notizie, in testo: àèìòù." in page
    assert "List-Unsubscribe-Post" in page
    assert "&lt;http://newsletter.test/unsubscribe/abc&gt;" in page
    assert "Delivered-To" in page
    # RFC 8058 try-out: a form posting the one-click body to the List-Unsubscribe URL.
    assert 'action="http://newsletter.test/unsubscribe/abc"' in page
    assert 'name="List-Unsubscribe" value="One-Click"' in page

    raw = client.get(f"/dev/mail/{key}/raw")
    assert raw.mimetype == "text/plain"
    assert raw.headers["X-Content-Type-Options"] == "nosniff"
    assert b"List-Unsubscribe-Post: List-Unsubscribe=One-Click" in raw.data
    download = client.get(f"/dev/mail/{key}/raw?download=1")
    assert download.mimetype == "message/rfc822"
    assert "attachment" in download.headers["Content-Disposition"]


@pytest.mark.parametrize("key", ["nope", "..", "..%2F..%2Fetc%2Fpasswd", "%2e%2e", "new", "cur"])
def test_unknown_or_crafted_keys_are_404(app: Flask, client: FlaskClient, capture: CaptureServer, key: str) -> None:
    send(capture, digest_like())
    assert client.get(f"/dev/mail/{key}").status_code == 404
    assert client.get(f"/dev/mail/{key}/raw").status_code == 404


def test_a_mail_without_html_or_with_a_broken_charset_still_shows(
    app: Flask, client: FlaskClient, capture: CaptureServer
) -> None:
    host, port = capture.address.split(":")
    raw = (b"From: a@example.it\r\nTo: b@example.it\r\nSubject: rotto\r\n"
           b"Content-Type: text/plain; charset=x-unknown\r\n\r\ncaf\xe9\r\n")
    with smtplib.SMTP(host, int(port)) as smtp:
        smtp.sendmail("a@example.it", ["b@example.it"], raw)
    page = client.get(f"/dev/mail/{only_key(app)}").get_data(as_text=True)
    assert "rotto" in page
    assert "<iframe" not in page
    assert "caf" in page


def test_the_list_is_paged(app: Flask, client: FlaskClient, capture: CaptureServer) -> None:
    host, port = capture.address.split(":")
    with smtplib.SMTP(host, int(port)) as smtp:
        for number in range(53):
            smtp.sendmail("a@example.it", ["b@example.it"], f"Subject: mail {number:02d}\r\n\r\nciao\r\n".encode())
    first = client.get("/dev/mail/").get_data(as_text=True)
    assert first.count("/dev/mail/1") == 50
    assert "mail 52" in first
    second = client.get("/dev/mail/?page=2").get_data(as_text=True)
    assert second.count("/dev/mail/1") == 3
    assert "mail 00" in second
    assert client.get("/dev/mail/?page=-4").status_code == 404
    assert client.get("/dev/mail/?page=abc").status_code == 404


@pytest.fixture
def admin_client(client: FlaskClient, session) -> FlaskClient:
    """A client logged in as an admin: the viewer's buttons need the login."""
    add_admin(session)
    session.commit()
    assert log_in(client).status_code == 303
    return client


def test_delete_all_empties_the_maildir(app: Flask, admin_client: FlaskClient, capture: CaptureServer) -> None:
    send(capture, digest_like())
    response = admin_client.post("/dev/mail/clear", follow_redirects=True)
    assert "Deleted 1 captured mail." in response.get_data(as_text=True)
    assert store.newest_first(app.config["CAPTURE_MAILDIR"]) == []


def test_send_the_digest_now_polls_and_sends(
    app: Flask, admin_client: FlaskClient, session, smtp_server: SmtpSink, feed_server: FeedServer
) -> None:
    app.config["FEEDS"] = [feed_server.add("/feed.xml", rss(2))]
    add_readers(session, ["anna@example.it"])
    response = admin_client.post("/dev/mail/send-digest", follow_redirects=True)
    page = response.get_data(as_text=True)
    assert "composed digest" in page
    assert "Digest job done: 1 sent, 0 deferred, 0 failed." in page
    assert [m.rcpt_tos for m in smtp_server.messages] == [["anna@example.it"]]


def test_the_viewer_forms_need_a_csrf_token(app: Flask, session, smtp_server: SmtpSink, tmp_path: Path) -> None:
    guarded = create_app({**app.config, "WTF_CSRF_ENABLED": True})
    add_admin(session)
    session.commit()
    client = guarded.test_client()
    assert log_in(client).status_code == 303
    assert client.post("/dev/mail/send-digest").status_code == 400
    assert client.post("/dev/mail/clear").status_code == 400
    token = csrf_token(client.get("/dev/mail/").get_data(as_text=True))
    assert token is not None
    assert client.post("/dev/mail/clear", data={"csrf_token": token}).status_code == 302


def test_the_viewer_does_not_exist_in_production(app: Flask) -> None:
    production = create_app({"ENV": "production", "DATABASE_URL": app.config["DATABASE_URL"],
                             "SECRET_KEY": "a-production-secret", "SMTP_URL": app.config["SMTP_URL"]})
    assert production.test_client().get("/dev/mail/").status_code == 404


def test_forced_on_in_production_even_reading_needs_the_login(app: Flask) -> None:
    production = create_app({"ENV": "production", "DATABASE_URL": app.config["DATABASE_URL"],
                             "SHOW_CAPTURED_MAIL": True, "SECRET_KEY": "a-production-secret",
                             "SMTP_URL": app.config["SMTP_URL"], "CAPTURE_MAILDIR": app.config["CAPTURE_MAILDIR"]})
    response = production.test_client().get("/dev/mail/")
    assert response.status_code == 302 and response.headers["Location"].startswith("/admin/login")


@pytest.mark.parametrize("action", ["/dev/mail/send-digest", "/dev/mail/clear"])
def test_the_viewer_buttons_need_the_admin_login_and_come_back(
    app: Flask, client: FlaskClient, session, capture: CaptureServer, smtp_server: SmtpSink, action: str
) -> None:
    """Without a login, a POST does nothing and leads to the login, which leads back to the viewer."""
    send(capture, digest_like())
    add_readers(session, ["anna@example.it"])
    refused = client.post(action)
    assert refused.status_code == 302
    assert refused.headers["Location"] == "/admin/login?next=/dev/mail/"
    assert len(store.newest_first(app.config["CAPTURE_MAILDIR"])) == 1  # nothing deleted
    assert smtp_server.messages == []  # nothing sent
    add_admin(session)
    session.commit()
    logged_in = client.post("/admin/login?next=/dev/mail/",
                            data={"email": "admin@example.it", "password": "correct horse battery"})
    assert (logged_in.status_code, logged_in.headers["Location"]) == (303, "/dev/mail/")
    assert client.post(action).status_code == 302
    if action.endswith("clear"):
        assert store.newest_first(app.config["CAPTURE_MAILDIR"]) == []


def test_without_an_admin_account_the_viewer_says_how_to_make_one(app: Flask, client: FlaskClient, session) -> None:
    page = client.get("/dev/mail/").get_data(as_text=True)
    assert "flask --app wsgi admin create EMAIL" in page
    add_admin(session)
    session.commit()
    page = client.get("/dev/mail/").get_data(as_text=True)
    assert "flask --app wsgi admin create EMAIL" not in page
    assert 'href="/admin/login?next=/dev/mail/"' in page


@pytest.mark.parametrize("smtp_url", [
    "smtp+starttls://news%40example.it:s3cr3t-pw@smtp.example.it:587",
    "smtps://apikey:pa/ss:w0rd@smtp.example.it:465",  # a / and a : inside the password
    "smtp://s3cr3t-pw@smtp.example.it:25",  # a token as the user name
])
def test_the_viewer_never_shows_the_smtp_password(
    make_app, session, smtp_url: str, feed_server: FeedServer
) -> None:
    app = make_app(SMTP_URL=smtp_url)
    client = app.test_client()
    add_admin(session)
    session.commit()
    assert log_in(client).status_code == 303
    page = client.get("/dev/mail/").get_data(as_text=True)
    scheme, _, rest = smtp_url.partition("://")
    assert f"{scheme}://***@{rest.rpartition('@')[2]}" in page
    # Nor does the flashed reason when the server cannot be used (nothing listens there).
    app.config["FEEDS"] = [feed_server.add("/feed.xml", rss(1))]
    add_readers(session, ["anna@example.it"])
    page += client.post("/dev/mail/send-digest", follow_redirects=True).get_data(as_text=True)
    for secret in ("s3cr3t", "pa/ss", "w0rd", "news%40example.it"):
        assert secret not in page


def test_reading_needs_the_login_beyond_this_machine(app: Flask, client: FlaskClient, session) -> None:
    """Where the viewer is on for another machine (here a test app; development refuses it first), reading needs
    the login."""
    far = {"REMOTE_ADDR": "192.0.2.7"}
    refused = client.get("/dev/mail/?page=2", environ_base=far)
    assert (refused.status_code, refused.headers["Location"]) == (302, "/admin/login?next=/dev/mail/?page%3D2")
    add_admin(session)
    session.commit()
    assert log_in(client, environ_base=far).status_code == 303
    assert client.get("/dev/mail/", environ_base=far).status_code == 200
