"""Per reader: fill the edition's template, sign it, check the address.

Everything here runs once per message, in the sending threads, so it only
joins bytes: two signed tokens, the address, a Date cached for the second,
a Message-ID. The edition's template is built once per run (and per kind of
server: with or without 8BITMIME) on first use.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime

from sqlalchemy import Connection, select

from mailer.delivery.deliveries import Claim
from mailer.delivery.message import MailSettings, Template, digest_template, message_id
from mailer.delivery.stamp import Stamper
from mailer.delivery.transport import wire_form
from mailer.digest.compose import archive_url
from mailer.dkim import DkimSigner
from mailer.models import Digest, DigestEdition
from mailer.tokens import preferences_token, unsubscribe_token

PURPOSES = {"unsubscribe": unsubscribe_token, "preferences": preferences_token}


class TokenMaker:
    """The tokens of ``mailer.tokens`` for integer ids, made faster (bench/FIGURES.md).

    ``mailer.tokens`` builds an itsdangerous serializer per token (and tries
    zlib on a payload too short to shrink), a sizeable share of the CPU a
    message may cost (bench/FIGURES.md). This makes the same bytes with one HMAC over
    a pre-derived key, and checks at start that it does give the same bytes
    as ``mailer.tokens``; if it does not (the library changed), it uses
    ``mailer.tokens`` itself.
    """

    def __init__(self, secret_key: str) -> None:
        """Derive the keys (itsdangerous's "django-concat") and check the fast path."""
        self.secret_key = secret_key
        self._keys = {
            # itsdangerous's own key derivation: SHA-1 is what the tokens are made with.
            purpose: hashlib.sha1(f"mailer.{purpose}".encode() + b"signer" + secret_key.encode()).digest()  # noqa: S324
            for purpose in PURPOSES
        }
        self.fast = all(
            self._fast(purpose, number) == make(number, secret_key).encode("ascii")
            for purpose, make in PURPOSES.items() for number in (1, 12345, 987654321012, 2**53)
        )

    def _fast(self, purpose: str, subscriber_id: int) -> bytes:
        payload = base64.urlsafe_b64encode(str(subscriber_id).encode("ascii")).rstrip(b"=")
        signature = hmac.digest(self._keys[purpose], payload, "sha1")
        return payload + b"." + base64.urlsafe_b64encode(signature).rstrip(b"=")

    def token(self, purpose: str, subscriber_id: int) -> bytes:
        """The ``purpose`` ("unsubscribe", "preferences") token of a subscriber."""
        if self.fast:
            return self._fast(purpose, subscriber_id)
        return PURPOSES[purpose](subscriber_id, self.secret_key).encode("ascii")

# An address we put in RCPT TO and in the To header as it is: no spaces,
# quotes, brackets, commas or control characters that could bend either.
_ADDRESS = re.compile(r"^[^\s\"<>(),;:\\@\[\]\x00-\x1f\x7f]{1,64}@[^\s\"<>(),;:\\@\[\]\x00-\x1f\x7f]{1,255}$")


def envelope_address(email: str, smtputf8: bool) -> tuple[str | None, str | None]:
    """``(address, None)`` ready for RCPT TO and To, or ``(None, why not)``."""
    if len(email) > 320 or not _ADDRESS.match(email):
        return None, "not sent: the address is not valid"
    local, _, domain = email.rpartition("@")
    if not domain.isascii():
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError:
            return None, "not sent: the domain is not valid"
    if not local.isascii() and not smtputf8:
        return None, "not sent: the address needs SMTPUTF8, which the server does not offer"
    return f"{local}@{domain}", None


@dataclass
class Edition:
    """One edition's content, and its templates once built."""

    digest_id: int
    subject: str
    text: str
    html: str
    language: str
    stamp: str
    templates: dict[bool, Template] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


class Composer:
    """Builds each reader's bytes; shared by the sending threads."""

    def __init__(self, settings: MailSettings, secret_key: str, placeholders: Sequence[str],
                 signer: DkimSigner | None) -> None:
        """Nothing is built until the first message of each edition."""
        self.settings = settings
        self.tokens = TokenMaker(secret_key)
        self.stamper = Stamper(secret_key)
        self.placeholders = tuple(placeholders)
        self.signer = signer
        self.editions: dict[int, Edition] = {}
        self._date = (0, b"")

    def load(self, conn: Connection, edition_ids: set[int]) -> None:
        """Fetch the editions among ``edition_ids`` not loaded yet (once per run each)."""
        missing = edition_ids - set(self.editions)
        if not missing:
            return
        found = conn.execute(
            select(DigestEdition.id, DigestEdition.digest_id, DigestEdition.subject, DigestEdition.text,
                   DigestEdition.html, DigestEdition.language, Digest.created_at)
            .join(Digest, Digest.id == DigestEdition.digest_id).where(DigestEdition.id.in_(missing))
        ).all()
        for row in found:
            self.editions[row.id] = Edition(
                digest_id=row.digest_id, subject=row.subject, text=row.text, html=row.html,
                language=row.language, stamp=row.created_at.strftime("%Y%m%d%H%M%S"),
            )

    def template(self, edition_id: int, eightbit: bool) -> tuple[Edition, Template]:
        """The edition's template for a server with (or without) 8BITMIME."""
        edition = self.editions[edition_id]
        template = edition.templates.get(eightbit)
        if template is None:
            with edition.lock:
                template = edition.templates.get(eightbit)
                if template is None:
                    template = digest_template(
                        self.settings, subject=edition.subject, text=edition.text, html=edition.html,
                        language=edition.language,
                        # List-Archive: the web copy in the edition's language, as "view in browser".
                        archive_url=archive_url(self.settings.base_url, edition.digest_id, edition.language),
                        eightbit=eightbit, placeholders=self.placeholders,
                    )
                    edition.templates[eightbit] = template
        return edition, template

    def date(self) -> bytes:
        """The Date header's value, formatted once a second."""
        second = int(time.time())
        if self._date[0] != second:
            self._date = (second, format_datetime(datetime.fromtimestamp(second, UTC)).encode("ascii"))
        return self._date[1]

    def envelope_from(self, item: Claim) -> str:
        """The reader's MAIL FROM: the VERP form of the bounce address when there is one."""
        if self.settings.verp:
            return self.stamper.verp(self.settings.envelope_from, item.delivery_id)
        return self.settings.envelope_from

    def payload(self, item: Claim, address: str, eightbit: bool) -> tuple[bytes, list[str]]:
        """The reader's message as DATA carries it, and the MAIL FROM options it needs."""
        # A signed mail goes out 7bit (quoted-printable): a relay that must
        # downgrade an 8bit body for a next hop without 8BITMIME would break
        # the body hash (RFC 6376, 5.3).
        edition, template = self.template(item.edition_id, eightbit and self.signer is None)
        values = (
            self.tokens.token("unsubscribe", item.subscriber_id),
            self.tokens.token("preferences", item.subscriber_id),
            address.encode("utf-8"),
            self.date(),
            message_id(self.settings, edition.digest_id, item.delivery_id, edition.stamp,
                       self.stamper.mac(item.delivery_id)),
        )
        if self.signer is None:
            payload = template.render(values)
        else:
            payload = wire_form(self.signer.sign(template.render(values, wire=False)))
        options = ["BODY=8BITMIME"] if template.eightbit else []
        if not address.isascii():
            options.append("SMTPUTF8")
        return payload, options
