"""The links in mails: ``/confirm/<token>``, ``/unsubscribe/<token>``.

Each token does what its link needs and no more (see ``mailer.tokens``):
the unsubscribe pages link to nothing that a token opens.

Mail security scanners fetch every link, so a GET only shows a page with a
button; the POST acts, and a second POST still shows success. The signed
token is the authority: no session, cookie or CSRF token is needed (RFC 8058
forbids requiring them for one-click unsubscribe), so these views are exempt
from CSRF. A bad token gets a clear 400 or 404 page and changes nothing.
"""

from __future__ import annotations

from flask import render_template, request, url_for
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from mailer.db import get_session
from mailer.errors import error_page
from mailer.i18n import set_language
from mailer.models import ConsentChannel, Subscriber, SubscriberStatus
from mailer.subscriptions import bp, consent
from mailer.subscriptions.addresses import display_address
from mailer.subscriptions.lifecycle import ConfirmResult, confirm, unsubscribe
from mailer.subscriptions.views import csrf_exempt
from mailer.tokens import BadToken, preferences_token, read_confirm_token, read_subscriber_token

Page = str | tuple[str, int] | Response
NEVER = 10**10  # seconds: "no expiry", to tell an expired token from a forged one


def _reader(subscriber: Subscriber) -> None:
    """Pages about a reader are in the reader's language (unless ?lang= says otherwise)."""
    set_language(subscriber.language, unless_chosen=True)


def _bad_link() -> tuple[str, int]:
    return error_page(400, _("This link is not valid"),
                      _("The link may have been cut or changed when it was copied. "
                        "Please open it again from the mail, or copy all of it."))


def _confirming(token: str) -> tuple[Subscriber, str] | tuple[str, int]:
    """The subscriber and nonce of a confirm token, or the error page."""
    try:
        subscriber_id, nonce = read_confirm_token(token)
    except BadToken:
        try:
            read_confirm_token(token, max_age=NEVER)
        except BadToken:
            return _bad_link()
        return error_page(400, _("This link has expired"),
                          _("Confirmation links work for 7 days. Please sign up again to get a new one."))
    subscriber = get_session().get(Subscriber, subscriber_id)
    if subscriber is None or subscriber.email is None:
        return _stale_confirmation()
    _reader(subscriber)
    return subscriber, nonce


def _stale_confirmation() -> tuple[str, int]:
    return error_page(404, _("This link is no longer valid"),
                      _("It belongs to a signup that was replaced by a newer one, withdrawn or not confirmed "
                        "in time. If you signed up again, use the link in the latest mail; otherwise please "
                        "sign up again."))


@bp.get("/confirm/<token>")
def confirm_page(token: str) -> Page:
    """A page with a button: a GET confirms nothing."""
    found = _confirming(token)
    if not isinstance(found[0], Subscriber):
        return found
    subscriber, nonce = found
    if subscriber.status is SubscriberStatus.CONFIRMED:
        return render_template("pages/confirmed.html", already=True, **_links(subscriber))
    if subscriber.confirm_nonce != nonce:
        return _stale_confirmation()
    return render_template("pages/confirm.html", address=display_address(subscriber.email or ""))


@bp.post("/confirm/<token>")
@csrf_exempt
def confirm_action(token: str) -> Page:
    """Confirm the subscription (idempotent)."""
    found = _confirming(token)
    if not isinstance(found[0], Subscriber):
        return found
    subscriber, nonce = found
    session = get_session()
    result = confirm(session, subscriber, nonce, consent.Origin.of(request))
    if result is ConfirmResult.STALE:
        return _stale_confirmation()
    session.commit()
    return render_template("pages/confirmed.html", already=result is ConfirmResult.ALREADY, **_links(subscriber))


def _unsubscribing(token: str) -> Subscriber | tuple[str, int] | None:
    """The subscriber of an unsubscribe token (None if gone), or the error page."""
    try:
        subscriber_id = read_subscriber_token("unsubscribe", token)
    except BadToken:
        return _bad_link()
    subscriber = get_session().get(Subscriber, subscriber_id)
    if subscriber is not None:
        _reader(subscriber)
    return subscriber


@bp.get("/unsubscribe/<token>")
def unsubscribe_page(token: str) -> Page:
    """A page with a button: a GET unsubscribes nobody."""
    found = _unsubscribing(token)
    if isinstance(found, tuple):
        return found
    if found is None or found.email is None:
        return error_page(404, _("Subscription not found"),
                          _("We have no subscription for this link any more: you will not receive our mail."))
    if found.status is not SubscriberStatus.CONFIRMED:
        return render_template("pages/unsubscribed.html", already=True)
    return render_template("pages/unsubscribe.html", address=display_address(found.email))


@bp.post("/unsubscribe/<token>")
@csrf_exempt
def unsubscribe_action(token: str) -> Page:
    """Unsubscribe at once (idempotent); also the RFC 8058 one-click target.

    Always 200 with a page, never a redirect: one-click senders do not follow them.
    The page carries no other token: the one-click answer goes to the mailbox
    provider, and this link to whoever holds a forwarded digest.
    """
    found = _unsubscribing(token)
    if isinstance(found, tuple):
        return found
    if found is None:
        return render_template("pages/unsubscribed.html", already=True)
    one_click = request.form.get("List-Unsubscribe") == "One-Click"
    session = get_session()
    changed = unsubscribe(session, found, ConsentChannel.ONE_CLICK if one_click else ConsentChannel.LINK,
                          consent.Origin.of(request))
    session.commit()
    return render_template("pages/unsubscribed.html", already=not changed)


def _links(subscriber: Subscriber) -> dict[str, str]:
    """Links a confirmed reader's page offers: their preferences page (the confirm link was mailed to them)."""
    return {"preferences_url": url_for("subscriptions.preferences", token=preferences_token(subscriber.id))}


@bp.after_request
def _private(response: Response) -> Response:
    """Pages reached by a token: not cached, not indexed, no token in Referer."""
    if request.view_args and "token" in request.view_args:
        response.headers["Cache-Control"] = "no-store"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["X-Robots-Tag"] = "noindex"
    return response
