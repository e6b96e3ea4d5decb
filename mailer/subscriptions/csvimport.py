"""``subscribers import``: a CSV with a header row and an ``email`` column.

Built for big lists: rows are checked in Python, addresses already known are
found with one query, and new readers go in with bulk INSERTs (100,000 rows
take seconds). Bad rows are reported by line number and skipped; nothing
else is lost. An address known in any state is skipped, so that an
unsubscribed, bounced, complained or erased reader (whose hash is kept) cannot be
re-added without a new consent.

New readers come in as ``pending`` (no digest), or as ``confirmed`` when the
operator holds their consent. Pending readers get no mail and are never
purged, unless the import sends them a confirmation request
(``send_confirmation``): then each new pending reader gets the confirmation
mail in its import wording (``mails.py``), queued in the outbox with the
same bulk INSERTs (rendered once per language, filled per reader with string
replaces), and is purged after ``PURGE_UNCONFIRMED_DAYS`` unless it
confirms, as a signup is. The outbox of ``delivery/`` sends them after any
signup's mail; the signups' hourly cap (``CONFIRM_MAILS_PER_HOUR``, an
anti-abuse limit of the public form) neither stops them nor counts them.

Optional columns: ``language`` (it, en), ``topics`` (slugs separated by
spaces, commas, ``;`` or ``|``), and ``status`` as written by ``subscribers
export``: ``unsubscribed``, ``bounced`` and ``complained`` rows come in suppressed, so a
list moved from another system keeps its opt-outs; ``erased`` rows with an
``email_hash`` and no address keep suppressing it.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Any, NamedTuple, cast

from flask_babel import force_locale
from sqlalchemy import Table, insert, select
from sqlalchemy.orm import Session

from mailer.config import LOCALES
from mailer.models import (
    ConsentAction,
    ConsentChannel,
    ConsentEvent,
    OutboundMail,
    Subscriber,
    SubscriberStatus,
    utcnow,
)
from mailer.subscriptions.addresses import AddressError, erased_hash, parse_address
from mailer.subscriptions.csvexport import CONFIRM_COLUMNS, FORMULA_STARTS, SIGNUP_COLUMNS
from mailer.subscriptions.mails import ConfirmationTemplate, confirmation_template
from mailer.subscriptions.signup import new_nonce
from mailer.topics import normalise_topics

BATCH = 5000
_SEPARATORS = re.compile(r"[\s,;|]+")
_HASH = re.compile(r"[0-9a-f]{64}")


class CsvError(ValueError):
    """The CSV cannot be read at all (no header, no email column)."""


class Problem(NamedTuple):
    """A skipped row: its line in the file and why (a tuple: ``for line, reason in ...`` works)."""

    line: int
    reason: str


@dataclass
class ImportReport:
    """What an import did."""

    imported: int = 0
    duplicates: int = 0  # repeated in the file, or already subscribed
    suppressed: int = 0  # known as unsubscribed, bounced, complained or erased
    problems: list[Problem] = field(default_factory=list)
    confirmation_requests: int = 0  # confirmation mails queued in the outbox
    encoding: str = "utf-8"  # what the file was read as (decode_csv)

    def summary(self) -> str:
        """One line for the operator."""
        line = (f"imported {self.imported}, skipped {self.duplicates} already known, "
                f"{self.suppressed} suppressed (unsubscribed, bounced, complained or erased), "
                f"{len(self.problems)} bad rows")
        if self.confirmation_requests:
            line += f", {self.confirmation_requests} confirmation requests queued"
        if self.encoding != "utf-8":
            line += f" (the file is not UTF-8: read as {self.encoding}, as Excel saves it)"
        return line


def import_csv(
    session: Session, handle: IO[str], confirmed: bool = False, source: str = "import",
    config: Mapping[str, Any] | None = None, now: datetime | None = None, send_confirmation: bool = False,
    encoding: str = "utf-8", language: str | None = None,
) -> ImportReport:
    """Import readers from ``handle``; ``confirmed``: they consented elsewhere.

    Without ``confirmed`` they come in as pending. ``send_confirmation``
    queues a confirmation request for each new pending reader (the purge
    drops those who do not confirm); without it they get no mail and are
    not purged (they never received a link). The two options exclude each
    other (ValueError). Raises CsvError when the file has no header with an
    ``email`` column. The caller commits, then wakes the outbox
    (``mails.notify_outbox``) if it runs one.
    """
    from flask import current_app

    if confirmed and send_confirmation:
        raise ValueError("confirmed readers need no confirmation request")
    config = config if config is not None else current_app.config
    now = now or utcnow()
    report = ImportReport(encoding=encoding)
    # One rendering per language, filled per reader (see mails.py).
    templates: dict[str, ConfirmationTemplate] | None = {} if send_confirmation else None
    rows = _rows(handle, report)
    known = set(session.scalars(select(Subscriber.email_hash)))
    suppressed = set(session.scalars(select(Subscriber.email_hash).where(
        Subscriber.status.in_([SubscriberStatus.UNSUBSCRIBED, SubscriberStatus.BOUNCED, SubscriberStatus.COMPLAINED,
                               SubscriberStatus.ERASED]))))
    batch: list[dict[str, Any]] = []
    with force_locale(language or str(config["LOCALE"])):  # the operator's language for the problems
        for line, row in rows:
            record = _subscriber_row(row, line, config, confirmed, now, report)
            if record is None:
                continue
            if send_confirmation and record["status"] is SubscriberStatus.PENDING:
                # As a signup's: the purge counts from here, and the
                # per-address limits of the signup form know of this mail.
                record["confirm_requested_at"] = now
                record["confirmations_sent"] = [now.isoformat()]
            # An erased reader's row has the keyed hash of the address.
            found = next((h for h in (record["email_hash"], erased_hash(record["email_hash"], config["SECRET_KEY"]))
                          if h in known), None)
            if found is not None:
                if found in suppressed:
                    report.suppressed += 1
                else:
                    report.duplicates += 1
                continue
            known.add(record["email_hash"])
            batch.append(record)
            if len(batch) >= BATCH:
                _insert(session, config, batch, source, now, report, templates)
                batch = []
    _insert(session, config, batch, source, now, report, templates)
    return report


def open_csv(raw: bytes) -> tuple[IO[str], str]:
    """An uploaded CSV's bytes as a text handle for ``import_csv``, and the encoding read (``decode_csv``)."""
    text, encoding = decode_csv(raw)
    return io.StringIO(text, newline=""), encoding


