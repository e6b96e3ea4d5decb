"""Reports that come back later, as mail: bounces (DSN, RFC 3464) and complaints (ARF, RFC 5965).

A relay (Postfix on the same host, a provider's smarthost) accepts every
digest at once and bounces later, by mail to the envelope sender
(``MAILER_BOUNCE_ADDRESS``); mailbox providers' feedback loops (Yahoo,
Outlook's JMRP, AOL, Libero...) send a complaint when a reader presses
"spam". ``record_report`` reads one such mail: a hard bounce marks the
delivery as one, exactly as a 5.1.x answer at SMTP time does
(``faults.py``), a complaint marks ``Delivery.complaint``; then
``subscriptions.suppress_bounced`` / ``suppress_complained`` change the
reader's status. ``read_paths`` feeds it files, Maildirs (what Postfix or
Dovecot deliver the bounce address to) or standard input (a Postfix
``pipe`` transport); ``expire_read`` deletes the mails read long ago.

Anybody can mail the bounce address, so a report counts only when it quotes
a stamp of one of our deliveries that verifies (``stamp.py``: in the
returned Message-ID, or the VERP address it was sent back to), and, for a
bounce, when that delivery's reader is the report's Final-Recipient. A
forged, guessed or foreign report changes nothing. What is kept of a report
is one short line on the delivery (the status code and diagnostic, or the
feedback type and who sent it), nothing of the mail itself.
"""

from __future__ import annotations

import email
import email.policy
import logging
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from email.message import Message
from email.parser import HeaderParser
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from mailer.delivery.stamp import Stamper
from mailer.models import Delivery, DeliveryStatus, Subscriber, utcnow

log = logging.getLogger("mailer.delivery.bounces")

STATUS_PARTS = ("message/delivery-status", "message/global-delivery-status")
FEEDBACK_PART = "message/feedback-report"
HEADER_PARTS = ("text/rfc822-headers", "message/global-headers")
RETURNED_MESSAGES = ("message/rfc822", "message/global")
# Where a stamp may be: the returned copy's Message-ID and Return-Path (VERP),
# the address a bounce was sent back to, the complaint's Original-Mail-From.
RETURNED_FIELDS = ("Message-ID", "Return-Path")
ENVELOPE_FIELDS = ("To", "Delivered-To", "X-Original-To", "Envelope-To")
# Feedback types that are the reader's complaint about our mail (RFC 5965, 6650):
# spam, phishing, a virus, or another objection. "not-spam" is the opposite, and
# "auth-failure" / "dmarc" are about authentication, not about the reader.
COMPLAINT_TYPES = frozenset({"abuse", "fraud", "virus", "other"})
# What is kept of a report's text on the delivery: enough to tell why.
KEPT_CHARACTERS = 200


@dataclass(frozen=True)
class Report:
    """One recipient's block of a delivery status notification."""

    recipient: str  # lower-cased
    action: str  # failed, delayed, delivered, relayed, expanded
    status: str  # e.g. 5.1.1
    diagnostic: str

    @property
    def hard(self) -> bool:
        """The address does not exist: the same rule as at SMTP time (faults.classify)."""
        return self.action == "failed" and (self.status.startswith("5.1.") or self.status == "5.2.1")


@dataclass(frozen=True)
class Complaint:
    """The feedback-report part of an ARF report."""

    feedback_type: str  # lower-cased: abuse, fraud, virus, other, not-spam, auth-failure...
    user_agent: str  # who sent it: Yahoo!-Mail-Feedback/2.0, ...

    @property
    def counts(self) -> bool:
        """Whether it is the reader's complaint about our mail."""
        return self.feedback_type in COMPLAINT_TYPES


@dataclass(frozen=True)
class Notification:
    """What a report says: its recipients' blocks (DSN) or complaint (ARF), and where stamps may be."""

    reports: tuple[Report, ...]
    complaint: Complaint | None
    message_ids: tuple[str, ...]  # of the returned copy
    references: tuple[str, ...]  # every other field that may carry a stamp


