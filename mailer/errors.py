"""Error answers for every route: a page in the site's layout, or JSON for the API.

Without this, a 404, 405, 413 or 500 is Werkzeug's bare English page, even on
the Italian site, and the JSON API answers HTML. Blueprints keep their own
handlers for what only they raise (CSRF, 429); these cover the rest.
"""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify, render_template, request
from flask_babel import gettext as _
from sqlalchemy.exc import DBAPIError, OperationalError
from werkzeug.exceptions import HTTPException, InternalServerError, MethodNotAllowed, ServiceUnavailable

log = logging.getLogger("mailer.errors")


def _texts(status: int) -> tuple[str, str]:
    """The title and sentence of an error page, in the page's language."""
    if status == 404:
        return _("Page not found"), _("There is no page at this address. It may have moved, or the link is incomplete.")
    if status == 405:
        return _("Not available"), _("This address does not answer this kind of request.")
    if status == 413:
        return _("Too large"), _("What was sent is too large.")
    if status == 503:
        return _("Temporarily unavailable"), _("The service is busy or under maintenance. Please try again shortly.")
    if status >= 500:
        return _("Something went wrong"), _("An error on our side stopped this request. Please try again later.")
    return _("Request refused"), _("This request cannot be handled.")


def error_response(error: HTTPException) -> Response:
    """``error`` as JSON under ``/api/``, else as a page."""
    status = error.code or 500
    title, message = _texts(status)
    if request.path.startswith("/api/"):
        response = jsonify(error=(error.name or "error").lower().replace(" ", "_"), message=message)
        response.status_code = status
    else:
        page = render_template("pages/error.html", title=title, message=message, status=status)
        response = Response(page, status=status, mimetype="text/html")
    if isinstance(error, MethodNotAllowed) and error.valid_methods:
        response.headers["Allow"] = ", ".join(error.valid_methods)
    if status == 503:
        response.headers["Retry-After"] = "30"
    return response


def _database_down(error: DBAPIError) -> Response:
    """The database cannot be reached: 503 (what /healthz says too), not a 500 traceback page."""
    log.error("database unavailable: %s", error.__class__.__name__)
    return error_response(ServiceUnavailable())


def init_app(app: Flask) -> None:
    """Register the handlers on the app (blueprints' own handlers come first)."""
    for status in (400, 404, 405, 413, 500):
        app.register_error_handler(status, error_response)
    app.register_error_handler(InternalServerError, error_response)
    app.register_error_handler(OperationalError, _database_down)
