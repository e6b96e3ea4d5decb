"""CSRF on every form, rate limits (``mailer.ratelimit``), secure session cookies."""

from __future__ import annotations

from flask import Flask
from flask_wtf.csrf import CSRFProtect

from mailer import ratelimit

csrf = CSRFProtect()


def init_app(app: Flask) -> None:
    """Attach CSRF protection and the rate limiter; harden the session cookie."""
    app.config.setdefault("SESSION_COOKIE_HTTPONLY", True)
    # Flask's own defaults hold SESSION_COOKIE_SAMESITE = None, so setdefault
    # would never apply: set it unless a config file chose a value.
    if not app.config.get("SESSION_COOKIE_SAMESITE"):
        app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    csrf.init_app(app)
    ratelimit.init_app(app)
