"""CSRF on every form, per-IP limits on signup, secure session cookies."""

from __future__ import annotations

from flask import Flask
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_wtf.csrf import CSRFProtect

from mailer.ratelimit import SCHEME as LEAN_MEMORY  # registers the mailer-memory:// storage

csrf = CSRFProtect()
# In-memory counters per process by default (mailer-memory://, see
# mailer/ratelimit.py: no timer thread); MAILER_RATELIMIT_STORAGE_URI
# (e.g. redis://) shares them between gunicorn workers.
limiter = Limiter(key_func=get_remote_address, default_limits=[], headers_enabled=True)


def init_app(app: Flask) -> None:
    """Attach CSRF protection and the rate limiter; harden the session cookie."""
    app.config.setdefault("SESSION_COOKIE_HTTPONLY", True)
    # Flask's own defaults hold SESSION_COOKIE_SAMESITE = None, so setdefault
    # would never apply: set it unless a config file chose a value.
    if not app.config.get("SESSION_COOKIE_SAMESITE"):
        app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    app.config.setdefault("RATELIMIT_HEADERS_ENABLED", True)
    app.config.setdefault("RATELIMIT_STORAGE_URI", f"{LEAN_MEMORY}://")
    csrf.init_app(app)
    limiter.init_app(app)
