"""Readers over time: how many were subscribed at the end of each day, week or month.

A reader counts as subscribed from ``confirmed_at`` until they leave; they
leave when they unsubscribe (``unsubscribed_at``), or, for a bounce or an
erasure, at their last change (``updated_at``); an erasure also clears
``confirmed_at``, so an erased reader leaves no trace in the history either.
One query computes every bucket (a ``SUM(CASE ...)`` column per boundary),
so the chart costs one scan of the readers whatever the period.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, case, func, null, select
from sqlalchemy.orm import Session

from mailer.models import Subscriber, SubscriberStatus

# period name -> (number of buckets, bucket size)
PERIODS = {"30d": (30, "day"), "26w": (26, "week"), "12m": (12, "month")}
DEFAULT_PERIOD = "26w"


@dataclass(frozen=True)
class GrowthPoint:
    """One bucket: its local start date, readers at its end, arrivals and departures."""

    start: date
    active: int
    joined: int
    left: int


def _local_starts(today: date, count: int, unit: str) -> list[date]:
    """The first days of the last ``count`` buckets, plus the start of the next one."""
    if unit == "day":
        first = today - timedelta(days=count - 1)
        return [first + timedelta(days=i) for i in range(count + 1)]
    if unit == "week":
        first = today - timedelta(days=today.weekday(), weeks=count - 1)
        return [first + timedelta(weeks=i) for i in range(count + 1)]
    starts = []
    year, month = today.year, today.month
    for back in range(count - 1, -2, -1):  # count buckets back, and the next month
        index = year * 12 + month - 1 - back
        starts.append(date(index // 12, index % 12 + 1, 1))
    return starts


def _utc(day: date, zone: ZoneInfo) -> datetime:
    """Local midnight of ``day`` as naive UTC (how times are stored)."""
    return datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC).replace(tzinfo=None)


def _count_if(condition: ColumnElement[bool]) -> Any:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def growth_series(session: Session, now: datetime, timezone: str, period: str = DEFAULT_PERIOD) -> list[GrowthPoint]:
    """The buckets of ``period`` (see ``PERIODS``) ending with the current one.

    ``now`` is naive UTC; buckets start at local midnight in ``timezone``.
    """
    count, unit = PERIODS.get(period, PERIODS[DEFAULT_PERIOD])
    zone = ZoneInfo(timezone)
    today = now.replace(tzinfo=UTC).astimezone(zone).date()
    starts = _local_starts(today, count, unit)
    bounds = [_utc(day, zone) for day in starts]
    bounds[-1] = max(now, bounds[-2])  # the current bucket ends now, not in the future

    confirmed = Subscriber.confirmed_at
    left_at = case(
        (Subscriber.status == SubscriberStatus.CONFIRMED, null()),
        else_=func.coalesce(Subscriber.unsubscribed_at, Subscriber.updated_at),
    )
    columns = []
    for i in range(count):
        start, end = bounds[i], bounds[i + 1]
        columns += [
            _count_if((confirmed < end) & (left_at.is_(None) | (left_at >= end))),
            _count_if((confirmed >= start) & (confirmed < end)),
            _count_if((left_at >= start) & (left_at < end)),
        ]
    row = session.execute(select(*columns).select_from(Subscriber).where(confirmed.is_not(None))).one()
    values = [int(v) for v in row]
    return [
        GrowthPoint(start=starts[i], active=values[3 * i], joined=values[3 * i + 1], left=values[3 * i + 2])
        for i in range(count)
    ]

