"""The confirmation mail, and the "my data" link, rendered into ``OutboundMail`` rows.

The row is inserted when the signup queue is applied (``signup.py``), a few
milliseconds after the answer; the outbox worker of ``delivery/`` sends it
from a thread, so the answer never waits on SMTP and looks the same for
every address. The mail carries nothing but the confirmation: no news, no
advertising, no tracking.

An import (``csvimport.py``, ``--send-confirmation``) sends the same mail
with its own wording (``imported=True``): those readers asked for nothing
here, so the mail says they are on the list, and that their address is
deleted unless they confirm.

As for the digest, the templates are rendered once per language with
placeholders, then filled per reader with a string replace: a signup pays a
replace, not a Jinja render with a dozen translations.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from flask import Flask, current_app, render_template
from flask_babel import force_locale
from flask_babel import gettext as _
from markupsafe import escape

from mailer.models import MailKind, Subscriber, utcnow
from mailer.subscriptions.addresses import display_address
from mailer.tokens import CONFIRM_MAX_AGE, confirm_token, data_token

CACHE = "mailer.subscriptions.confirm_mail"
# Placeholders: plain alphanumerics, left alone by escaping and by templates.
TOKEN_SLOT = "x0CONFIRMTOKEN0x"  # noqa: S105 - a placeholder, not a secret
ADDRESS_SLOT = "x0READERADDRESS0x"


@dataclass(frozen=True)
class ConfirmationTemplate:
    """The confirmation mail of one language, with placeholders for the reader."""

    language: str
    subject: str
    html: str
    text: str
    to_address: str = ""
    kind: MailKind = MailKind.CONFIRM

    def for_address(self, email: str) -> ConfirmationTemplate:
        """The mail with the reader's address filled in (the token still to come)."""
        shown = display_address(email)
        return replace(self, to_address=email, html=self.html.replace(ADDRESS_SLOT, str(escape(shown))),
                       text=self.text.replace(ADDRESS_SLOT, shown))

    def values(self, config: Mapping[str, Any], subscriber_id: int, nonce: str) -> dict[str, Any]:
        """The outbox row of the mail (``for_address`` first), for an INSERT: to leave at once."""
        assert self.to_address, "for_address() first"
        token = confirm_token(subscriber_id, nonce, config["SECRET_KEY"])
        now = utcnow()
        return {
            "subscriber_id": subscriber_id,
            "kind": self.kind,
            "to_address": self.to_address,
            "subject": self.subject,
            # Tokens are URL-safe base64 and dots: nothing to escape in HTML.
            "html": self.html.replace(TOKEN_SLOT, token),
            "text": self.text.replace(TOKEN_SLOT, token),
            "created_at": now,
            "not_before": now,
            "attempts": 0,
        }


def confirmation_template(
    config: Mapping[str, Any], language: str, imported: bool = False,
) -> ConfirmationTemplate:
    """The mail of ``language``, rendered once per process (needs an app context).

    ``imported``: the wording for readers who came in by an import, not by
    the signup form. Rendered again each time when templates reload
    (debug), so that editing them shows at once.
    """
    cache: dict[tuple[str, bool], ConfirmationTemplate] = current_app.extensions.setdefault(CACHE, {})
    template = cache.get((language, imported))
    if template is None or current_app.debug or current_app.jinja_env.auto_reload:
        template = cache[language, imported] = _render(config, language, imported)
    return template


def _render(config: Mapping[str, Any], language: str, imported: bool) -> ConfirmationTemplate:
    """Render templates/email/confirm.{html,txt} in ``language`` with placeholders."""
    valid_days = CONFIRM_MAX_AGE // 86400
    context = {
        "site_name": config["SITE_NAME"],
        "site_url": config["SITE_URL"],
        "postal_address": config["POSTAL_ADDRESS"],
        "confirm_url": f"{config['BASE_URL']}/confirm/{TOKEN_SLOT}",
        "address": ADDRESS_SLOT,
        "valid_days": valid_days,
        "imported": imported,
        # After this the reader cannot confirm any more (the link expired, or
        # the purge deleted the address), and the purge will delete it.
        "delete_days": min(valid_days, int(config["PURGE_UNCONFIRMED_DAYS"])),
        "privacy_url": _absolute(config, config["PRIVACY_URL"]),
        "language": language,
    }
    with force_locale(language):
        subject = str(_("Confirm your subscription to %(site)s", site=config["SITE_NAME"]))
        html = render_template("email/confirm.html", subject=subject, **context)
        text = render_template("email/confirm.txt", subject=subject, **context)
    return ConfirmationTemplate(language=language, subject=subject, html=html, text=text,
                                kind=MailKind.IMPORT_CONFIRM if imported else MailKind.CONFIRM)


def data_link_mail(config: Mapping[str, Any], subscriber: Subscriber) -> dict[str, Any]:
    """The outbox row of a "my data" link to ``subscriber``, in their language.

    Rendered per request (readers ask for it rarely); the token is bound to
    the reader's nonce and status, see ``tokens.data_token``.
    """
    assert subscriber.email is not None
    token = data_token(subscriber.id, subscriber.confirm_nonce, str(subscriber.status), config["SECRET_KEY"])
    context = {
        "site_name": config["SITE_NAME"],
        "postal_address": config["POSTAL_ADDRESS"],
        "data_url": f"{config['BASE_URL']}/my-data/{token}",
        "address": display_address(subscriber.email),
        "minutes": int(config["DATA_LINK_MINUTES"]),
        "privacy_url": _absolute(config, config["PRIVACY_URL"]),
        "language": subscriber.language,
    }
    with force_locale(subscriber.language):
        subject = str(_("Your data at %(site)s", site=config["SITE_NAME"]))
        html = render_template("email/data_link.html", subject=subject, **context)
        text = render_template("email/data_link.txt", subject=subject, **context)
    return {"subscriber_id": subscriber.id, "kind": MailKind.DATA_LINK, "to_address": subscriber.email,
            "subject": subject, "html": html, "text": text, "created_at": utcnow(), "attempts": 0}


def notify_outbox(app: Flask) -> None:
    """Wake the outbox worker (``delivery/``), if this app runs one.

    Called after the commit, so the worker finds the new rows.
    """
    outbox = app.extensions.get("mailer.outbox")
    if outbox is not None:
        outbox.notify()


def _absolute(config: Mapping[str, Any], url: str) -> str:
    """A link usable from a mail: relative paths are made absolute on BASE_URL."""
    return f"{config['BASE_URL']}{url}" if url.startswith("/") else url
