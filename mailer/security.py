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
    # In-memory counters per process by default (mailer-memory://: no timer
    # thread); RATELIMIT_STORAGE_URI in instance/config.py (e.g. redis://) shares them
    # between gunicorn workers.
    app.config.setdefault("RATELIMIT_STORAGE_URI", f"{ratelimit.SCHEME}://")
    csrf.init_app(app)
    ratelimit.init_app(app)
