"""The consent log: append-only proof of what each reader agreed to.

Every change of a subscription writes one ``ConsentEvent``: the action, the
channel it came through, the UTC time, the IP and user agent, the version of
the consent text shown (a hash of the exact words, in that language), the
language and the page the request came from. Erasure scrubs the personal
parts of a reader's events but keeps the actions, so the log still proves
what happened.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from flask import Request, current_app
from flask_babel import force_locale
from flask_babel import gettext as _
from markupsafe import Markup, escape
from sqlalchemy import Table, insert, update
from sqlalchemy.orm import Session

from mailer.models import ConsentAction, ConsentChannel, ConsentEvent, Subscriber, utcnow


@dataclass(frozen=True)
class Origin:
    """Where a request came from: what the log keeps about it."""

    ip: str | None = None
    user_agent: str | None = None
    source_page: str | None = None

    @classmethod
    def of(cls, request: Request, source_page: str | None = None) -> Origin:
        """The origin of a Flask request; ``source_page`` defaults to the Referer."""
        page = source_page if source_page is not None else request.referrer
        return cls(
            ip=request.remote_addr,
            user_agent=(request.user_agent.string or None) and request.user_agent.string[:500],
            source_page=page[:1000] if page else None,
        )


NOWHERE = Origin()
EVENTS = cast(Table, ConsentEvent.__table__)
INSERT_EVENT = insert(EVENTS)  # built once: it runs at every signup
TEXTS = "mailer.subscriptions.consent_texts"  # app.extensions key: (site, language) -> words


def _sentence(site: str, notice: str) -> str:
    return str(_("I want to receive the %(site)s newsletter by email, and I have read the %(notice)s.",
                 site=site, notice=notice))


def consent_text(site_name: str, language: str) -> str:
    """The words of the consent box, in ``language`` (needs an app context).

    Exactly the text of the box's label, so its hash proves what was shown.
    """
    cache: dict[tuple[str, str], str] = current_app.extensions.setdefault(TEXTS, {})
    text = cache.get((site_name, language))
    if text is None or current_app.debug:
        with force_locale(language):
            text = cache[(site_name, language)] = _sentence(site_name, _("privacy notice"))
    return text


def consent_label(site_name: str, privacy_url: str) -> Markup:
    """The consent box's label in the page's language, with the notice linked."""
    link = Markup('<a href="%s" target="_blank" rel="noopener">%s</a>') % (privacy_url, _("privacy notice"))
    # Safe: the msgid is ours, the site name is escaped, the link built above.
    return Markup(_sentence(str(escape(site_name)), link))  # noqa: S704


def text_version(text: str, language: str) -> str:
    """The version of a consent text: sha256 of its language and exact words."""
    return hashlib.sha256(f"{language}\n{text.strip()}".encode()).hexdigest()


def record(
    session: Session,
    subscriber: Subscriber,
    action: ConsentAction,
    channel: ConsentChannel,
    origin: Origin = NOWHERE,
    *,
    language: str | None = None,
    text_version: str | None = None,
    details: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> None:
    """Append one event to ``subscriber``'s log (the caller commits).

    A plain INSERT rather than the ORM: the same statement as on every
    signup's path.
    """
    session.connection().execute(INSERT_EVENT, [event(
        subscriber.id, subscriber.email_hash, action, channel, origin,
        language=language or subscriber.language, text_version=text_version, details=details, now=now,
    )])
    # The INSERT bypasses the ORM: a loaded ``consent_events`` would miss it.
    session.expire(subscriber, ["consent_events"])


def event(
    subscriber_id: int | None,
    email_hash: str,
    action: ConsentAction,
    channel: ConsentChannel,
    origin: Origin = NOWHERE,
    *,
    language: str | None = None,
    text_version: str | None = None,
    details: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The values of one event, for ``INSERT_EVENT``."""
    return {
        "subscriber_id": subscriber_id,
        "email_hash": email_hash,
        "action": action,
        "channel": channel,
        "occurred_at": now or utcnow(),
        "ip": origin.ip,
        "user_agent": origin.user_agent,
        "source_page": origin.source_page,
        "consent_text_version": text_version,
        "language": language,
        "details": details or {},
    }


def scrub(session: Session, email_hash: str, kept_hash: str) -> None:
    """Remove the personal parts of every event about ``email_hash``, and file them under ``kept_hash``.

    The action, channel, time, text version and language stay: they prove
    what happened without saying who or from where. ``kept_hash`` is the
    erased row's keyed hash, so the events stay linked to it.
    """
    session.execute(
        update(ConsentEvent)
        .where(ConsentEvent.email_hash == email_hash)
        .values(email_hash=kept_hash, ip=None, user_agent=None, source_page=None, details={}),
        execution_options={"synchronize_session": False},
    )


def describe(event: ConsentEvent) -> dict[str, Any]:
    """An event as JSON-ready data (for "download my data")."""
    return {
        "action": event.action,
        "channel": event.channel,
        "occurred_at": event.occurred_at.isoformat(timespec="seconds") + "Z",
        "ip": event.ip,
        "user_agent": event.user_agent,
        "consent_text_version": event.consent_text_version,
        "language": event.language,
        "source_page": event.source_page,
        "details": event.details,
    }