def decode_csv(raw: bytes) -> tuple[str, str]:
    """The text of an uploaded CSV and the encoding it was read in.

    UTF-8 (with or without the byte-order mark spreadsheets write) when it
    is; else Windows-1252, what Excel on an Italian Windows saves "CSV" in
    (Latin-1 plus the euro sign and typographic quotes), which reads any bytes.
    """
    try:
        return raw.decode("utf-8-sig"), "utf-8"
    except UnicodeDecodeError:
        return raw.decode("cp1252", errors="replace"), "windows-1252"


def _delimiter(handle: IO[str]) -> str:
    """Commas, or the semicolons (tabs, bars) of the header line: Excel in Italy separates with ";"."""
    if not handle.seekable():
        return ","
    start = handle.tell()
    first = handle.readline()
    handle.seek(start)
    try:
        return csv.Sniffer().sniff(first, delimiters=",;\t|").delimiter
    except csv.Error:
        return ","


def _rows(handle: IO[str], report: ImportReport) -> Iterator[tuple[int, dict[str, str]]]:
    """(line, row) for each data row; unreadable rows go to the report."""
    reader = csv.reader(handle, delimiter=_delimiter(handle))
    try:
        header = [name.strip().lower().lstrip("\ufeff") for name in next(reader)]
    except StopIteration:
        raise CsvError("the file is empty: expected a header row with an 'email' column") from None
    except csv.Error as exc:
        raise CsvError(f"cannot read the header row: {exc}") from None
    if "email" not in header:
        raise CsvError(f"no 'email' column in the header row (found: {', '.join(header) or 'nothing'})")
    while True:
        line = reader.line_num + 1
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            report.problems.append(Problem(line, f"unreadable row: {exc}"))
            continue
        if not any(v.strip() for v in values):
            continue  # blank line
        if len(values) > len(header):
            report.problems.append(Problem(line, f"{len(values)} fields, the header has {len(header)}"))
            continue
        yield line, dict(zip(header, values, strict=False))


