"""``GET /healthz``: is the database answering?"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from mailer.db import get_session

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> tuple[Response, int]:
    """200 with ``{"database": "ok"}``, or 503 naming the problem."""
    try:
        get_session().execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        return jsonify(status="error", database="down", error=type(exc).__name__), 503
    return jsonify(status="ok", database="ok"), 200
