"""``POST /api/subscribe``: JSON signup for the site's own signup box.

Body: ``{"email": "...", "consent": true, "topics": [...], "language": "it",
"source": "<page URL>", "consent_text": "<the words next to the box>"}``;
only ``email`` and ``consent`` are required. 202 with the same body for every
valid address; 400 with ``{"error": code, "message": ...}`` otherwise.

CORS: only the origins in ``MAILER_CORS_ORIGINS`` get the headers, and a
browser request from any other site is refused outright (403), since the
endpoint is exempt from CSRF. A JSON content type is required, so a
cross-site page cannot post here without a CORS preflight.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Response, current_app, jsonify, request
from flask_babel import gettext as _
from werkzeug.exceptions import RequestEntityTooLarge

from mailer.config import LOCALES
from mailer.db import get_engine
from mailer.i18n import select_locale, set_language
from mailer.models import ConsentChannel
from mailer.subscriptions import bp, consent
from mailer.subscriptions.addresses import AddressError, parse_address
from mailer.subscriptions.signup import SignupRequest, enqueue
from mailer.subscriptions.views import MAX_JSON_BODY, csrf_exempt, signup_limit
from mailer.subscriptions.worker import notify_signups
from mailer.topics import normalise_topics

PREFLIGHT_MAX_AGE = "86400"
ACCEPTED = "mailer.subscriptions.accepted"


class ApiError(Exception):
    """A refused request: an error code and a message for the reader."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


def _allowed_origin() -> str | None:
    """The request's Origin if it may read our answers, else None."""
    origin = request.headers.get("Origin")
    if origin and origin.rstrip("/") in current_app.config["CORS_ORIGINS"]:
        return origin
    return None


def _foreign_origin() -> bool:
    """True for a browser request from a site that is neither ours nor allowed."""
    origin = request.headers.get("Origin")
    if not origin or _allowed_origin():
        return False
    own = {current_app.config["BASE_URL"].rstrip("/"), request.host_url.rstrip("/")}
    return origin.rstrip("/") not in own


@bp.route("/api/subscribe", methods=["OPTIONS"], provide_automatic_options=False)
def api_preflight() -> Response:
    """The CORS preflight: allowed origins get the headers, others nothing."""
    return Response(status=204)


@bp.post("/api/subscribe")
@csrf_exempt
@signup_limit
def api_subscribe() -> tuple[Response, int]:
    """Queue a signup from JSON; 202 with the same body whether new or known."""
    try:
        req = _parse()
    except ApiError as exc:
        return jsonify(error=exc.code, message=exc.message), exc.status
    enqueue(get_engine(), req)
    notify_signups(current_app)
    return _accepted(req.language), 202


def _accepted(language: str) -> Response:
    """The one answer to every valid signup in ``language`` (built once per process)."""
    cache: dict[str, bytes] = current_app.extensions.setdefault(ACCEPTED, {})
    body = cache.get(language)
    if body is None:
        message = _("Almost done: we sent you an email. Open it and confirm your subscription.")
        body = cache[language] = json.dumps({"status": "accepted", "message": message}).encode()
    return Response(body, mimetype="application/json")


def _json_body() -> Any:
    """The request's JSON, or None; raise ApiError when it is too large.

    The size is checked while reading, so a chunked body (no Content-Length)
    is cut at ``MAX_JSON_BODY`` too; a document nested too deeply for the parser
    is a bad body like any other, not a crash.
    """
    if not request.is_json:
        return None
    request.max_content_length = MAX_JSON_BODY
    try:
        raw = request.get_data(cache=True)
        # A stream cut at the limit (Werkzeug may stop there without a word) is too large too.
        if len(raw) >= MAX_JSON_BODY:
            raise RequestEntityTooLarge
    except RequestEntityTooLarge:
        raise ApiError("bad_body", _("The request is too large."), 413) from None
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        return None


def _parse() -> SignupRequest:
    """Check the request and build the signup; raise ApiError."""
    if _foreign_origin():
        raise ApiError("origin_not_allowed", _("This site may not sign readers up here."), 403)
    body = _json_body()
    if not isinstance(body, dict):
        raise ApiError("bad_body", _("Expected a JSON object with at least \"email\" and \"consent\"."))
    # The newsletter's language: the one asked for, else the browser's (Accept-Language), else MAILER_LOCALE.
    # (select_locale, not Flask-Babel's get_locale: the same choice without parsing a babel Locale.)
    language = body.get("language") or select_locale()
    if language not in LOCALES:
        raise ApiError("bad_language", _("Unknown language: choose one of %(choices)s.", choices=", ".join(LOCALES)))
    set_language(language)
    email = body.get("email")
    if not isinstance(email, str):
        raise ApiError("missing_email", _("Please enter your email address."))
    try:
        address = parse_address(email)
    except AddressError as exc:
        raise ApiError(exc.code, exc.reason) from None
    if body.get("consent") is not True:
        raise ApiError("consent_required", _("Please tick the box: we need your consent."))
    topics = body.get("topics")
    if topics is None:
        topics = []
    if not isinstance(topics, list) or not all(isinstance(t, str) for t in topics):
        raise ApiError("bad_topics", _("Topics must be a list of topic names."))
    try:
        chosen = normalise_topics(current_app.config["TOPICS"], topics)
    except ValueError:
        raise ApiError("unknown_topic", _("Unknown topic: choose among %(choices)s.",
                                          choices=", ".join(current_app.config["TOPICS"]))) from None
    source, shown = body.get("source"), body.get("consent_text")
    return SignupRequest(
        address=address, topics=chosen, language=language, channel=ConsentChannel.API,
        # The words the signup box showed, when it says; else our own consent text.
        consent_text=shown.strip()[:2000] if isinstance(shown, str) and shown.strip()
        else consent.consent_text(current_app.config["SITE_NAME"], language),
        origin=consent.Origin.of(request, source[:1000] if isinstance(source, str) and source else None),
    )


@bp.after_app_request
def _cors(response: Response) -> Response:
    """CORS headers on every answer of the API (errors and 429 included)."""
    if request.path != "/api/subscribe":
        return response
    response.vary.add("Origin")
    origin = _allowed_origin()
    if origin:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Expose-Headers"] = "Retry-After"
        if request.method == "OPTIONS":
            response.headers["Access-Control-Allow-Methods"] = "POST, OPTIONS"
            response.headers["Access-Control-Allow-Headers"] = "Content-Type"
            response.headers["Access-Control-Max-Age"] = PREFLIGHT_MAX_AGE
    return response
