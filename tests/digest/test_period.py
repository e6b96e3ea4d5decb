"""The digest's week and subject follow MAILER_TIMEZONE and the reader's language."""

from __future__ import annotations

from datetime import UTC, datetime

from config import defaults
from mailer.digest.period import digest_subject, period_key

CONFIG = {"TIMEZONE": "Europe/Rome", "SITE_NAME": "Notizie Tech", "DIGEST_SUBJECT": defaults.DIGEST_SUBJECT}


def test_the_week_is_the_iso_week_in_the_configured_time_zone() -> None:
    assert period_key(datetime(2026, 11, 25, 8, 0), "Europe/Rome") == "2026-W48"
    # Sunday 23:30 UTC is already Monday 00:30 in Rome: next week there.
    assert period_key(datetime(2026, 11, 29, 23, 30), "Europe/Rome") == "2026-W49"
    assert period_key(datetime(2026, 11, 29, 23, 30), "UTC") == "2026-W48"


def test_the_week_across_new_year_has_one_key() -> None:
    # 31 December 2024 and 1 January 2025 are in the same ISO week.
    assert period_key(datetime(2024, 12, 31, 12, 0), "Europe/Rome") == "2025-W01"
    assert period_key(datetime(2025, 1, 1, 12, 0), "Europe/Rome") == "2025-W01"
    assert period_key(datetime(2021, 1, 3, 12, 0), "Europe/Rome") == "2020-W53"


def test_an_aware_time_is_converted_not_reinterpreted() -> None:
    assert period_key(datetime(2026, 11, 29, 23, 30, tzinfo=UTC), "Europe/Rome") == "2026-W49"


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
