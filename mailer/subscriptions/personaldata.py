"""``/my-data/<token>``: the consent record, "download my data", "delete me".

The token comes only in a mail the reader asked for on the preferences page
(``preferences.py``), so it proves a hold on the mailbox now, not once. It
lives ``DATA_LINK_MINUTES`` and is bound to the reader's nonce and status:
an unsubscribe, a new signup, a resubscription or the erasure itself end it.
A GET only shows; the POSTs (``action``: download, erase) act.
"""

from __future__ import annotations

import json

from flask import current_app, render_template, request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from werkzeug.wrappers import Response

from mailer.db import get_session
from mailer.errors import error_page
from mailer.models import ConsentAction, ConsentChannel, Subscriber
from mailer.subscriptions import bp, consent
from mailer.subscriptions.addresses import display_address
from mailer.subscriptions.lifecycle import erase, personal_data
from mailer.subscriptions.links import NEVER, Page, _bad_link, _reader
from mailer.subscriptions.views import csrf_exempt
from mailer.tokens import BadToken, read_data_token

# The consent record in words a reader understands (the download keeps the stored codes).
ACTIONS = {
    ConsentAction.SIGNUP: _l("Asked to subscribe"), ConsentAction.CONFIRM: _l("Confirmed the subscription"),
    ConsentAction.PREFERENCES: _l("Changed preferences"), ConsentAction.UNSUBSCRIBE: _l("Left the newsletter"),
    ConsentAction.IMPORT: _l("Added by an import"),
    ConsentAction.BOUNCE: _l("Mail to the address bounced"), ConsentAction.PURGE: _l("Unconfirmed signup withdrawn"),
}
CHANNELS = {
    ConsentChannel.FORM: _l("signup form"), ConsentChannel.API: _l("signup box on the site"),
    ConsentChannel.ONE_CLICK: _l("one click in the mail program"), ConsentChannel.LINK: _l("link in one of our mails"),
    ConsentChannel.ADMIN: _l("by our staff"), ConsentChannel.IMPORT: _l("import"),
    ConsentChannel.SYSTEM: _l("automatically"),
}


def _subscriber(token: str) -> Subscriber | tuple[str, int]:
    """The reader of a live data token, or the error page."""
    try:
        subscriber_id, nonce, status = read_data_token(token, int(current_app.config["DATA_LINK_MINUTES"]) * 60)
    except BadToken:
        try:
            read_data_token(token, NEVER)
        except BadToken:
            return _bad_link()
        return _ended()
    subscriber = get_session().get(Subscriber, subscriber_id)
    if subscriber is None or subscriber.email is None or (subscriber.confirm_nonce, str(subscriber.status)) != (
            nonce, status):
        return _ended()
    _reader(subscriber)
    return subscriber


def _ended() -> tuple[str, int]:
    return error_page(404, _("This link has expired"),
                      _("Links to your data work for a short while, and only until your subscription changes. "
                        "Ask for a new one on your preferences page (the link at the bottom of any of our mails)."))


@bp.get("/my-data/<token>")
def personal_data_page(token: str) -> Page:
    """What we keep about the reader, with the buttons to download it or erase it."""
    found = _subscriber(token)
    if isinstance(found, tuple):
        return found
    return _page(found)


def _page(subscriber: Subscriber, message: str | None = None, status: int = 200) -> tuple[str, int]:
    data = personal_data(current_app.config, subscriber)
    return render_template("pages/personal_data.html", data=data, message=message, status=status,
                           address=display_address(subscriber.email or ""), actions=ACTIONS,
                           channels=CHANNELS), status


@bp.post("/my-data/<token>")
@csrf_exempt
def personal_data_action(token: str) -> Page:
    """Download the data, or erase it (with the box ticked)."""
    found = _subscriber(token)
    if isinstance(found, tuple):
        return found
    subscriber, action = found, request.form.get("action")
    if action == "download":
        body = json.dumps(personal_data(current_app.config, subscriber), ensure_ascii=False, indent=2)
        return Response(body, mimetype="application/json", headers={
            "Content-Disposition": 'attachment; filename="newsletter-my-data.json"'})
    if action == "erase":
        if request.form.get("confirm_erase") != "yes":
            return _page(subscriber, _("Tick the box to confirm that everything should be deleted."), 400)
        session = get_session()
        erase(session, subscriber, ConsentChannel.LINK, consent.Origin.of(request))
        session.commit()
        return render_template("pages/unsubscribed.html", erased=True)
    return error_page(400, _("Unknown request"), _("Please use the buttons on this page."))
