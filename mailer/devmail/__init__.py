"""Development only: the capture SMTP server and the captured-mail viewer."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("devmail", __name__, url_prefix="/dev/mail")