def _subscriber_row(
    row: Mapping[str, str], line: int, config: Mapping[str, Any], confirmed: bool, now: datetime,
    report: ImportReport,
) -> dict[str, Any] | None:
    """The values of a new subscriber from one CSV row, or None (reported)."""
    status_text = (row.get("status") or "").strip().lower()
    raw_email = row.get("email") or ""
    if status_text == "erased" and not raw_email.strip():
        digest = (row.get("email_hash") or "").strip().lower()
        if not _HASH.fullmatch(digest):
            report.problems.append(Problem(line, "an erased row needs its email_hash (64 hex digits)"))
            return None
        return _values(None, digest, SubscriberStatus.ERASED, str(config["LOCALE"]), "", now)
    try:
        address = parse_address(_unquote(raw_email.strip()))
    except AddressError as exc:
        report.problems.append(Problem(line, f"{raw_email.strip()[:100]!r}: {exc.reason}"))
        return None
    language = (row.get("language") or "").strip().lower() or str(config["LOCALE"])
    if language not in LOCALES:
        report.problems.append(Problem(line, f"unknown language {language!r} (expected {', '.join(LOCALES)})"))
        return None
    try:
        topics = normalise_topics(config["TOPICS"], [t for t in _SEPARATORS.split(row.get("topics") or "") if t])
    except ValueError as exc:
        report.problems.append(Problem(line, str(exc)))
        return None
    if status_text not in ("", "pending", "confirmed", "unsubscribed", "bounced", "complained"):
        report.problems.append(Problem(line, f"unknown status {status_text!r}"))
        return None
    # A row's own status wins where it says less than --confirmed would:
    # a reader the file calls pending never confirmed, whatever the flag.
    status = {"unsubscribed": SubscriberStatus.UNSUBSCRIBED, "bounced": SubscriberStatus.BOUNCED,
              "complained": SubscriberStatus.COMPLAINED, "pending": SubscriberStatus.PENDING}.get(
        status_text, SubscriberStatus.CONFIRMED if confirmed else SubscriberStatus.PENDING)
    values = _values(address.email, address.hash, status, language, topics, now)
    _keep_record(values, row)
    return values


# The consent record columns of ``subscribers export``: kept with the import
# event, so that a list moved to a new server keeps its proof of consent.
RECORD_COLUMNS = ("created_at", "confirmed_at", "unsubscribed_at", *SIGNUP_COLUMNS, *CONFIRM_COLUMNS)


def _keep_record(values: dict[str, Any], row: Mapping[str, str]) -> None:
    """Carry an exported row's consent record and dates into the new reader (``_record``: the event's)."""
    record = {name: _unquote(row[name].strip())[:1000] for name in RECORD_COLUMNS if (row.get(name) or "").strip()}
    if not record:
        return
    values["_record"] = record
    created = _moment(record.get("created_at"))
    if created is not None:
        values["created_at"] = created
    status = values["status"]
    confirmed_at = _moment(record.get("confirmed_at"))
    # A pending reader never confirmed, whatever the file says; one who left had, before leaving.
    if confirmed_at is not None and status is not SubscriberStatus.PENDING:
        values["confirmed_at"] = confirmed_at
    unsubscribed_at = _moment(record.get("unsubscribed_at"))
    if unsubscribed_at is not None and status in (SubscriberStatus.UNSUBSCRIBED, SubscriberStatus.BOUNCED,
                                                  SubscriberStatus.COMPLAINED):
        values["unsubscribed_at"] = unsubscribed_at


