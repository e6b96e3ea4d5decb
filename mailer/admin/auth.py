"""Logging in and out, and the login every ``/admin/`` page requires.

The login lives in Flask's signed session cookie (httponly, samesite, secure in
production: see ``mailer.security``). It holds the admin's id, a fingerprint
of the password hash (a password change ends the old sessions) and the login
time (sessions end after ``ADMIN_SESSION_HOURS``).
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

from flask import abort, current_app, flash, g, jsonify, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError
from werkzeug.wrappers import Response

from mailer.admin.accounts import authenticate, session_fingerprint
from mailer.admin.blueprint import bp
from mailer.admin.forms import LoginForm
from mailer.db import get_session
from mailer.models import AdminUser
from mailer.ratelimit import rate_limits

log = logging.getLogger("mailer.admin")
F = TypeVar("F", bound=Callable[..., Any])
SESSION_KEYS = ("admin_id", "admin_fp", "admin_at")
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
    admin_id, fingerprint, since = (session.get(k) for k in SESSION_KEYS)
    if not isinstance(admin_id, int) or not isinstance(since, int | float):
        return None
    max_age = float(current_app.config["ADMIN_SESSION_HOURS"]) * 3600
    if not 0 <= time.time() - since <= max_age:
        return None
    admin = get_session().get(AdminUser, admin_id)
    if admin is None or not hmac.compare_digest(session_fingerprint(admin), str(fingerprint)):
        return None  # the account was deleted or its password changed
    return admin


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


def _login_limits() -> list[tuple[str, str, str]]:
    """(limit, scope, key) of a login attempt: per IP, and per account from any IP."""
    config = current_app.config
    account = (request.form.get("email") or "").strip().lower()[:320]
    return [
        (str(config["ADMIN_LOGIN_LIMIT"]), "admin-login-ip", request.remote_addr or "unknown"),
        # Guessing one account's password from many IP addresses is slowed down as well.
        (str(config["ADMIN_ACCOUNT_LOGIN_LIMIT"]), "admin-login-account", account),
    ]


@bp.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    """The login form; on success, a fresh session and a redirect to ``next``.

    Only failed attempts count against the limits, so an admin who logs in
    is never locked out; past a limit even the right password waits.
    """
    form = LoginForm()
    target = safe_next(request.args.get("next"))
    if current_admin() is not None and request.method == "GET":
        return redirect(target or url_for("admin.overview"))
    limits = rate_limits()
    if request.method == "POST":
        waits = [wait for limit in _login_limits() if (wait := limits.test(*limit)) is not None]
        if waits:
            g.retry_after = max(waits)
            abort(429)
    if form.validate_on_submit():
        db = get_session()
        admin = authenticate(db, form.email.data or "", form.password.data or "")
        if admin is not None:
            db.commit()
            # A new session: nothing set before the login survives it.
            session.clear()
            session["admin_id"] = admin.id
            session["admin_fp"] = session_fingerprint(admin)
            session["admin_at"] = int(time.time())
            log.info("admin login: %s", admin.email, extra={"admin": admin.email})
            return redirect(target or url_for("admin.overview"), code=303)
        log.warning("admin login failed from %s", request.remote_addr, extra={"ip": request.remote_addr})
        form.password.errors = [_("Wrong email or password.")]
    if request.method == "POST":
        for limit in _login_limits():
            limits.hit(*limit)
    status = 401 if request.method == "POST" else 200
    return render_template("pages/admin/login.html", form=form, next=target), status


@bp.post("/logout")
def logout() -> ResponseReturnValue:
    """End the session (a POST with a CSRF token: a link elsewhere cannot log you out)."""
    for key in SESSION_KEYS:
        session.pop(key, None)
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
