"""Signup -> confirm -> subscriber -> preferences -> unsubscribe (issue 3 builds it out)."""

from __future__ import annotations

from flask import Blueprint, Flask

bp = Blueprint("subscriptions", __name__)


class CsvError(ValueError):
    """The CSV cannot be read at all (no header, no email column)."""


def import_csv(*args, **kwargs):  # type: ignore[no-untyped-def]
    raise NotImplementedError


def export_csv(*args, **kwargs):  # type: ignore[no-untyped-def]
    raise NotImplementedError


def init_app(app: Flask) -> None:
    """Nothing yet."""
