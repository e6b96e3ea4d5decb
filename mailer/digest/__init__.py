"""Pick articles -> render -> premailer once -> digest (issue 5 builds it out)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("digest", __name__)


def compose_digest(*args, **kwargs):  # type: ignore[no-untyped-def]
    raise NotImplementedError


def render_preview(*args, **kwargs):  # type: ignore[no-untyped-def]
    raise NotImplementedError