def _moment(text: str | None) -> datetime | None:
    """A naive UTC time from an exported ``2026-11-25T08:00:00Z``; None if there is none or it is not one."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


def _unquote(value: str) -> str:
    """Undo the export's defence against spreadsheet formulas (a ``'`` before ``= + - @``)."""
    return value[1:] if value[:1] == "'" and value[1:2] in FORMULA_STARTS else value


def _values(
    email: str | None, email_hash: str, status: SubscriberStatus, language: str, topics: str, now: datetime,
) -> dict[str, Any]:
    """A subscriber row for a bulk INSERT."""
    return {
        "email": email, "email_hash": email_hash, "status": status, "language": language, "topics": topics,
        "confirm_nonce": new_nonce(), "created_at": now, "updated_at": now, "confirmations_sent": [],
        "confirmed_at": now if status is SubscriberStatus.CONFIRMED else None,
        "unsubscribed_at": now if status in (SubscriberStatus.UNSUBSCRIBED, SubscriberStatus.ERASED) else None,
        "confirm_requested_at": None,
    }


def _insert(
    session: Session, config: Mapping[str, Any], batch: list[dict[str, Any]], source: str, now: datetime,
    report: ImportReport, templates: dict[str, ConfirmationTemplate] | None,
) -> None:
    """Insert one batch of subscribers, their "import" consent events and,
    when ``templates`` is given (a cache per language), the confirmation
    requests of the pending ones."""
    if not batch:
        return
    # Core, not ORM, statements: the ORM's per-row bookkeeping would be most of the time.
    # RETURNING rows are matched back by the (unique) hash: asking for them in
    # parameter order makes SQLAlchemy insert one row at a time on SQLite.
    subscribers, events = cast(Table, Subscriber.__table__), cast(Table, ConsentEvent.__table__)
    connection = session.connection()
    inserted = connection.execute(insert(subscribers).returning(subscribers.c.id, subscribers.c.email_hash),
                                  [{k: v for k, v in row.items() if not k.startswith("_")} for row in batch]).tuples()
    ids = {email_hash: sid for sid, email_hash in inserted}
    requested = [row for row in batch if row["confirm_requested_at"] is not None]
    connection.execute(insert(events), [
        {"subscriber_id": ids[row["email_hash"]], "email_hash": row["email_hash"], "action": ConsentAction.IMPORT,
         "channel": ConsentChannel.IMPORT, "occurred_at": now, "language": row["language"],
         "source_page": source[:1000], "ip": None, "user_agent": None, "consent_text_version": None,
         "details": _details(row, templates is not None)}
        for row in batch
    ])
    if templates is not None and requested:
        mails = []
        for row in requested:
            template = templates.get(row["language"])
            if template is None:
                template = templates[row["language"]] = confirmation_template(config, row["language"], imported=True)
            mails.append(template.for_address(row["email"]).values(config, ids[row["email_hash"]],
                                                                   row["confirm_nonce"]))
        connection.execute(insert(cast(Table, OutboundMail.__table__)), mails)
        report.confirmation_requests += len(mails)
    report.imported += len(batch)


def _details(row: Mapping[str, Any], send_confirmation: bool) -> dict[str, Any]:
    """The details of a reader's "import" consent event."""
    # "confirmed": this reader came in as consented (--confirmed, and the file did not say pending).
    details: dict[str, Any] = {"confirmed": row["status"] is SubscriberStatus.CONFIRMED, "status": str(row["status"])}
    if "_record" in row:
        details["consent_record"] = row["_record"]
    if send_confirmation:
        details["confirmation_requested"] = row["confirm_requested_at"] is not None
    return details
