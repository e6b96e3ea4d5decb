"""The week a digest covers, and its subject line.

Both follow ``MAILER_TIMEZONE``: a digest composed on Monday at 00:30 in Rome
belongs to that Monday's ISO week although it is still Sunday in UTC.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_date


def local_date(now: datetime, timezone: str) -> date:
    """The calendar date of ``now`` (naive UTC, or aware) in ``timezone``."""
    aware = now if now.tzinfo is not None else now.replace(tzinfo=UTC)
    return aware.astimezone(ZoneInfo(timezone)).date()


def period_key(now: datetime, timezone: str) -> str:
    """The ISO week of ``now`` in ``timezone``, e.g. ``"2026-W48"``.

    The ISO year, not the calendar year: 31 December 2024 is in 2025-W01, so
    the week that straddles New Year gets one key, not two.
    """
    year, week, _weekday = local_date(now, timezone).isocalendar()
    return f"{year}-W{week:02d}"


def digest_subject(config: Mapping[str, Any], language: str, now: datetime) -> str:
    """The subject of the digest sent at ``now`` to readers of ``language``.

    From ``DIGEST_SUBJECT`` (language -> template with ``{date}`` and
    ``{site}``); the date is Babel's long format in that language, e.g.
    "Le notizie della settimana – 25 novembre 2026".
    """
    templates: Mapping[str, str] = config.get("DIGEST_SUBJECT") or {}
    template = templates.get(language) or templates.get("en") or "{site} – {date}"
    when = format_date(local_date(now, config["TIMEZONE"]), format="long", locale=language)
    # str.replace, not str.format: a stray brace in an operator's template
    # must not crash the weekly job.
    subject = template.replace("{date}", when).replace("{site}", str(config.get("SITE_NAME", "")))
    # A header: line breaks would inject headers, and a subject is one line.
    return " ".join(subject.split())
