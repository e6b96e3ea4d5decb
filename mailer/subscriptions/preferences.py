"""``/preferences/<token>``: topics, language, unsubscribe, my data, delete me.

Reached from the link in every digest. The token is the authority (no
session or CSRF token), the page is in the reader's language, and each form
on it posts an ``action``: save, unsubscribe, resubscribe, download, erase.
"""

from __future__ import annotations

import json

from flask import current_app, render_template, request
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from mailer.db import get_session
from mailer.errors import error_page
from mailer.i18n import set_language
from mailer.models import Subscriber, SubscriberStatus
from mailer.subscriptions import bp, consent
from mailer.subscriptions.addresses import display_address
from mailer.subscriptions.forms import PreferencesForm
from mailer.subscriptions.lifecycle import erase, personal_data, resubscribe, unsubscribe, update_preferences
from mailer.subscriptions.links import Page, _bad_link, _reader
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
    if action == "download":
        body = json.dumps(personal_data(current_app.config, subscriber), ensure_ascii=False, indent=2)
        return Response(body, mimetype="application/json", headers={
            "Content-Disposition": 'attachment; filename="newsletter-my-data.json"'})
    if action == "erase":
        if request.form.get("confirm_erase") != "yes":
            return _page(subscriber, token, message=_("Tick the box to confirm that everything should be deleted."),
                         status=400)
        erase(session, subscriber, consent.LINK, origin)
        session.commit()
        return render_template("pages/unsubscribed.html", erased=True, preferences_url=None)
    if action == "unsubscribe":
        unsubscribe(session, subscriber, consent.LINK, origin)
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
