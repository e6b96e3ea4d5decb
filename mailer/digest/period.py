"""The period a digest covers, and its subject line.

A period is one turn of ``MAILER_DIGEST_SCHEDULE``: from one time the
schedule fires to the next, in ``MAILER_TIMEZONE``. Every digest composed in
a period, by the scheduler or by hand, is that period's one digest; so a
weekly schedule gives one digest a week, a daily one one a day. Its key
is the local time the period began, e.g. ``"2026-11-23 08:00+01:00"``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_date


def local_date(now: datetime, timezone: str) -> date:
    """The calendar date of ``now`` (naive UTC, or aware) in ``timezone``."""
    aware = now if now.tzinfo is not None else now.replace(tzinfo=UTC)
    return aware.astimezone(ZoneInfo(timezone)).date()


# How far back to look for the schedule's last firing: the first window that
# holds one is used (a minute's schedule needs the first, a yearly one the last).
_LOOKBACK = (timedelta(hours=1), timedelta(days=1), timedelta(days=8), timedelta(days=32),
             timedelta(days=367), timedelta(days=5 * 366))


def period_start(schedule: str, timezone: str, now: datetime) -> datetime:
    """When the period holding ``now`` began: the schedule's last fire time at or before ``now``.

    Aware, in ``timezone``. Compared in UTC: on the night clocks go back the
    two 02:00 are different times. A schedule that has not fired in five
    years (config.py refuses one that never fires) counts in weeks from
    Monday 00:00.
    """
    from mailer.crontab import cron_trigger, last_fire_time

    zone = ZoneInfo(timezone)
    moment = (now if now.tzinfo is not None else now.replace(tzinfo=UTC)).astimezone(UTC)
    trigger = cron_trigger(schedule, zone)
    for window in _LOOKBACK:
        # Fire times in (moment - window, moment]; one exactly at the window's start is the next window's.
        last = last_fire_time(trigger, moment + timedelta(microseconds=1), window)
        if last is not None:
            found: datetime = last.astimezone(zone)
            return found
    local = moment.astimezone(zone)
    monday = local.date() - timedelta(days=local.weekday())
    return datetime.combine(monday, time(0, 0), zone)


def period_key(start: datetime) -> str:
    """The key of the period that began at ``start``: local time to the minute, with its UTC offset.

    The offset tells apart the two periods that begin at 02:00 on the night clocks go back.
    """
    return start.isoformat(sep=" ", timespec="minutes")


def digest_subject(config: Mapping[str, Any], language: str, now: datetime) -> str:
    """The subject of the digest sent at ``now`` to readers of ``language``.

    From ``DIGEST_SUBJECT`` (language -> template with ``{date}`` and
    ``{site}``); the date is Babel's long format in that language, e.g.
    "Le notizie della settimana – 25 novembre 2026".
    """
    templates: Mapping[str, str] = config["DIGEST_SUBJECT"]
    template = templates.get(language) or templates.get("en") or "{site} – {date}"
    when = format_date(local_date(now, config["TIMEZONE"]), format="long", locale=language)
    # str.replace, not str.format: a stray brace in an operator's template
    # must not crash the weekly job.
    subject = template.replace("{date}", when).replace("{site}", str(config["SITE_NAME"]))
    # A header: line breaks would inject headers, and a subject is one line.
    return " ".join(subject.split())
