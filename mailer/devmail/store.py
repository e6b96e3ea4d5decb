"""Reading the capture Maildir: summaries for the list, one message in full.

Maildir keys start with the delivery time (``1767225600.M123P45Q6.host``),
so the list sorts on the key without opening every file, and only the page
shown has its headers parsed.
"""

from __future__ import annotations

import mailbox
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesHeaderParser, BytesParser
from pathlib import Path

KEY = re.compile(r"^(\d+)\.M(\d+)")


@dataclass(frozen=True)
class Summary:
    """One line of the list."""

    key: str
    received: datetime
    sender: str
    to: str
    subject: str


def _maildir(path: str | Path) -> mailbox.Maildir:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return mailbox.Maildir(Path(path), create=True)


def _received(key: str) -> datetime:
    """When the capture server stored ``key`` (from the key itself)."""
    match = KEY.match(key)
    if not match:
        return datetime.fromtimestamp(0, UTC)
    return datetime.fromtimestamp(int(match[1]) + int(match[2]) / 1e6, UTC)


def newest_first(path: str | Path) -> list[str]:
    """Every key, newest first."""
    return sorted(_maildir(path).keys(), key=lambda k: (_received(k), k), reverse=True)


def summaries(path: str | Path, keys: list[str]) -> list[Summary]:
    """Summaries of ``keys`` (headers only; a message removed meanwhile is left out)."""
    box = _maildir(path)
    parser = BytesHeaderParser(policy=policy.default)
    found = []
    for key in keys:
        try:
            with box.get_file(key) as handle:
                headers = parser.parse(handle)  # type: ignore[arg-type]
        except KeyError:
            continue
        recipients = headers.get_all("Delivered-To") or [headers.get("To", "")]
        found.append(Summary(
            key=key, received=_received(key), sender=str(headers.get("From", "")),
            to=", ".join(str(r) for r in recipients), subject=str(headers.get("Subject", "")),
        ))
    return found


def load(path: str | Path, key: str) -> tuple[EmailMessage, bytes] | None:
    """The message ``key`` parsed, and its raw bytes; None if there is no such key."""
    box = _maildir(path)
    # Only keys the Maildir lists: a crafted key ("../../x") never reaches the disk.
    if key not in box:
        return None
    try:
        raw = box.get_bytes(key)
    except KeyError:
        return None
    message = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(message, EmailMessage)
    return message, raw


def body(message: EmailMessage, subtype: str) -> str | None:
    """The text/``subtype`` body (the preferred one of an alternative), decoded."""
    part = message.get_body(preferencelist=(subtype,))
    if part is None:
        return None
    try:
        content = part.get_content()
    except (LookupError, ValueError):  # an unknown charset or a broken encoding
        payload = part.get_payload(decode=True)
        content = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else str(payload)
    return str(content)


def attachments(message: EmailMessage) -> list[tuple[str, str, int]]:
    """(file name, content type, size in bytes) of each attachment."""
    found = []
    for part in message.iter_attachments():
        payload = part.get_payload(decode=True)
        size = len(payload) if isinstance(payload, bytes) else 0
        found.append((part.get_filename() or "(no name)", part.get_content_type(), size))
    return found


def remove_all(path: str | Path) -> int:
    """Delete every captured message; return how many there were."""
    box = _maildir(path)
    keys = list(box.keys())
    for key in keys:
        box.discard(key)
    return len(keys)
