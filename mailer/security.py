"""CSRF on every form, rate limits (``mailer.ratelimit``), secure session cookies, an undeclared proxy named."""

from __future__ import annotations

import ipaddress
import logging
import threading

from flask import Flask, request
from flask_wtf.csrf import CSRFProtect

from mailer import ratelimit

csrf = CSRFProtect()
log = logging.getLogger("mailer.security")
PROXY_WARNING = ("requests come through a proxy (X-Forwarded-For, from %s) but MAILER_PROXY_FIX_HOPS is 0: every"
                 " client counts as the proxy in the signup and admin login limits (one stranger can lock everybody"
                 " out) and in the consent log. Set MAILER_PROXY_FIX_HOPS=1 behind nginx (docs/deploy.md).")


def init_app(app: Flask) -> None:
    """Attach CSRF protection and the rate limiter; harden the session cookie."""
    app.config.setdefault("SESSION_COOKIE_HTTPONLY", True)
    # Flask's own defaults hold SESSION_COOKIE_SAMESITE = None, so setdefault
    # would never apply: set it unless a config file chose a value.
    if not app.config.get("SESSION_COOKIE_SAMESITE"):
        app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    csrf.init_app(app)
    ratelimit.init_app(app)
    if app.config["ENV"] == "production" and not app.config["PROXY_FIX_HOPS"]:
        _warn_of_an_undeclared_proxy(app)


def _warn_of_an_undeclared_proxy(app: Flask) -> None:
    """Say once, in production, that a proxy on this host or network forwards clients nobody declared.

    Its X-Forwarded-For cannot be trusted unasked (a client could forge it),
    so the only fix is the operator's; until then every reader is the proxy.
    """
    warned = threading.Event()

    @app.before_request
    def undeclared_proxy() -> None:
        if warned.is_set() or "X-Forwarded-For" not in request.headers:
            return
        try:
            peer = ipaddress.ip_address(request.remote_addr or "")
        except ValueError:
            return
        if peer.is_loopback or peer.is_private:
            warned.set()
            log.warning(PROXY_WARNING, peer)
