"""The operators' dashboard (issue 7 builds it out)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("admin", __name__, url_prefix="/admin")


class AdminError(ValueError):
    """An admin account cannot be created (bad address, weak password, exists)."""


def create_admin(*args, **kwargs):  # type: ignore[no-untyped-def]
    raise NotImplementedError
