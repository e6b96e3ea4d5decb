"""DKIM: every reader's copy signed after serialisation, verified with dkimpy."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from pathlib import Path

import dkim
import pytest
from flask import Flask
from sqlalchemy.orm import Session

from mailer.delivery import deliver, send_outbox
from mailer.dkim import DkimError, DkimSigner
from mailer.models import OutboundMail, utcnow
from tests.delivery.factory import make_digest
from tests.smtp_sink import SmtpSink

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")


def _keys(tmp_path: Path, kind: str) -> tuple[Path, bytes]:
    """A private key file made by openssl, and the DNS TXT record of its public key."""
    key = tmp_path / f"{kind}.pem"
    if kind == "rsa":
        subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024",
                        "-out", str(key)], check=True, capture_output=True)
    elif kind == "rsa-pkcs1":  # the older "BEGIN RSA PRIVATE KEY" form
        subprocess.run(["openssl", "genrsa", "-traditional", "-out", str(key), "1024"], check=True,
                       capture_output=True)
        assert key.read_bytes().startswith(b"-----BEGIN RSA PRIVATE KEY-----")
    else:
        subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", str(key)], check=True,
                       capture_output=True)
    der = subprocess.run(["openssl", "pkey", "-in", str(key), "-pubout", "-outform", "DER"], check=True,
                         capture_output=True).stdout
    public = der if kind.startswith("rsa") else der[-32:]  # RFC 8463: the bare 32-byte key
    k = b"rsa" if kind.startswith("rsa") else b"ed25519"
    return key, b"v=DKIM1; k=" + k + b"; p=" + base64.b64encode(public)


@pytest.mark.parametrize(("kind", "algorithm"), [
    ("rsa", "rsa-sha256"), ("rsa-pkcs1", "rsa-sha256"), ("ed25519", "ed25519-sha256"),
])
def test_each_copy_carries_a_signature_that_verifies(
    app: Flask, session: Session, smtp_server: SmtpSink, tmp_path: Path, kind: str, algorithm: str
) -> None:
    key, record = _keys(tmp_path, kind)
    app.config.update(DKIM_DOMAIN="example.it", DKIM_SELECTOR="mail", DKIM_KEY_FILE=str(key))
    make_digest(session, 3)
    assert deliver(app, echo=lambda _l: None).sent == 3

    def dns(name: bytes, timeout: int = 5) -> bytes:
        assert name == b"mail._domainkey.example.it."
        return record

    for received in smtp_server.wait_for(3):
        data = received.data
        assert data.startswith(b"DKIM-Signature:")
        assert dkim.verify(data, dnsfunc=dns), received.rcpt_tos
        # 7bit although the server offers 8BITMIME: no relay's downgrade can break the body hash.
        assert data.isascii() and b"Content-Transfer-Encoding: 8bit" not in data
        signature = received.message["DKIM-Signature"].replace(" ", "")
        assert f"a={algorithm}" in signature and "c=relaxed/relaxed" in signature and "d=example.it" in signature
        signed = re.search(r"h=([^;]+)", signature)
        assert signed is not None
        names = signed.group(1).lower().split(":")
        assert {"from", "to", "subject", "list-unsubscribe", "list-unsubscribe-post", "list-id"} <= set(names)
        # A copy with another reader's unsubscribe link does not verify.
        tampered = re.sub(rb"(/unsubscribe/)[^>]+>", rb"\1MTIz.forged>", data, count=1)
        assert tampered != data and not dkim.verify(tampered, dnsfunc=dns)


def test_a_key_that_is_not_a_private_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DkimError):
        DkimSigner("example.it", "mail", b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    with pytest.raises(DkimError):
        DkimSigner("example.it", "mail", b"not a key at all")


def test_transactional_mail_is_signed_too(app: Flask, session: Session, smtp_server: SmtpSink, tmp_path: Path) -> None:
    key, record = _keys(tmp_path, "ed25519")
    app.config.update(DKIM_DOMAIN="example.it", DKIM_SELECTOR="tx", DKIM_KEY_FILE=str(key))
    session.add(OutboundMail(kind="confirm", to_address="new@example.org", subject="Conferma", html="<p>Sì</p>",
                             text="Sì\n", created_at=utcnow()))
    session.commit()
    assert send_outbox(app) == 1
    data = smtp_server.wait_for(1)[0].data
    assert dkim.verify(data, dnsfunc=lambda name, timeout=5: record)
    assert data.isascii() and b"Content-Transfer-Encoding: quoted-printable" in data