def parse_notification(raw: bytes) -> Notification | None:
    """The DSN or ARF report in ``raw``, or None when it is neither (an auto-reply, spam, garbage)."""
    message = email.message_from_bytes(raw, policy=email.policy.compat32)
    if message.get_content_type() != "multipart/report":
        return None
    reports: list[Report] = []
    complaint: Complaint | None = None
    message_ids: list[str] = []
    references = [str(value) for name in ENVELOPE_FIELDS for value in message.get_all(name) or []]
    for part in message.walk():
        kind = part.get_content_type()
        if kind in STATUS_PARTS:
            reports.extend(_reports(part))
        elif kind == FEEDBACK_PART and complaint is None:
            fields = _feedback_fields(part)
            complaint = Complaint(_typed_value(fields.get("Feedback-Type"), typed=False).lower(),
                                  _typed_value(fields.get("User-Agent"), typed=False)[:100])
            references.extend(str(value) for value in fields.get_all("Original-Mail-From") or [])
        elif kind in HEADER_PARTS:
            payload = part.get_payload(decode=True)
            text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else str(part.get_payload())
            _returned(HeaderParser().parsestr(text, headersonly=True), message_ids, references)
        elif kind in RETURNED_MESSAGES:
            for returned in part.get_payload() or []:
                if isinstance(returned, Message):
                    _returned(returned, message_ids, references)
    if not reports and complaint is None:
        return None
    return Notification(tuple(reports), complaint, tuple(value.strip() for value in message_ids), tuple(references))


def _returned(headers: Message, message_ids: list[str], references: list[str]) -> None:
    """The stamp-bearing fields of a returned copy (whole, or its headers only)."""
    message_ids.extend(str(value) for value in headers.get_all("Message-ID") or [])
    references.extend(str(value) for value in headers.get_all("Return-Path") or [])


def _feedback_fields(part: Message) -> Message:
    """The fields of a message/feedback-report part (parsed as a message, or left as text)."""
    payload = part.get_payload()
    if isinstance(payload, list) and payload and isinstance(payload[0], Message):
        return payload[0]
    text = part.get_payload(decode=True)
    return HeaderParser().parsestr(text.decode("utf-8", "replace") if isinstance(text, bytes) else str(payload))


def _reports(part: Message) -> Iterator[Report]:
    """The per-recipient blocks of a delivery-status part."""
    blocks = part.get_payload()
    for block in blocks if isinstance(blocks, list) else []:
        if not isinstance(block, Message):
            continue
        recipient = _typed_value(block.get("Final-Recipient") or block.get("Original-Recipient"))
        if not recipient:
            continue  # the per-message block
        yield Report(
            recipient=recipient.strip("<>").lower(),
            action=_typed_value(block.get("Action"), typed=False).lower(),
            status=_typed_value(block.get("Status"), typed=False).split(" ")[0],
            diagnostic=" ".join(str(block.get("Diagnostic-Code") or "").split())[:KEPT_CHARACTERS],
        )


def _typed_value(value: object, *, typed: bool = True) -> str:
    """The value of ``rfc822; user@example.org`` (or a plain field), trimmed."""
    text = " ".join(str(value or "").split())
    if typed and ";" in text:
        text = text.split(";", 1)[1]
    return text.strip()


def record_report(session: Session, raw: bytes, stamper: Stamper, name: str = "") -> list[str]:
    """Mark what one mail reports, if its stamp verifies (the caller commits); one line per finding."""
    notification = parse_notification(raw)
    if notification is None:
        return ["not a delivery status notification or complaint report: ignored"]
    delivery_ids, forged = stamper.found("\n".join(notification.message_ids + notification.references))
    if forged and not delivery_ids:
        # One line for the operator: somebody may be trying to suppress readers.
        log.warning("report %s: %d stamp(s) that do not verify: ignored", name or "-", forged)
        return [f"{forged} stamp(s) that do not verify: a forged or foreign report, ignored"]
    ours: dict[str, int] = {}
    if delivery_ids:
        rows = session.execute(
            select(Subscriber.email, Delivery.id).join(Subscriber, Subscriber.id == Delivery.subscriber_id)
            .where(Delivery.id.in_(delivery_ids), Subscriber.email.is_not(None))
        ).tuples().all()
        ours = {str(address): delivery_id for address, delivery_id in rows}
    if notification.complaint is not None:
        return [_complaint(session, notification.complaint, ours)]
    return [_bounce(session, report, ours.get(report.recipient)) for report in notification.reports]


