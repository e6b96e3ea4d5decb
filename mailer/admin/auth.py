"""Logging in and out, and the login every ``/admin/`` page requires.

A login is a row of ``admin_sessions`` (``mailer.admin.sessions``): Flask's
signed session cookie (httponly, samesite, secure in production: see
``mailer.security``) carries only its id. Logging out deletes the row.

Failed logins are limited per source (``ADMIN_LOGIN_LIMIT``: a client
address, an IPv6 /64) and per account (``ADMIN_ACCOUNT_LOGIN_LIMIT``), as
django-axes counts them: the account-wide limit only holds back sources
that have themselves failed on that account, so strangers guessing from
elsewhere never lock the owner out. A slot is taken before the password is
checked, so parallel guesses past the limit never reach the check.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

from flask import abort, current_app, flash, g, jsonify, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError
from werkzeug.wrappers import Response

from mailer.admin import sessions
from mailer.admin.accounts import authenticate
from mailer.admin.blueprint import bp
from mailer.admin.forms import LoginForm
from mailer.db import get_session
from mailer.models import AdminUser
from mailer.ratelimit import Check, client_source, rate_limits

log = logging.getLogger("mailer.admin")
F = TypeVar("F", bound=Callable[..., Any])
# The key of the login's id in Flask's session cookie.
SESSION_KEY = "admin_session"
# Reachable without a login.
PUBLIC_ENDPOINTS = frozenset({"admin.login"})
# Pages outside /admin/ that send to the login and expect to come back (the captured-mail viewer).
RETURN_PREFIXES = ("/dev/mail",)


def current_admin() -> AdminUser | None:
    """The admin logged in on this request, or None (cached on ``g``)."""
    if "admin_user" in g:
        return cast(AdminUser | None, g.admin_user)
    admin = _load_admin()
    g.admin_user = admin
    return admin


def _load_admin() -> AdminUser | None:
    session_id = session.get(SESSION_KEY)
    if not isinstance(session_id, str):
        return None
    return sessions.session_admin(get_session(), session_id)


def _wants_json() -> bool:
    return request.path.endswith(".json") or request.accept_mimetypes.best == "application/json"


def _login_redirect() -> ResponseReturnValue:
    if _wants_json():
        return jsonify(error="login required"), 401
    # Come back to the page after logging in; a form's POST cannot be replayed.
    target = request.full_path.rstrip("?") if request.method == "GET" else None
    return redirect(url_for("admin.login", next=target))


def login_required(view: F) -> F:
    """Decorator for views outside the admin blueprint (e.g. the captured-mail viewer)."""

    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if current_admin() is None:
            return _login_redirect()
        return view(*args, **kwargs)

    return cast(F, wrapped)


@bp.before_request
def require_login() -> ResponseReturnValue | None:
    """Every page under ``/admin/`` but the login page needs a logged-in admin."""
    if request.endpoint in PUBLIC_ENDPOINTS or current_admin() is not None:
        return None
    return _login_redirect()


@bp.after_request
def private_headers(response: Response) -> Response:
    """Admin pages hold personal data: never cache them, never frame them elsewhere."""
    response.headers["Cache-Control"] = "no-store"
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def safe_next(target: str | None) -> str | None:
    """``target`` when it is a page of this admin (or of ``RETURN_PREFIXES``), else None (no open redirect)."""
    if not target or "\\" in target or any(ord(c) < 32 for c in target):
        return None
    parts = urlsplit(target)
    prefixes = (bp.url_prefix or "/admin", *RETURN_PREFIXES)
    if parts.scheme or parts.netloc or not any(parts.path == p or parts.path.startswith(p + "/") for p in prefixes):
        return None
    return target


def login_source() -> str:
    """Who is trying, as counted: the client address; an IPv6 one by its /64, what one home or host is given."""
    return client_source(request.remote_addr)


def _take_login_slot(account: str) -> list[Check]:
    """Count this attempt before the password is checked; 429 when it may not be checked.

    Refused: a source past ``ADMIN_LOGIN_LIMIT`` (any account), or an account
    past ``ADMIN_ACCOUNT_LOGIN_LIMIT`` when this source already tried it and
    failed in the window. A source that never failed on the account keeps
    its own budget, so the owner logs in while strangers are refused.
    Returns the checks, for ``give_back`` when the login succeeds.
    """
    config = current_app.config
    source = login_source()
    checks: list[Check] = [
        (str(config["ADMIN_LOGIN_LIMIT"]), "admin-login-source", source),
        (str(config["ADMIN_ACCOUNT_LOGIN_LIMIT"]), "admin-login-account", account),
        (str(config["ADMIN_ACCOUNT_LOGIN_LIMIT"]), "admin-login-pair", f"{account} {source}"),
    ]
    by_source, by_account, pair = rate_limits().take(checks)
    waits = [by_source.wait]
    if pair.hits > 1:  # this source tried this account before, in the window, and did not get in
        waits.append(by_account.wait)
    refused = [wait for wait in waits if wait is not None]
    if refused:
        log.warning("admin login refused (too many attempts) from %s", source, extra={"ip": request.remote_addr})
        g.retry_after = max(refused)
        abort(429)
    return checks


@bp.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    """The login form; on success, a new server-side session and a redirect to ``next``.

    A successful login gives its slot back, so an admin who logs in is never
    counted; past a limit even the right password waits (it is not checked).
    """
    form = LoginForm()
    target = safe_next(request.args.get("next"))
    if current_admin() is not None and request.method == "GET":
        return redirect(target or url_for("admin.overview"))
    if form.validate_on_submit():
        account = (form.email.data or "").strip().lower()[:320]
        checks = _take_login_slot(account)
        db = get_session()
        admin = authenticate(db, account, form.password.data or "")
        if admin is not None:
            rate_limits().give_back(checks)
            session_id = sessions.open_session(db, admin, float(current_app.config["ADMIN_SESSION_HOURS"]))
            db.commit()
            # A new session: nothing set before the login survives it (no session fixation).
            session.clear()
            session[SESSION_KEY] = session_id
            g.pop("admin_user", None)
            log.info("admin login: %s", admin.email, extra={"admin": admin.email})
            return redirect(target or url_for("admin.overview"), code=303)
        log.warning("admin login failed from %s", request.remote_addr, extra={"ip": request.remote_addr})
        form.password.errors = [_("Wrong email or password.")]
    status = 401 if request.method == "POST" else 200
    return render_template("pages/admin/login.html", form=form, next=target), status


@bp.post("/logout")
def logout() -> ResponseReturnValue:
    """End the session on the server too (a POST with a CSRF token: a link elsewhere cannot log you out)."""
    session_id = session.get(SESSION_KEY)
    if isinstance(session_id, str):
        db = get_session()
        sessions.end_session(db, session_id)
        db.commit()
    session.clear()
    g.pop("admin_user", None)
    flash(_("You are logged out."), "success")
    return redirect(url_for("admin.login"), code=303)


@bp.errorhandler(CSRFError)
def csrf_failed(error: CSRFError) -> ResponseReturnValue:
    """A form without a valid CSRF token: nothing was done; say how to retry."""
    message = _("The form expired or did not come from this dashboard (%(reason)s). Nothing was changed: "
                "reload the page and try again.", reason=error.description)
    return render_template("pages/admin/error.html", title=_("Please try again"), message=message,
                           back=_referring_page()), 400


def _referring_page() -> str | None:
    """The admin page the request came from, when it is one of ours."""
    parts = urlsplit(request.referrer or "")
    if parts.netloc != request.host:
        return None
    return safe_next(parts.path + (f"?{parts.query}" if parts.query else ""))


@bp.errorhandler(429)
def too_many_requests(_error: Exception) -> ResponseReturnValue:
    """Past the login limit: a page saying to wait, with Retry-After."""
    message = _("Too many login attempts. Wait a few minutes and try again.")
    page = render_template("pages/admin/error.html", title=_("Too many attempts"), message=message)
    return page, 429, {"Retry-After": str(g.get("retry_after", 60))}
