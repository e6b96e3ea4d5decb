"""Bounces that come back later, as mail: delivery status notifications (RFC 3464).

A relay (Postfix on the same host, a provider's smarthost) accepts every
digest at once and bounces later, by mail to the envelope sender
(``MAILER_BOUNCE_ADDRESS``). ``record_bounce`` reads one such mail and marks
the delivery it reports as a hard bounce, exactly as a 5.1.x answer at SMTP
time does (``faults.py``), so that ``subscriptions.suppress_bounced`` turns
the reader into "bounced". ``read_paths`` feeds it files, Maildirs (what
Postfix or Dovecot deliver the bounce address to) or standard input (a
Postfix ``pipe`` transport).

Anybody can mail the bounce address, so a report counts only when it names
one of our own deliveries: the returned headers carry the digest's
Message-ID (``<digest-D.N.S@domain>``, N the delivery's id; see
``message.message_id``) and that delivery's reader must be the report's
Final-Recipient. A forged or foreign report changes nothing.
"""

from __future__ import annotations

import email
import email.policy
import logging
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from email.message import Message
from email.parser import HeaderParser
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from mailer.models import Delivery, DeliveryStatus, Subscriber, utcnow

log = logging.getLogger("mailer.delivery.bounces")

DIGEST_MESSAGE_ID = re.compile(r"<digest-(\d+)\.(\d+)\.\d+@[^>]*>")
STATUS_PARTS = ("message/delivery-status", "message/global-delivery-status")
HEADER_PARTS = ("text/rfc822-headers", "message/global-headers")
RETURNED_MESSAGES = ("message/rfc822", "message/global")


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
class Notification:
    """What a DSN says: the recipients' reports and the Message-IDs of the mail it returns."""

    reports: tuple[Report, ...]
    message_ids: tuple[str, ...]


def parse_notification(raw: bytes) -> Notification | None:
    """The DSN in ``raw``, or None when it is not one (an auto-reply, spam, garbage)."""
    message = email.message_from_bytes(raw, policy=email.policy.compat32)
    if message.get_content_type() != "multipart/report":
        return None
    reports: list[Report] = []
    message_ids: list[str] = []
    for part in message.walk():
        kind = part.get_content_type()
        if kind in STATUS_PARTS:
            reports.extend(_reports(part))
        elif kind in HEADER_PARTS:
            payload = part.get_payload(decode=True)
            text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else str(part.get_payload())
            message_ids.extend(HeaderParser().parsestr(text, headersonly=True).get_all("Message-ID") or [])
        elif kind in RETURNED_MESSAGES:
            for returned in part.get_payload() or []:
                if isinstance(returned, Message):
                    message_ids.extend(returned.get_all("Message-ID") or [])
    if not reports:
        return None
    return Notification(tuple(reports), tuple(str(value).strip() for value in message_ids))


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
            diagnostic=" ".join(str(block.get("Diagnostic-Code") or "").split())[:500],
        )


def _typed_value(value: object, *, typed: bool = True) -> str:
    """The value of ``rfc822; user@example.org`` (or a plain field), trimmed."""
    text = " ".join(str(value or "").split())
    if typed and ";" in text:
        text = text.split(";", 1)[1]
    return text.strip()


def record_bounce(session: Session, raw: bytes) -> list[str]:
    """Mark the hard bounces one mail reports (the caller commits); one line per finding."""
    notification = parse_notification(raw)
    if notification is None:
        return ["not a delivery status notification: ignored"]
    delivery_ids = {int(match.group(2)) for value in notification.message_ids
                    if (match := DIGEST_MESSAGE_ID.search(value))}
    ours = dict(session.execute(
        select(Subscriber.email, Delivery.id).join(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .where(Delivery.id.in_(delivery_ids))
    ).tuples().all()) if delivery_ids else {}
    lines = []
    for report in notification.reports:
        delivery_id = ours.get(report.recipient)
        if delivery_id is None:
            lines.append(f"{report.recipient}: the report names none of our deliveries to it: ignored")
        elif not report.hard:
            lines.append(f"{report.recipient}: {report.action} {report.status}: "
                         "not a missing mailbox, the reader stays")
        else:
            session.execute(
                update(Delivery).where(Delivery.id == delivery_id).values(
                    bounce=True, status=DeliveryStatus.FAILED, updated_at=utcnow(),
                    last_reply=f"bounced later (DSN): {report.status} {report.diagnostic}"[:2000],
                )
            )
            log.info("hard bounce reported for delivery %d: %s", delivery_id, report.status)
            lines.append(f"{report.recipient}: hard bounce {report.status}: the reader will be suppressed")
    return lines


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