def _bounce(session: Session, report: Report, delivery_id: int | None) -> str:
    """One recipient block of a DSN whose stamps verified: a hard bounce marks the delivery."""
    if delivery_id is None:
        return f"{report.recipient}: the report names none of our deliveries to it: ignored"
    if not report.hard:
        return f"{report.recipient}: {report.action} {report.status}: not a missing mailbox, the reader stays"
    session.execute(
        update(Delivery).where(Delivery.id == delivery_id).values(
            bounce=True, status=DeliveryStatus.FAILED, updated_at=utcnow(),
            last_reply=f"bounced later (DSN): {report.status} {report.diagnostic}"[:KEPT_CHARACTERS],
        )
    )
    log.info("hard bounce reported for delivery %d: %s", delivery_id, report.status)
    return f"{report.recipient}: hard bounce {report.status}: the reader will be suppressed"


def _complaint(session: Session, complaint: Complaint, ours: dict[str, int]) -> str:
    """An ARF report whose stamps verified: a complaint marks the one delivery it names.

    Original-Rcpt-To is not read: providers redact it (Yahoo, Outlook,
    Libero), and the stamp already names the copy and so its reader.
    """
    if not ours:
        return "complaint: the report names none of our deliveries: ignored"
    if len(ours) > 1:
        return f"complaint: the report names {len(ours)} readers' copies: ambiguous, ignored"
    (address, delivery_id), = ours.items()
    if not complaint.counts:
        return f"{address}: feedback {complaint.feedback_type or '(none)'}: not a complaint, the reader stays"
    session.execute(
        update(Delivery).where(Delivery.id == delivery_id).values(
            complaint=True, updated_at=utcnow(),
            last_reply=f"complaint (ARF): {complaint.feedback_type} {complaint.user_agent}"[:KEPT_CHARACTERS],
        )
    )
    log.info("complaint (%s) reported for delivery %d", complaint.feedback_type, delivery_id)
    return f"{address}: complaint ({complaint.feedback_type}): the reader will be suppressed as complained"


@dataclass(frozen=True)
class Source:
    """One mail to read: its bytes, a name for the output, and what to do once it is recorded."""

    name: str
    raw: bytes
    done: Path | None = None  # a Maildir message in new/: moved to cur/ as seen


def read_paths(paths: Iterable[str], stdin: bytes | None = None) -> Iterator[Source]:
    """The mails of ``paths``: files, Maildirs (their new/ messages), and "-" for ``stdin``.

    Raises OSError naming a path that cannot be read.
    """
    for path in paths:
        if path == "-":
            yield Source("stdin", stdin or b"")
            continue
        where = Path(path)
        if (where / "new").is_dir() and (where / "cur").is_dir():
            for message in sorted((where / "new").iterdir()):
                if message.is_file() and not message.name.startswith("."):
                    yield Source(str(message), message.read_bytes(), done=where / "cur" / f"{message.name}:2,S")
        else:
            yield Source(path, where.read_bytes())


def mark_read(source: Source) -> None:
    """A Maildir message, once recorded, moves to cur/ flagged seen, so a rerun skips it."""
    if source.done is not None:
        os.replace(source.name, source.done)


def expire_read(maildir: Path, days: int, now: float | None = None) -> int:
    """Delete the mails of ``maildir``'s cur/ that arrived more than ``days`` days ago; how many.

    Only cur/ (read and recorded) is touched: a mail waiting in new/ is never
    lost. The arrival time is the file's mtime, which Maildir delivery sets
    and the move to cur/ keeps.
    """
    cutoff = (time.time() if now is None else now) - days * 86400
    deleted = 0
    for message in (maildir / "cur").iterdir():
        try:
            if message.is_file() and message.stat().st_mtime < cutoff:
                message.unlink()
                deleted += 1
        except FileNotFoundError:  # deleted meanwhile by another scheduler
            continue
    return deleted
