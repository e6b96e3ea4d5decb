"""What every admin template gets: the time filter, labels, the current admin."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import current_app
from flask_babel import format_datetime, get_locale
from flask_babel import lazy_gettext as _l

from mailer.admin.auth import current_admin
from mailer.admin.blueprint import bp
from mailer.topics import topic_name


@bp.app_template_filter("admin_time")
def admin_time(value: datetime | None) -> str:
    """A stored (naive UTC) time in ``MAILER_TIMEZONE``, or a dash."""
    if value is None:
        return "—"
    # A no-break space: tables never wrap between the date and the time.
    return str(format_datetime(value, "yyyy-MM-dd\u00a0HH:mm"))


@bp.context_processor
def admin_context() -> dict[str, Any]:
    """What the admin layout needs on every page."""
    return {
        "admin": current_admin(),
        "show_captured_mail": bool(current_app.config["SHOW_CAPTURED_MAIL"]),
        # The layout's <html lang>; Flask-Babel does not make it a template global.
        "get_locale": get_locale,
        "topic_label": topic_label,
        "status_label": status_label,
    }


# Every status shown on the pages (readers, digests, deliveries), translatable.
STATUS_LABELS = {
    "pending": _l("pending"), "confirmed": _l("confirmed"), "unsubscribed": _l("unsubscribed"),
    "bounced": _l("bounced"), "complained": _l("complained"), "erased": _l("erased"),
    "sending": _l("sending"), "paused": _l("paused"),
    "finished": _l("finished"), "sent": _l("sent"), "deferred": _l("deferred"), "failed": _l("failed"),
    "skipped": _l("skipped"),
}


def status_label(status: Any) -> str:
    """The translated name of a status (an enum member or its value)."""
    value = str(getattr(status, "value", status))
    return str(STATUS_LABELS.get(value, value))


def topic_label(slug: str) -> str:
    """A topic's name in the page's language."""
    return topic_name(current_app.config["TOPICS"], slug, str(get_locale() or current_app.config["LOCALE"]))
