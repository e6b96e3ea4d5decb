"""Abuse limits: on confirmation mails, and on signup requests per IP.

Per address: at most one mail per 10 minutes and 3 a day, however many
requests arrive (``Subscriber.confirmations_sent`` keeps the times). For
everybody together, and per source network: ``budget.py``. Per IP: at most
``SIGNUP_LIMIT`` requests on the two signup routes together (``ip_budget``).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from flask import current_app, request

from mailer.ratelimit import client_source, rate_limits

MAIL_INTERVAL = timedelta(minutes=10)
MAILS_PER_DAY = 3
DAY = timedelta(days=1)


def recent_sends(confirmations_sent: list[str] | None, now: datetime) -> list[datetime]:
    """When confirmations went to an address in the last day (from ``Subscriber.confirmations_sent``)."""
    sent = [datetime.fromisoformat(stamp) for stamp in confirmations_sent or []]
    return [moment for moment in sent if now - moment < DAY]


def recently_mailed(confirmations_sent: list[str] | None, now: datetime) -> bool:
    """True when one more mail would break the per-address limits."""
    recent = recent_sends(confirmations_sent, now)
    return len(recent) >= MAILS_PER_DAY or any(now - moment < MAIL_INTERVAL for moment in recent)


def ip_budget() -> int | None:
    """Count this request against its IP's ``SIGNUP_LIMIT`` (an IPv6 one's /64); None if within it, else the wait."""
    return rate_limits().hit(str(current_app.config["SIGNUP_LIMIT"]), "signup", client_source(request.remote_addr))
