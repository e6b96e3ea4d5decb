"""Abuse limits: on confirmation mails, and on signup requests per IP.

Per address: at most one mail per 10 minutes and 3 a day, however many
requests arrive (``Subscriber.confirmations_sent`` keeps the times). For
everybody together: at most ``CONFIRM_MAILS_PER_HOUR`` (the requests an
import queues are the operator's, not the public's: they neither wait for
this cap nor use it up). Per IP: at most
``SIGNUP_LIMIT`` requests on the two signup routes together (``ip_budget``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, NamedTuple, cast

from flask import current_app, request
from sqlalchemy import Table, func, select
from sqlalchemy.engine import Connection

from mailer.models import MAIL_IMPORT_CONFIRM, OutboundMail
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
    newest, less the requests an import queued from the first one on (an
    import's are the operator's mails, not the public's). The first one is
    looked up with the index at most once a minute per process; the import
    requests are counted from there once, then among the rows added since
    the last look (a few, or an import's). Every way of being stale (deleted
    rows, a window start a minute old) counts more rows, never fewer: the
    cap errs on the safe side.
    """
    cap = int(config["CONFIRM_MAILS_PER_HOUR"])
    newest_id = conn.execute(select(func.max(OUTBOX.c.id))).scalar()
    if newest_id is None:
        return cap
    window = _window(conn, now, newest_id)
    sent = 0 if window is None else newest_id - window.first_id + 1 - window.imported
    return max(0, cap - sent)


class _Window(NamedTuple):
    first_id: int  # the first outbox row of the last hour
    imported: int  # import requests with ids from first_id to upto
    upto: int


def _window(conn: Connection, now: datetime, newest_id: int) -> _Window | None:
    """The last hour's outbox ids up to ``newest_id`` (None: no row in the last hour)."""
    cache: dict[str, Any] = current_app.extensions.setdefault(CACHE, {})
    checked: datetime | None = cache.get("checked")
    window: _Window | None = cache.get("window")
    stale = checked is None or not timedelta(0) <= now - checked < WINDOW_REFRESH
    # Rows deleted at the top: what was counted up to ``upto`` may be gone.
    if window is None or stale or newest_id < window.upto:
        first_id = conn.execute(
            select(OUTBOX.c.id).where(OUTBOX.c.created_at > now - HOUR).order_by(OUTBOX.c.created_at).limit(1)
        ).scalar()
        if first_id is None:
            # An empty hour is not cached: the next mails must count at once.
            return None
        window, checked = _Window(first_id, 0, first_id - 1), now
    if newest_id > window.upto:
        imported = conn.execute(select(func.count()).select_from(OUTBOX).where(
            OUTBOX.c.id > window.upto, OUTBOX.c.id >= window.first_id, OUTBOX.c.id <= newest_id,
            OUTBOX.c.kind == MAIL_IMPORT_CONFIRM)).scalar()
        window = window._replace(imported=window.imported + int(imported or 0), upto=newest_id)
    cache.update(checked=checked, window=window)
    return window


def ip_budget() -> int | None:
    """Count this request against its IP's ``SIGNUP_LIMIT``; None if within it, else the seconds to wait."""
    ip = request.remote_addr or "unknown"
    return rate_limits().hit(str(current_app.config["SIGNUP_LIMIT"]), "signup", ip)
