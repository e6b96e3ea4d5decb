"""The two WSGI apps that ``bench/signup.py`` puts under gunicorn.

- ``mailer_app``: the real app (``create_app``), with the per-IP limit on but
  high enough never to refuse, and no cap on confirmation mails, so every
  request does the full signup (consent log, rendering, outbox row).
- ``bare_app``: the raw limit: a bare Flask endpoint that parses the same
  JSON and inserts one row with SQLAlchemy, on the same SQLite settings
  (``mailer.db.make_engine``: WAL, busy_timeout, synchronous=NORMAL).

Both read ``BENCH_DATABASE_URL`` and ``BENCH_SMTP_URL`` from the environment;
``BENCH_OUTBOX=off`` takes the outbox thread out of the real app, and
``BENCH_LIMITER=off`` its per-IP limit (to measure what each costs).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flask import Flask, jsonify, request
from sqlalchemy import DateTime, String, insert
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from mailer import create_app
from mailer.db import make_engine
from mailer.models import utcnow


class BareBase(DeclarativeBase):
    pass


class BareSignup(BareBase):
    """The one row the bare endpoint inserts."""

    __tablename__ = "bare_signups"
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    created_at: Mapped[Any] = mapped_column(DateTime, default=utcnow)


def _mailer() -> Flask:
    app = create_app({
        "ENV": "production",
        "DATABASE_URL": os.environ["BENCH_DATABASE_URL"],
        "SECRET_KEY": "bench-secret-key-16+",
        "SMTP_URL": os.environ["BENCH_SMTP_URL"],
        "FEEDS": [],
        "BASE_URL": "http://127.0.0.1:5000",
        "SIGNUP_LIMIT": "100000000/minute",
        "CONFIRM_MAILS_PER_HOUR": 100_000_000,
        "RATELIMIT_ENABLED": os.environ.get("BENCH_LIMITER") != "off",
    })
    if os.environ.get("BENCH_OUTBOX") == "off":
        # No sending thread: the mails wait in the outbox for the scheduler.
        app.extensions.pop("mailer.outbox", None)
    return app


def _bare() -> Flask:
    app = Flask("bare")
    engine = make_engine(os.environ["BENCH_DATABASE_URL"])

    @app.post("/api/subscribe")
    def subscribe() -> Any:
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or not isinstance(body.get("email"), str):
            return jsonify(error="bad_body"), 400
        with engine.begin() as conn:
            conn.execute(insert(BareSignup).values(email=body["email"], created_at=utcnow()))
        return jsonify(status="accepted"), 202

    return app


def __getattr__(name: str) -> Flask:
    """Build an app only when gunicorn asks for it (importing stays cheap)."""
    if name == "mailer_app":
        return _mailer()
    if name == "bare_app":
        return _bare()
    raise AttributeError(name)
