"""The digest's period follows MAILER_DIGEST_SCHEDULE in MAILER_TIMEZONE; its subject the reader's language."""

from __future__ import annotations

from datetime import UTC, datetime

from config import defaults
from mailer.digest.period import digest_subject, period_key, period_start

CONFIG = {"TIMEZONE": "Europe/Rome", "SITE_NAME": "Notizie Tech", "DIGEST_SUBJECT": defaults.DIGEST_SUBJECT}
WEEKLY = "0 8 * * mon"


def key(schedule: str, now: datetime, timezone: str = "Europe/Rome") -> str:
    return period_key(period_start(schedule, timezone, now))


def test_a_weekly_schedule_makes_weekly_periods_from_its_own_time() -> None:
    # Wednesday 25 November 2026: the period began on Monday at 08:00 in Rome (07:00 UTC).
    assert key(WEEKLY, datetime(2026, 11, 25, 8, 0)) == "2026-11-23 08:00+01:00"
    # Monday 07:00 in Rome is still last week's period; 08:00 begins the next.
    assert key(WEEKLY, datetime(2026, 11, 30, 6, 0)) == "2026-11-23 08:00+01:00"
    assert key(WEEKLY, datetime(2026, 11, 30, 7, 0)) == "2026-11-30 08:00+01:00"


def test_a_daily_schedule_makes_daily_periods() -> None:
    """A daily schedule must not silently become weekly."""
    assert key("30 7 * * *", datetime(2026, 11, 25, 12, 0)) == "2026-11-25 07:30+01:00"
    assert key("30 7 * * *", datetime(2026, 11, 26, 12, 0)) == "2026-11-26 07:30+01:00"
    assert key("*/2 * * * *", datetime(2026, 11, 25, 12, 3, 30)) == "2026-11-25 13:02+01:00"


def test_the_period_follows_the_time_zone_and_its_changes() -> None:
    assert key(WEEKLY, datetime(2026, 11, 30, 7, 30), "UTC") == "2026-11-23 08:00+00:00"
    assert key(WEEKLY, datetime(2026, 11, 30, 8, 0), "UTC") == "2026-11-30 08:00+00:00"
    # Summer time: 08:00 in Rome is 06:00 UTC.
    assert key(WEEKLY, datetime(2026, 7, 6, 6, 0)) == "2026-07-06 08:00+02:00"
    # An aware time is converted, not reinterpreted.
    assert key(WEEKLY, datetime(2026, 11, 30, 7, 0, tzinfo=UTC)) == "2026-11-30 08:00+01:00"


def test_a_rare_schedule_looks_back_far_enough() -> None:
    assert key("0 6 1 1 *", datetime(2026, 11, 25, 12, 0)) == "2026-01-01 06:00+01:00"  # once a year


def test_the_night_clocks_go_back_has_two_periods_at_two_and_ends() -> None:
    """25 October 2026 in Rome: 02:00-03:00 happens twice. An hourly schedule has a period in each."""
    hourly = "0 * * * *"
    first = key(hourly, datetime(2026, 10, 25, 0, 15))  # 02:15 summer time
    second = key(hourly, datetime(2026, 10, 25, 1, 15))  # 02:15 again, winter time
    assert (first, second) == ("2026-10-25 02:00+02:00", "2026-10-25 02:00+01:00")
    # A fixed hour fires once that night (as cron does): still the first 02:30's period an hour later.
    assert key("30 2 * * *", datetime(2026, 10, 25, 1, 45)) == "2026-10-25 02:30+02:00"
    assert key("30 2 * * *", datetime(2026, 10, 25, 0, 15)) == "2026-10-24 02:30+02:00"


def test_the_subject_is_localised_with_babel_dates() -> None:
    now = datetime(2026, 11, 25, 8, 0)
    assert digest_subject(CONFIG, "it", now) == "Le notizie della settimana – 25 novembre 2026"
    assert digest_subject(CONFIG, "en", now) == "This week's news – November 25, 2026"


def test_the_subject_date_is_the_local_date() -> None:
    # 23:30 UTC on the 24th is the 25th in Rome.
    assert digest_subject(CONFIG, "it", datetime(2026, 11, 24, 23, 30)).endswith("25 novembre 2026")

def test_the_subject_template_is_configurable_and_stays_one_line() -> None:
    config = {**CONFIG, "DIGEST_SUBJECT": {"it": "{site}: la settimana\r\nBcc: x@example.org {date} {oops"}}
    subject = digest_subject(config, "it", datetime(2026, 11, 25, 8, 0))
    assert subject == "Notizie Tech: la settimana Bcc: x@example.org 25 novembre 2026 {oops"
    assert "\n" not in subject and "\r" not in subject
    # A language without a template gets the English one, in its own date format.
    assert digest_subject({**CONFIG, "DIGEST_SUBJECT": {"en": "News {date}"}}, "it",
                          datetime(2026, 11, 25, 8, 0)) == "News 25 novembre 2026"
