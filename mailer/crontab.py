"""Standard crontab expressions on APScheduler 3, with cron's own meaning.

``CronTrigger.from_crontab`` differs from cron in three ways that would send a
digest on the wrong day or twice, so ``cron_trigger`` fixes them:

- day of week: APScheduler 3 counts 0 as Monday, cron as Sunday (7 too), so
  ``0 8 * * 1`` would fire on Tuesdays. The field is translated to day names.
- day of month and day of week both restricted: cron fires when *either*
  matches (``0 8 1 * mon``: the 1st and every Monday); APScheduler when both.
- the hour repeated when clocks go back: APScheduler fires ``30 2 * * *``
  twice that night. Like cron, a job with a fixed hour fires once; a job that
  runs every hour still fires in both (they are two different hours).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.combining import OrTrigger
from apscheduler.triggers.cron import CronTrigger

DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


class WallClockCronTrigger(CronTrigger):  # type: ignore[misc]  # APScheduler 3 is untyped
    """A CronTrigger that fires a fixed-hour job once in the repeated hour."""

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime | None:
        """The next fire time, skipping the second pass of a repeated wall time."""
        # Arithmetic and comparisons in UTC: on local times Python ignores
        # ``fold``, so the two 02:30 of the night clocks go back compare equal.
        previous = previous_fire_time.astimezone(UTC) if previous_fire_time else None
        fire_time: datetime | None = super().get_next_fire_time(previous, now.astimezone(UTC))
        fixed_hour = not str(self.fields[CronTrigger.FIELD_NAMES.index("hour")]).startswith("*")
        while fixed_hour and fire_time is not None and _is_repeated_wall_time(fire_time):
            skipped = fire_time.astimezone(UTC)
            fire_time = super().get_next_fire_time(skipped, skipped + timedelta(microseconds=1))
        # APScheduler may return a wall time that does not exist (02:30 on
        # the night clocks go forward); the same instant, spelled right.
        return fire_time.astimezone(UTC).astimezone(self.timezone) if fire_time else None


def _is_repeated_wall_time(moment: datetime) -> bool:
    """True when ``moment`` is the second occurrence of its local wall time."""
    wall = moment.replace(tzinfo=None)
    first = wall.replace(tzinfo=moment.tzinfo, fold=0).astimezone(UTC)
    second = wall.replace(tzinfo=moment.tzinfo, fold=1).astimezone(UTC)
    # In a gap (spring forward) the two folds are in the other order.
    return first < second and moment.astimezone(UTC) == second


def cron_trigger(expr: str, timezone: str | tzinfo) -> BaseTrigger:
    """A trigger for a five-field crontab ``expr`` in ``timezone``; ValueError if bad."""
    fields = expr.split()
    if len(fields) != 5:
        raise ValueError("expected five fields: minute hour day-of-month month day-of-week")
    minute, hour, day, month, day_of_week = fields
    zone = ZoneInfo(timezone) if isinstance(timezone, str) else timezone
    weekdays = _weekdays(day_of_week)

    def make(day_field: str, weekday_field: str) -> CronTrigger:
        return WallClockCronTrigger(
            minute=minute, hour=hour, day=day_field, month=month, day_of_week=weekday_field, timezone=zone
        )

    if not day.startswith("*") and not day_of_week.startswith("*"):
        return OrTrigger([make(day, "*"), make("*", weekdays)])
    return make(day, weekdays)


def _weekdays(field: str) -> str:
    """Cron's day-of-week field (0 or 7 = Sunday) as APScheduler day names."""
    if field == "*":
        return "*"
    days: set[int] = set()
    for item in field.lower().split(","):
        span, _, step_text = item.partition("/")
        step = int(step_text) if step_text else 1
        if step < 1:
            raise ValueError(f"bad step in day of week {item!r}")
        if span == "*":
            first, last = 0, 7
        else:
            start, _, end = span.partition("-")
            first = _weekday_number(start)
            last = _weekday_number(end) if end else (7 if step_text else first)
            if end and last == 0:
                last = 7  # "fri-sun" ends on the 7 that means Sunday
            if first > last:
                raise ValueError(f"backwards range in day of week {item!r}")
        days.update(number % 7 for number in range(first, last + 1, step))
    return ",".join(DAY_NAMES[number] for number in sorted(days))


def _weekday_number(text: str) -> int:
    if text in DAY_NAMES:
        return DAY_NAMES.index(text)
    if not text.isdigit() or int(text) > 7:
        raise ValueError(f"bad day of week {text!r}: use 0-7 (0 and 7 are Sunday) or sun-sat")
    return int(text)


def fire_times(trigger: BaseTrigger, start: datetime, end: datetime) -> Iterator[datetime]:
    """The fire times of ``trigger`` in ``(start, end]`` (aware datetimes)."""
    previous: datetime | None = None
    moment: Any = start.astimezone(UTC) + timedelta(microseconds=1)
    while True:
        fire_time = trigger.get_next_fire_time(previous, moment)
        if fire_time is None or fire_time > end:
            return
        yield fire_time
        previous = fire_time
        moment = fire_time.astimezone(UTC) + timedelta(microseconds=1)


def last_fire_time(trigger: BaseTrigger, now: datetime, window: timedelta) -> datetime | None:
    """The latest fire time of ``trigger`` in the ``window`` before ``now``, if any."""
    latest = None
    for latest in fire_times(trigger, now - window, now):  # noqa: B007 - we want the last one
        pass
    return latest
