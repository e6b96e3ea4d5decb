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


def error_page(status: int, title: str, message: str) -> tuple[str, int]:
    """A clear page for a refused request, in the site's layout."""
    return render_template("pages/error.html", title=title, message=message, status=status), status


def error_response(error: HTTPException) -> Response:
    """``error`` as JSON under ``/api/``, else as a page."""
    status = error.code or 500
    title, message = _texts(status)
    if request.path.startswith("/api/"):
        response = jsonify(error=(error.name or "error").lower().replace(" ", "_"), message=message)
        response.status_code = status
    else:
        page, _status = error_page(status, title, message)
        response = Response(page, status=status, mimetype="text/html")
    if isinstance(error, MethodNotAllowed) and error.valid_methods:
        response.headers["Allow"] = ", ".join(error.valid_methods)
    if status == 503:
        response.headers["Retry-After"] = "30"
    return response


# What drivers say when the database itself is away (SQLite, psycopg), as
# opposed to a query that is wrong ("no such column": a bug, or a schema not
# migrated yet), which stays a 500 with its traceback in the log.
_UNREACHABLE = ("unable to open database file", "database is locked", "could not connect", "connection refused",
                "connection failed", "server closed the connection", "connection timeout", "timeout expired",
                "terminating connection", "the database system is", "no route to host", "name or service not known")


def _database_error(error: DBAPIError) -> Response:
    """The database away: 503 with Retry-After (what /healthz says too); anything else: a logged 500."""
    reason = str(error.orig if error.orig is not None else error).lower()
    if error.connection_invalidated or any(words in reason for words in _UNREACHABLE):
        log.error("database unavailable: %s", reason.splitlines()[0][:300] if reason else type(error).__name__)
        return error_response(ServiceUnavailable())
    log.error("database error on %s %s", request.method, request.path, exc_info=error)
    return error_response(InternalServerError())


def init_app(app: Flask) -> None:
    """Register the handlers on the app (blueprints' own handlers come first)."""
    for status in (400, 404, 405, 413, 500):  # 500: InternalServerError, the original error inside
        app.register_error_handler(status, error_response)
    app.register_error_handler(OperationalError, _database_error)
