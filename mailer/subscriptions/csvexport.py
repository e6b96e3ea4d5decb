"""``subscribers export``: every subscriber with its status and consent record.

Streamed: rows are read in batches from a server-side cursor and written as
they come, so a big list does not sit in memory. The consent record of each
reader is its latest signup (or import) and its latest confirmation: when,
from which IP, through which channel and page, and the version of the
consent text.
"""

from __future__ import annotations

import csv
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased

from mailer.models import ConsentAction, ConsentEvent, Subscriber


class Writable(Protocol):
    """Where the CSV goes: a text file, ``sys.stdout``, a streaming response's buffer."""

    def write(self, text: str, /) -> Any:
        """Write ``text``."""


# The consent record: the latest signup (or import), and the latest confirmation.
SIGNUP_COLUMNS = ("signup_at", "signup_channel", "signup_ip", "signup_user_agent", "signup_source",
                  "consent_text_version")
CONFIRM_COLUMNS = ("confirm_at", "confirm_ip", "confirm_user_agent")
COLUMNS = [
    "email", "status", "language", "topics", "created_at", "confirmed_at", "unsubscribed_at",
    *SIGNUP_COLUMNS, *CONFIRM_COLUMNS, "email_hash",
]
# What a spreadsheet takes a cell starting with for a formula.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _latest(actions: list[str]) -> Any:
    """A subquery: the id of each subscriber's latest event among ``actions``."""
    return (
        select(ConsentEvent.subscriber_id.label("subscriber_id"), func.max(ConsentEvent.id).label("event_id"))
        .where(ConsentEvent.action.in_(actions), ConsentEvent.subscriber_id.is_not(None))
        .group_by(ConsentEvent.subscriber_id)
        .subquery()
    )


def _time(moment: datetime | None) -> str:
    return moment.isoformat(timespec="seconds") + "Z" if moment else ""


def export_csv(session: Session, handle: Writable) -> int:
    """Write all subscribers as CSV to ``handle``; return how many."""
    signup_ids, confirm_ids = _latest([ConsentAction.SIGNUP, ConsentAction.IMPORT]), _latest([ConsentAction.CONFIRM])
    signup, confirmation = aliased(ConsentEvent), aliased(ConsentEvent)
    query = (
        select(Subscriber, signup, confirmation)
        .outerjoin(signup_ids, signup_ids.c.subscriber_id == Subscriber.id)
        .outerjoin(signup, signup.id == signup_ids.c.event_id)
        .outerjoin(confirm_ids, confirm_ids.c.subscriber_id == Subscriber.id)
        .outerjoin(confirmation, confirmation.id == confirm_ids.c.event_id)
        .order_by(Subscriber.id)
        .execution_options(yield_per=1000)
    )
    writer = csv.writer(handle)
    writer.writerow(COLUMNS)
    count = 0
    for subscriber, first, confirmed in session.execute(query).tuples():
        given = _signup_columns(first)
        confirm = _confirm_columns(confirmed, first)
        # Every cell defused: an imported file's record came from elsewhere too.
        writer.writerow([_safe(cell) for cell in (
            subscriber.email or "", str(subscriber.status), subscriber.language, subscriber.topics,
            _time(subscriber.created_at), _time(subscriber.confirmed_at), _time(subscriber.unsubscribed_at),
            given["signup_at"], given["signup_channel"], given["signup_ip"], given["signup_user_agent"],
            given["signup_source"], given["consent_text_version"],
            confirm["confirm_at"], confirm["confirm_ip"], confirm["confirm_user_agent"], subscriber.email_hash,
        )])
        count += 1
    return count


def _carried(event: ConsentEvent | None) -> dict[str, str]:
    """The consent record an import carried from another export (empty if none)."""
    if event is None or event.action != ConsentAction.IMPORT or not isinstance(event.details, dict):
        return {}
    record = event.details.get("consent_record")
    return {str(k): str(v) for k, v in record.items()} if isinstance(record, dict) else {}


def _signup_columns(event: ConsentEvent | None) -> dict[str, str]:
    """The signup part of the record: the latest signup or import, or what that import carried."""
    carried = _carried(event)
    if carried:
        return {name: carried.get(name, "") for name in SIGNUP_COLUMNS}
    return {
        "signup_at": _time(event.occurred_at) if event else "", "signup_channel": event.channel if event else "",
        "signup_ip": (event.ip or "") if event else "", "signup_user_agent": (event.user_agent or "") if event else "",
        "signup_source": (event.source_page or "") if event else "",
        "consent_text_version": (event.consent_text_version or "") if event else "",
    }


def _confirm_columns(event: ConsentEvent | None, signup: ConsentEvent | None) -> dict[str, str]:
    """The confirmation part: the latest confirmation here, else the one an import carried."""
    if event is None:
        carried = _carried(signup)
        return {name: carried.get(name, "") for name in CONFIRM_COLUMNS}
    return {"confirm_at": _time(event.occurred_at), "confirm_ip": event.ip or "",
            "confirm_user_agent": event.user_agent or ""}


def _safe(value: str) -> str:
    """Defuse spreadsheet formulas: addresses, user agents and pages are chosen by whoever signs up.

    ``=cmd|...@example.com`` is a valid address; the import takes the ``'`` off again.
    """
    return "'" + value if value[:1] in FORMULA_STARTS else value
