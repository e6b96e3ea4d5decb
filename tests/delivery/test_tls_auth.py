"""STARTTLS, SMTPS and AUTH from MAILER_SMTP_URL, against real aiosmtpd servers."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import AuthResult, LoginPassword
from flask import Flask
from sqlalchemy.orm import Session

from mailer.delivery import DeliveryError, deliver
from mailer.models import DeliveryStatus
from tests.delivery.factory import make_digest, statuses
from tests.smtp_sink import SmtpSink

pytestmark = [
    pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command"),
    # The SMTPS server needs AUTH over its implicit TLS, which aiosmtpd cannot tell from plain text.
    pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS"),
]
LOGINS: list[str] = []


def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
    """Accepts news / s3cr:t@pw only."""
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (b"news", b"s3cr:t@pw")
    if ok:
        LOGINS.append(mechanism)
    return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535 itself


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run([
        "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
        "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
    ], check=True, capture_output=True)
    return cert, key


def _server_context(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    return context


@pytest.fixture(scope="module")
def starttls_server(certificate: tuple[Path, Path]) -> Iterator[SmtpSink]:
    sink = SmtpSink(tls_context=_server_context(certificate), require_starttls=True,
                    authenticator=authenticator, auth_required=True).start()
    yield sink
    sink.stop()


@pytest.fixture(scope="module")
def smtps_server(certificate: tuple[Path, Path]) -> Iterator[SmtpSink]:
    sink = SmtpSink(ssl_context=_server_context(certificate), authenticator=authenticator,
                    auth_required=True, auth_require_tls=False).start()
    yield sink
    sink.stop()


@pytest.fixture
def trusted(monkeypatch: pytest.MonkeyPatch, certificate: tuple[Path, Path]) -> None:
    """Make the test certificate trusted, as an operator's CA bundle would."""
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))


def _url(server: SmtpSink, scheme: str, credentials: str = "news:s3cr%3At%40pw@") -> str:
    return f"{scheme}://{credentials}{server.host}:{server.port}"


@pytest.mark.usefixtures("trusted")
def test_starttls_then_auth(app: Flask, session: Session, starttls_server: SmtpSink) -> None:
    starttls_server.reset()
    made = make_digest(session, 2)
    app.config["SMTP_URL"] = _url(starttls_server, "smtp+starttls")
    LOGINS.clear()
    assert deliver(app, echo=lambda _l: None).sent == 2
    assert sorted(r for m in starttls_server.wait_for(2) for r in m.rcpt_tos) == sorted(made.emails)
    assert LOGINS  # one login per connection


@pytest.mark.usefixtures("trusted")
def test_smtps_with_auth(app: Flask, session: Session, smtps_server: SmtpSink) -> None:
    smtps_server.reset()
    make_digest(session, 2)
    app.config["SMTP_URL"] = _url(smtps_server, "smtps")
    assert deliver(app, echo=lambda _l: None).sent == 2
    assert len(smtps_server.wait_for(2)) == 2


@pytest.mark.usefixtures("trusted")
def test_a_wrong_password_is_one_clear_line_and_nothing_is_marked(
    app: Flask, session: Session, starttls_server: SmtpSink
) -> None:
    made = make_digest(session, 2)
    app.config["SMTP_URL"] = _url(starttls_server, "smtp+starttls", "news:wrong@")
    with pytest.raises(DeliveryError) as raised:
        deliver(app, echo=lambda _l: None)
    message = str(raised.value)
    assert message.startswith(f"SMTP authentication failed at 127.0.0.1:{starttls_server.port}: 535")
    assert "\n" not in message and "wrong" not in message
    assert set(statuses(session, made.digest_id).values()) == {DeliveryStatus.PENDING}


def test_starttls_asked_of_a_server_without_it_is_refused(app: Flask, session: Session, smtp_server: SmtpSink) -> None:
    make_digest(session, 1)
    app.config["SMTP_URL"] = _url(smtp_server, "smtp+starttls", "")
    with pytest.raises(DeliveryError, match="does not offer STARTTLS"):
        deliver(app, echo=lambda _l: None)
    assert not smtp_server.messages


def test_an_untrusted_certificate_is_refused(app: Flask, session: Session, smtps_server: SmtpSink) -> None:
    make_digest(session, 1)
    app.config["SMTP_URL"] = _url(smtps_server, "smtps")
    with pytest.raises(DeliveryError, match=r"cannot connect to the SMTP server .*CERTIFICATE_VERIFY_FAILED"):
        deliver(app, echo=lambda _l: None)
