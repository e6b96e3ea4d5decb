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
from typing import Any, cast

from flask import current_app, request
from sqlalchemy import Table, func, select
from sqlalchemy.engine import Connection

from mailer.models import MAIL_CONFIRM, OutboundMail
from mailer.ratelimit import rate_limits

MAIL_INTERVAL = timedelta(minutes=10)
MAILS_PER_DAY = 3
DAY = timedelta(days=1)
HOUR = timedelta(hours=1)
OUTBOX = cast(Table, OutboundMail.__table__)


def recent_sends(confirmations_sent: list[str] | None, now: datetime) -> list[datetime]:
    """When confirmations went to an address in the last day (from ``Subscriber.confirmations_sent``)."""
    sent = [datetime.fromisoformat(stamp) for stamp in confirmations_sent or []]
    return [moment for moment in sent if now - moment < DAY]


def recently_mailed(confirmations_sent: list[str] | None, now: datetime) -> bool:
    """True when one more mail would break the per-address limits."""
    recent = recent_sends(confirmations_sent, now)
    return len(recent) >= MAILS_PER_DAY or any(now - moment < MAIL_INTERVAL for moment in recent)


def hourly_budget(conn: Connection, config: Mapping[str, Any], now: datetime) -> int:
    """How many more confirmation mails CONFIRM_MAILS_PER_HOUR allows this hour (0 or more).

    The signups' own mails of the last hour, counted on the (kind,
    created_at) index and never past the cap, so a viral hour costs a batch
    at most ``cap`` index entries. An import's requests to confirm are
    another kind: they neither count nor wait, and rows an import has not
    committed yet are not seen at all.
    """
    cap = int(config["CONFIRM_MAILS_PER_HOUR"])
    recent = (select(OUTBOX.c.id).where(OUTBOX.c.kind == MAIL_CONFIRM, OUTBOX.c.created_at > now - HOUR)
              .limit(cap).subquery())
    sent = int(conn.execute(select(func.count()).select_from(recent)).scalar() or 0)
    return max(0, cap - sent)


def ip_budget() -> int | None:
    """Count this request against its IP's ``SIGNUP_LIMIT``; None if within it, else the seconds to wait."""
    ip = request.remote_addr or "unknown"
    return rate_limits().hit(str(current_app.config["SIGNUP_LIMIT"]), "signup", ip)
