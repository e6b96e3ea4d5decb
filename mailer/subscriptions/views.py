"""The public pages: ``GET /``, ``POST /subscribe``, ``GET /privacy``.

Handlers only parse, queue the signup (``signup.py``) and answer. The
answer to a valid signup is the same page for every address, whatever its
state: what the address gets is decided after the answer, from the queue.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar, cast

from flask import Response, current_app, g, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import TooManyRequests
from werkzeug.wrappers import Response as WerkzeugResponse

from mailer.config import LOCALES
from mailer.db import get_engine
from mailer.errors import error_page
from mailer.i18n import set_language, with_language
from mailer.models import ConsentChannel
from mailer.security import csrf
from mailer.subscriptions import bp, consent
from mailer.subscriptions.forms import SignupForm, form_age, form_timestamp
from mailer.subscriptions.signup import SignupRequest, enqueue
from mailer.subscriptions.throttle import ip_budget
from mailer.subscriptions.worker import notify_signups
from mailer.topics import normalise_topics

log = logging.getLogger("mailer.subscriptions")

View = TypeVar("View", bound=Callable[..., Any])
# The most a JSON signup body may weigh (``POST /api/subscribe``).
MAX_JSON_BODY = 16 * 1024


def signup_limit(view: View) -> View:
    """The per-IP limit on a signup route: one budget for both, so alternating them gains nothing."""

    @functools.wraps(view)
    def limited(*args: Any, **kwargs: Any) -> Any:
        if request.method == "POST":
            wait = ip_budget()
            if wait is not None:
                g.retry_after = wait
                raise TooManyRequests
        return view(*args, **kwargs)

    return cast(View, limited)


def csrf_exempt(view: View) -> View:
    """Exempt a view from CSRF: for token routes and the JSON API (typed ``csrf.exempt``)."""
    csrf.exempt(view)
    return view


def _signup_page(form: SignupForm, form_error: str | None = None, status: int = 200) -> Response:
    """The signup page with ``form`` (and its errors)."""
    config = current_app.config
    # The notice opens in the language of the page the box is on.
    label = consent.consent_label(config["SITE_NAME"], with_language(config["PRIVACY_URL"]))
    page = render_template("pages/signup.html", form=form, form_error=form_error, consent_label=label)
    response = current_app.make_response((page, status))
    response.headers["Cache-Control"] = "no-store"  # it carries a CSRF token and a timestamp
    return response


@bp.get("/")
def signup_page() -> Response:
    """The signup page: "Non perderti nessuna news!"."""
    form = SignupForm(formdata=None)
    form.started.data = form_timestamp()
    return _signup_page(form)


@bp.get("/subscribe")
def subscribe_page() -> WerkzeugResponse:
    """The form's own address, opened again (the language switch of its error page, a reload): the form."""
    language = request.args.get("lang")
    return redirect(url_for(".signup_page", lang=language if language in LOCALES else None), code=303)


@bp.post("/subscribe")
@signup_limit
def subscribe() -> Response | tuple[str, int]:
    """The signup form: "check your inbox" for every valid address."""
    form = SignupForm()
    set_language(str(form.language.data))  # answer in the language just chosen
    if form.homepage.data:
        # A bot filled the field people never see: pretend, change nothing.
        log.info("signup honeypot filled from %s", request.remote_addr)
        return render_template("pages/check_inbox.html", address=(form.email.data or "")[:254]), 200
    form_error = None
    age = form_age(form.started.data or "")
    valid = form.validate()
    if age is None:
        form_error = _("The form has expired. Please check your details and send it again.")
        form.started.data = form_timestamp()
    elif age < float(current_app.config["SIGNUP_MIN_SECONDS"]):
        form_error = _("That was quick! Please check your details and send the form again.")
    if not valid or form_error or form.address is None:
        return _signup_page(form, form_error, 400)
    language = str(form.language.data)
    enqueue(get_engine(), SignupRequest(
        address=form.address,
        topics=normalise_topics(current_app.config["TOPICS"], form.topics.data or []),
        language=language,
        channel=ConsentChannel.FORM,
        consent_text=consent.consent_text(current_app.config["SITE_NAME"], language),
        origin=consent.Origin.of(request),
    ))
    notify_signups(current_app)
    return render_template("pages/check_inbox.html", address=form.address.display), 200


@bp.get("/privacy")
def privacy() -> str:
    """The privacy notice (informativa) that the consent box links to."""
    return render_template("pages/privacy.html")


def _language_of_the_form() -> None:
    """Answer a refused signup in the language the form or the JSON body chose (read only on refusals)."""
    if request.path.startswith("/api/"):
        small = request.content_length is not None and request.content_length <= MAX_JSON_BODY
        body = request.get_json(silent=True) if small else None
        language = body.get("language") if isinstance(body, dict) else None
    else:
        language = request.form.get("language")
    if isinstance(language, str):
        set_language(language, unless_chosen=True)


@bp.errorhandler(CSRFError)
def _csrf_failed(error: CSRFError) -> tuple[str, int]:
    """A form without a valid CSRF token: explain, change nothing."""
    _language_of_the_form()
    return error_page(400, _("This form has expired"),
                      _("For your security the form works only for a while after the page is opened. "
                        "Please go back, reload the page and send it again."))


@bp.errorhandler(TooManyRequests)
def _too_many(error: TooManyRequests) -> Response:
    """429 with Retry-After: JSON for the API, a page for people."""
    _language_of_the_form()
    if request.path.startswith("/api/"):
        message = _("Too many signups from your network. Please try again later.")
        response = current_app.make_response((jsonify(error="rate_limited", message=message), 429))
    else:
        response = current_app.make_response(error_page(
            429, _("Too many attempts"),
            _("Too many signups came from your network. Please wait a few minutes and try again.")))
    response.headers["Retry-After"] = str(g.get("retry_after", 60))
    return response
