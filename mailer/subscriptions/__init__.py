"""Signup -> confirm -> subscriber -> preferences -> unsubscribe.

The blueprint ``bp`` serves the public pages (``/``, ``/subscribe``,
``/api/subscribe``, ``/confirm/<t>``, ``/unsubscribe/<t>``,
``/preferences/<t>``, ``/privacy``). The functions below are what the other
stages, the command line and the scheduler call; each takes a session and
leaves the commit to the caller. Only this package changes a subscriber's
status.
"""

from __future__ import annotations

from flask import Blueprint, Flask

from mailer.subscriptions.csvexport import export_csv
from mailer.subscriptions.csvimport import CsvError, ImportReport, Problem, import_csv
from mailer.subscriptions.lifecycle import erase, personal_data, resubscribe, unsubscribe, update_preferences
from mailer.subscriptions.mails import notify_outbox
from mailer.subscriptions.maintenance import purge_outbox, purge_unconfirmed, suppress_bounced, suppress_complained
from mailer.subscriptions.signup import apply_queue
from mailer.subscriptions.worker import EXTENSION, SignupWorker

bp = Blueprint("subscriptions", __name__)

# The routes register themselves on ``bp``; they import it, so they come last.
from mailer.subscriptions import api, links, personaldata, preferences, views  # noqa: E402,F401


def init_app(app: Flask) -> None:
    """Put the signup worker in ``app.extensions["mailer.signups"]`` (no thread yet)."""
    app.extensions[EXTENSION] = SignupWorker(app)


__all__ = [
    "CsvError",
    "ImportReport",
    "Problem",
    "SignupWorker",
    "apply_queue",
    "bp",
    "erase",
    "export_csv",
    "import_csv",
    "init_app",
    "notify_outbox",
    "personal_data",
    "purge_outbox",
    "purge_unconfirmed",
    "resubscribe",
    "suppress_bounced",
    "suppress_complained",
    "unsubscribe",
    "update_preferences",
]
