"""Abuse limits: on confirmation mails, and on signup requests per IP.

Per address: at most one mail per 10 minutes and 3 a day, however many
requests arrive (``Subscriber.confirmations_sent`` keeps the times). For
everybody together: at most ``CONFIRM_MAILS_PER_HOUR``. Per IP: at most
``SIGNUP_LIMIT`` requests on the two signup routes together (``ip_budget``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, cast

from flask import current_app, request
from sqlalchemy import Table, func, select
from sqlalchemy.engine import Connection

from mailer.models import OutboundMail
from mailer.ratelimit import rate_limits

MAIL_INTERVAL = timedelta(minutes=10)
MAILS_PER_DAY = 3
DAY = timedelta(days=1)
HOUR = timedelta(hours=1)
# How long a process trusts the id of the first mail of the last hour.
WINDOW_REFRESH = timedelta(minutes=1)
OUTBOX = cast(Table, OutboundMail.__table__)
CACHE = "mailer.subscriptions.hourly_window"


def recent_sends(confirmations_sent: list[str] | None, now: datetime) -> list[datetime]:
    """When confirmations went to an address in the last day (from ``Subscriber.confirmations_sent``)."""
    sent = [datetime.fromisoformat(stamp) for stamp in confirmations_sent or []]
    return [moment for moment in sent if now - moment < DAY]


def recently_mailed(confirmations_sent: list[str] | None, now: datetime) -> bool:
    """True when one more mail would break the per-address limits."""
    recent = recent_sends(confirmations_sent, now)
    return len(recent) >= MAILS_PER_DAY or any(now - moment < MAIL_INTERVAL for moment in recent)


def hourly_budget(conn: Connection, config: Mapping[str, Any], now: datetime) -> int:
    """How many more transactional mails CONFIRM_MAILS_PER_HOUR allows this hour (0 or more).

    Counted from ids, not with COUNT(*), which would read every row of a
    viral hour at every batch: the outbox's ids grow with time, so the last
    hour's rows run from the first one after the start of the hour to the
    newest. The first one is looked up with the index at most once a minute
    per process. Either way of being stale (deleted rows, a window start a
    minute old) counts more rows, never fewer: the cap errs on the safe side.
    """
    cap = int(config["CONFIRM_MAILS_PER_HOUR"])
    newest_id = conn.execute(select(func.max(OUTBOX.c.id))).scalar()
    first_id = None if newest_id is None else _window_start(conn, now)
    sent = 0 if first_id is None or newest_id is None else newest_id - first_id + 1
    return max(0, cap - sent)


def _window_start(conn: Connection, now: datetime) -> int | None:
    """The id of the first outbox row of the last hour (cached for a minute)."""
    cache: dict[str, Any] = current_app.extensions.setdefault(CACHE, {})
    checked: datetime | None = cache.get("checked")
    if checked is not None and timedelta(0) <= now - checked < WINDOW_REFRESH:
        return cast(int, cache["first_id"])
    first_id = conn.execute(
        select(OUTBOX.c.id).where(OUTBOX.c.created_at > now - HOUR).order_by(OUTBOX.c.created_at).limit(1)
    ).scalar()
    if first_id is not None:
        # An empty hour is not cached: the next mails must count at once.
        cache.update(checked=now, first_id=first_id)
    return first_id


def ip_budget() -> int | None:
    """Count this request against its IP's ``SIGNUP_LIMIT``; None if within it, else the seconds to wait."""
    ip = request.remote_addr or "unknown"
    return rate_limits().hit(str(current_app.config["SIGNUP_LIMIT"]), "signup", ip)
