"""``GET /healthz``: is the database answering, and is the signup queue moving?"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from mailer.db import get_session

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> tuple[Response, int]:
    """200 with ``{"database": "ok", "signup_queue": n}``, or 503 naming the problem.

    ``signup_queue``: signups waiting to be applied; normally 0, a few
    hundred during a flood. A number that keeps growing is worth an alert.
    """
    try:
        waiting = get_session().execute(text("SELECT COUNT(*) FROM signup_queue")).scalar()
    except SQLAlchemyError as exc:
        return jsonify(status="error", database="down", error=type(exc).__name__), 503
    return jsonify(status="ok", database="ok", signup_queue=waiting), 200
