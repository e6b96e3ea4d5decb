"""``/preferences/<token>``: topics, language, unsubscribe, and a "my data" link by mail.

Reached from the link in every digest. The token is the authority (no
session or CSRF token), the page is in the reader's language, and each form
on it posts an ``action``: save, unsubscribe, resubscribe, data-link.

A digest gets forwarded, and its links followed by scanners, so this token
reads and erases nothing: the consent record, the download and the erasure
are behind a short-lived link mailed to the address (``personaldata.py``),
which the "data-link" action asks for.
"""

from __future__ import annotations

from flask import current_app, render_template, request
from flask_babel import gettext as _

from mailer.db import get_session
from mailer.errors import error_page
from mailer.i18n import set_language
from mailer.models import ConsentChannel, OutboundMail, Subscriber, SubscriberStatus
from mailer.ratelimit import rate_limits
from mailer.subscriptions import bp, consent
from mailer.subscriptions.addresses import display_address
from mailer.subscriptions.forms import PreferencesForm
from mailer.subscriptions.lifecycle import resubscribe, unsubscribe, update_preferences
from mailer.subscriptions.links import Page, _bad_link, _reader
from mailer.subscriptions.mails import data_link_mail, notify_outbox
from mailer.subscriptions.views import csrf_exempt
from mailer.tokens import BadToken, read_subscriber_token
from mailer.topics import normalise_topics


def _subscriber(token: str) -> Subscriber | tuple[str, int]:
    """The reader of a preferences token, or the error page."""
    try:
        subscriber_id = read_subscriber_token("preferences", token)
    except BadToken:
        return _bad_link()
    subscriber = get_session().get(Subscriber, subscriber_id)
    if subscriber is None or subscriber.email is None:
        return error_page(404, _("Subscription not found"),
                          _("We have no subscription for this link any more: its data may have been deleted."))
    _reader(subscriber)
    return subscriber


def _page(subscriber: Subscriber, token: str, form: PreferencesForm | None = None, message: str | None = None,
          status: int = 200) -> tuple[str, int]:
    """The preferences page with the reader's current choices."""
    if form is None:
        form = PreferencesForm(formdata=None)
        form.topics.data = [slug for slug in subscriber.topics.split(",") if slug]
        form.language.data = subscriber.language
    return render_template("pages/preferences.html", form=form, subscriber=subscriber, message=message,
                           address=display_address(subscriber.email or ""), token=token, status=status,
                           confirmed=subscriber.status is SubscriberStatus.CONFIRMED), status


@bp.get("/preferences/<token>")
def preferences(token: str) -> Page:
    """The reader's preferences page."""
    found = _subscriber(token)
    if isinstance(found, tuple):
        return found
    return _page(found, token)


@bp.post("/preferences/<token>")
@csrf_exempt
def preferences_action(token: str) -> Page:
    """Apply one of the page's forms."""
    found = _subscriber(token)
    if isinstance(found, tuple):
        return found
    subscriber, session, origin = found, get_session(), consent.Origin.of(request)
    action = request.form.get("action", "save")
    if action in ("download", "erase"):
        # The forms of old pages: these need the link mailed to the address.
        return error_page(403, _("This needs a link from your mailbox"),
                          _("To see, download or delete your data, ask for a link on your preferences page: "
                            "we mail it to your address, and it works for a short while."))
    if action == "data-link":
        _mail_data_link(subscriber)
        minutes = int(current_app.config["DATA_LINK_MINUTES"])
        return _page(subscriber, token, message=_(
            "We have sent a link to %(address)s. Open it within %(minutes)d minutes to see, download or delete "
            "your data.", address=display_address(subscriber.email or ""), minutes=minutes))
    if action == "unsubscribe":
        unsubscribe(session, subscriber, ConsentChannel.LINK, origin)
        session.commit()
        return render_template("pages/unsubscribed.html", already=False, preferences_url=request.path)
    if action == "resubscribe":
        if not resubscribe(session, subscriber, origin):
            return _page(subscriber, token)
        session.commit()
        return _page(subscriber, token, message=_("Welcome back! You are subscribed again."))
    if action != "save":
        return error_page(400, _("Unknown request"), _("Please use the buttons on the preferences page."))
    form = PreferencesForm()
    if not form.validate():
        return _page(subscriber, token, form=form, status=400)
    topics = normalise_topics(current_app.config["TOPICS"], form.topics.data or [])
    update_preferences(session, subscriber, topics, str(form.language.data), origin)
    session.commit()
    set_language(str(form.language.data))  # the page follows the new choice at once
    return _page(subscriber, token, message=_("Your preferences are saved."))


def _mail_data_link(subscriber: Subscriber) -> None:
    """Queue a "my data" link to the reader, within ``DATA_LINK_LIMIT`` per reader.

    Past the limit nothing is sent and the page says the same: the answer
    tells nothing, and a forwarded digest cannot be used to flood a mailbox.
    """
    config = current_app.config
    if rate_limits().hit(str(config["DATA_LINK_LIMIT"]), "data-link", str(subscriber.id)) is not None:
        return
    session = get_session()
    session.add(OutboundMail(**data_link_mail(config, subscriber)))
    session.commit()
    notify_outbox(current_app._get_current_object())  # type: ignore[attr-defined]
