"""The transport interface the sender depends on, and a fake for tests.

The sender knows only ``Transport`` (listmonk's "Messenger"): ``smtp.py``
has the real one, ``MemoryTransport`` keeps messages in memory for tests.
A transport sends one message to one recipient and answers with the
server's ``Reply``; before the final "." of a message it calls
``before_end``, which is how the sender makes sure the previous message's
"sent" is committed before this one can be accepted.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

# The stage of a message given up before its final "." (never accepted).
ABANDONED = "abandoned"
_ENHANCED = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})(?!\d)")
_STUFF = re.compile(rb"(?m)^\.")


@dataclass(frozen=True)
class Reply:
    """The server's answer to one message, and the step it came at.

    ``stage`` is "mail", "rcpt" or "data"; a reply we made up for a dropped
    connection is a 451 of the step that was going on.
    """

    code: int
    text: str
    stage: str

    @property
    def enhanced(self) -> str | None:
        """The RFC 3463 status ("5.1.1") at the start of the text, if any."""
        match = _ENHANCED.match(self.text)
        return ".".join(match.groups()) if match else None

    def __str__(self) -> str:
        return f"{self.code} {self.text}".strip()


class Transport(Protocol):
    """What the sender needs from a way to send mail."""

    eightbit: bool  # the server takes 8bit bodies (8BITMIME)
    smtputf8: bool  # the server takes UTF-8 addresses (SMTPUTF8)

    def open(self) -> None:
        """Connect now; raise DeliveryError when the server cannot be used."""

    def send(self, sender: str, recipient: str, payload: bytes, *, options: Sequence[str] = (),
             before_end: Callable[[], bool] | None = None) -> Reply:
        """Send one message (``payload`` dot-stuffed, ending in CRLF) to one recipient.

        ``before_end`` runs before the final "."; when it returns False the
        message is abandoned (the connection dropped, so the server discards
        it) and the reply is an ``ABANDONED`` one.
        """
        ...

    def close(self) -> None:
        """Say goodbye and close the connection."""


def wire_form(message: bytes) -> bytes:
    """``message`` as the DATA command carries it: dot-stuffed, ending in CRLF."""
    stuffed = _STUFF.sub(b"..", message)
    return stuffed if stuffed.endswith(b"\r\n") else stuffed + b"\r\n"


@dataclass
class MemoryTransport:
    """A transport for unit tests: keeps every message, answers with ``reply``.

    ``reply(recipient)`` returns None for "250 OK", or the Reply to give.
    """

    reply: Callable[[str], Reply | None] = lambda _recipient: None
    eightbit: bool = True
    smtputf8: bool = False
    sent: list[tuple[str, str, bytes]] = field(default_factory=list)
    opened: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def open(self) -> None:
        """Nothing to connect."""
        self.opened += 1

    def send(self, sender: str, recipient: str, payload: bytes, *, options: Sequence[str] = (),
             before_end: Callable[[], bool] | None = None) -> Reply:
        """Record the message unless ``reply`` refuses it."""
        answer = self.reply(recipient)
        if answer is not None:
            return answer
        if before_end is not None and not before_end():
            return Reply(451, "4.3.0 abandoned: the run stopped", ABANDONED)
        with self.lock:
            self.sent.append((sender, recipient, payload))
        return Reply(250, "2.0.0 OK", "data")

    def close(self) -> None:
        """Nothing to close."""
