"""The confirmation mail, rendered into an ``OutboundMail`` row.

The row is inserted inside the signup request; the outbox worker of
``delivery/`` sends it from a thread right after the response, so the answer
never waits on SMTP and looks the same for every address. The mail carries
nothing but the confirmation: no news, no advertising, no tracking.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import current_app, render_template
from flask_babel import force_locale
from flask_babel import gettext as _

from mailer.models import OutboundMail, Subscriber, utcnow
from mailer.subscriptions.addresses import display_address
from mailer.tokens import CONFIRM_MAX_AGE, confirm_token

KIND = "confirm"


def confirm_url(config: Mapping[str, Any], subscriber: Subscriber) -> str:
    """The public confirmation link of ``subscriber``'s pending signup."""
    token = confirm_token(subscriber.id, subscriber.confirm_nonce, config["SECRET_KEY"])
    return f"{config['BASE_URL']}/confirm/{token}"


def confirmation_mail(config: Mapping[str, Any], subscriber: Subscriber, language: str) -> OutboundMail:
    """Render the confirmation mail for ``subscriber`` in ``language``.

    Needs an app context (templates and translations); ``subscriber`` must
    have its id (flushed) and its current nonce.
    """
    assert subscriber.email is not None, "an erased subscriber has no address"
    context = {
        "site_name": config["SITE_NAME"],
        "site_url": config["SITE_URL"],
        "postal_address": config["POSTAL_ADDRESS"],
        "confirm_url": confirm_url(config, subscriber),
        "address": display_address(subscriber.email),
        "valid_days": CONFIRM_MAX_AGE // 86400,
        "privacy_url": _absolute(config, config["PRIVACY_URL"]),
        "language": language,
    }
    with force_locale(language):
        subject = _("Confirm your subscription to %(site)s", site=config["SITE_NAME"])
        html = render_template("email/confirm.html", subject=subject, **context)
        text = render_template("email/confirm.txt", subject=subject, **context)
    return OutboundMail(
        subscriber_id=subscriber.id,
        kind=KIND,
        to_address=subscriber.email,
        subject=subject,
        html=html,
        text=text,
        created_at=utcnow(),
    )


def notify_outbox() -> None:
    """Wake the outbox worker (``delivery/``), if this app runs one.

    Called after the commit, so the worker finds the new row.
    """
    outbox = current_app.extensions.get("mailer.outbox")
    if outbox is not None:
        outbox.notify()


def _absolute(config: Mapping[str, Any], url: str) -> str:
    """A link usable from a mail: relative paths are made absolute on BASE_URL."""
    return f"{config['BASE_URL']}{url}" if url.startswith("/") else url
