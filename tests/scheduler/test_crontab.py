"""The digest schedule: cron's meaning, in MAILER_TIMEZONE, right across DST changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from mailer.config import ConfigError, load_config
from mailer.crontab import cron_trigger, fire_times, last_fire_time
from mailer.runner import grace
from tests.scheduler.conftest import job

ROME = ZoneInfo("Europe/Rome")


def utc_times(expr: str, start: datetime, end: datetime, zone: str = "Europe/Rome") -> list[str]:
    """The fire times of ``expr`` in (start, end], as UTC strings."""
    return [t.astimezone(UTC).strftime("%Y-%m-%d %H:%M") for t in fire_times(cron_trigger(expr, zone), start, end)]


def test_digest_job_keeps_8am_local_across_spring_forward() -> None:
    # Clocks go forward on Sunday 28 March 2027: 08:00 is 07:00 UTC before, 06:00 UTC after.
    config = {"DIGEST_SCHEDULE": "0 8 * * mon", "TIMEZONE": "Europe/Rome"}
    trigger = job("digest").trigger(config)
    times = list(fire_times(trigger, datetime(2027, 3, 16, tzinfo=ROME), datetime(2027, 4, 6, tzinfo=ROME)))
    assert [t.astimezone(UTC).strftime("%m-%d %H:%M") for t in times] == ["03-22 07:00", "03-29 06:00", "04-05 06:00"]
    assert {t.astimezone(ROME).strftime("%a %H:%M") for t in times} == {"Mon 08:00"}


def test_digest_job_keeps_8am_local_across_fall_back() -> None:
    # Clocks go back on Sunday 25 October 2026.
    assert utc_times("0 8 * * mon", datetime(2026, 10, 13, tzinfo=ROME), datetime(2026, 11, 3, tzinfo=ROME)) == [
        "2026-10-19 06:00", "2026-10-26 07:00", "2026-11-02 07:00",
    ]


def test_a_time_in_the_repeated_hour_fires_once() -> None:
    # 02:30 happens twice on 25 October 2026; APScheduler alone fires twice.
    times = utc_times("30 2 * * *", datetime(2026, 10, 24, 12, tzinfo=ROME), datetime(2026, 10, 26, 12, tzinfo=ROME))
    assert times == ["2026-10-25 00:30", "2026-10-26 01:30"]


def test_a_time_in_the_skipped_hour_fires_once_after_the_jump() -> None:
    # 02:30 does not exist on 28 March 2027: like cron, it runs right after (03:30 CEST).
    times = list(fire_times(cron_trigger("30 2 * * *", "Europe/Rome"),
                            datetime(2027, 3, 27, 12, tzinfo=ROME), datetime(2027, 3, 29, 12, tzinfo=ROME)))
    assert [t.astimezone(UTC).strftime("%m-%d %H:%M") for t in times] == ["03-28 01:30", "03-29 00:30"]
    assert times[0].astimezone(ROME).strftime("%H:%M %Z") == "03:30 CEST"


def test_an_hourly_job_runs_in_both_repeated_hours_and_skips_none() -> None:
    fall = utc_times("0 * * * *", datetime(2026, 10, 25, 1, tzinfo=ROME), datetime(2026, 10, 25, 3, 30, tzinfo=ROME))
    assert fall == ["2026-10-25 00:00", "2026-10-25 01:00", "2026-10-25 02:00"]  # 02 CEST, 02 CET, 03 CET
    spring = utc_times("0 * * * *", datetime(2027, 3, 28, 1, tzinfo=ROME), datetime(2027, 3, 28, 4, tzinfo=ROME))
    assert spring == ["2027-03-28 01:00", "2027-03-28 02:00"]  # 03 and 04 CEST: 02 does not exist


@pytest.mark.parametrize(("field", "weekday"),
                         [("1", "Mon"), ("0", "Sun"), ("7", "Sun"), ("mon", "Mon"), ("SUN", "Sun")])
def test_day_of_week_numbers_mean_what_they_mean_in_cron(field: str, weekday: str) -> None:
    # APScheduler's from_crontab counts 0 as Monday: "0 8 * * 1" would fire on Tuesdays.
    times = list(fire_times(cron_trigger(f"0 8 * * {field}", ROME), datetime(2026, 6, 1, tzinfo=ROME),
                            datetime(2026, 6, 29, tzinfo=ROME)))
    assert len(times) == 4
    assert {t.strftime("%a") for t in times} == {weekday}


def test_weekday_ranges_lists_and_steps() -> None:
    def days(field: str) -> list[str]:
        times = fire_times(cron_trigger(f"0 8 * * {field}", ROME), datetime(2026, 6, 7, 9, tzinfo=ROME),
                           datetime(2026, 6, 14, 9, tzinfo=ROME))  # Sunday 7 to Sunday 14 June
        return [t.strftime("%a") for t in times]

    assert days("1-5") == ["Mon", "Tue", "Wed", "Thu", "Fri"]
    assert days("fri-sun") == ["Fri", "Sat", "Sun"]
    assert days("5-7") == ["Fri", "Sat", "Sun"]
    assert days("*/2") == ["Tue", "Thu", "Sat", "Sun"]  # 0,2,4,6: Sunday first
    assert days("0,3") == ["Wed", "Sun"]


def test_day_of_month_and_weekday_together_mean_either() -> None:
    # cron: the 1st of the month OR any Monday (APScheduler alone: both).
    times = utc_times("0 8 1 * mon", datetime(2026, 6, 30, tzinfo=ROME), datetime(2026, 7, 14, tzinfo=ROME))
    assert times == ["2026-07-01 06:00", "2026-07-06 06:00", "2026-07-13 06:00"]


@pytest.mark.parametrize("expr", ["", "0 8 * *", "0 8 * * 8", "61 8 * * mon", "0 8 * * fri-mon", "0 8 * * mon/0",
                                  "0 8 * * funday", "0 8 * * mon; rm -rf /"])
def test_bad_expressions_are_refused(expr: str) -> None:
    with pytest.raises(ValueError):
        cron_trigger(expr, "Europe/Rome")


def test_a_bad_schedule_stops_start_up_naming_the_variable() -> None:
    with pytest.raises(ConfigError, match="MAILER_DIGEST_SCHEDULE"):
        load_config({"MAILER_DIGEST_SCHEDULE": "0 8 * * 8"}, {"ENV": "testing", "SECRET_KEY": "x"})
    config = load_config({"MAILER_DIGEST_SCHEDULE": "0 8 * * 7"}, {"ENV": "testing", "SECRET_KEY": "x"})
    assert config["DIGEST_SCHEDULE"] == "0 8 * * 7"


def test_last_fire_time_looks_back_only_within_the_grace_time() -> None:
    trigger = cron_trigger("0 8 * * mon", "Europe/Rome")
    monday_noon = datetime(2026, 6, 8, 12, tzinfo=ROME)
    assert last_fire_time(trigger, monday_noon, timedelta(hours=12)) == datetime(2026, 6, 8, 8, tzinfo=ROME)
    assert last_fire_time(trigger, monday_noon, timedelta(hours=3)) is None
    assert grace({"SCHEDULER_GRACE_HOURS": 2}) == timedelta(hours=2)
