"""A real SMTP server for tests: aiosmtpd on loopback, keeping what it receives.

Replies can be programmed per recipient (``reply_to_rcpt``) or for the next
DATA commands (``reply_to_data``), to play 421, 451, 550 or 5.7.1 on demand.
"""

from __future__ import annotations

import email
import email.policy
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session


@dataclass
class Received:
    """One message as the server accepted it."""

    mail_from: str
    rcpt_tos: list[str]
    data: bytes

    @property
    def message(self) -> EmailMessage:
        msg = email.message_from_bytes(self.data, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        return msg


@dataclass
class SinkHandler:
    """The aiosmtpd handler: records messages, plays programmed replies."""

    messages: list[Received] = field(default_factory=list)
    rcpt_replies: dict[str, str] = field(default_factory=dict)
    data_replies: deque[str] = field(default_factory=deque)
    lock: threading.Lock = field(default_factory=threading.Lock)
    connections: int = 0

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        reply = self.rcpt_replies.get(address.lower())
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        with self.lock:
            if self.data_replies:
                return self.data_replies.popleft()
            content = envelope.original_content or b""
            self.messages.append(Received(str(envelope.mail_from), list(envelope.rcpt_tos), bytes(content)))
        return "250 OK queued"


class SmtpSink:
    """Start/stop the server; look at and program what it does."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.handler = SinkHandler()
        self.controller = Controller(
            self.handler, hostname=host, port=port or _free_port(), data_size_limit=50 * 1024 * 1024,
            decode_data=False,
        )

    def start(self) -> SmtpSink:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    @property
    def host(self) -> str:
        return str(self.controller.hostname)

    @property
    def port(self) -> int:
        return int(self.controller.port)

    @property
    def url(self) -> str:
        return f"smtp://{self.host}:{self.port}"

    @property
    def messages(self) -> list[Received]:
        with self.handler.lock:
            return list(self.handler.messages)

    def reset(self) -> None:
        with self.handler.lock:
            self.handler.messages.clear()
            self.handler.rcpt_replies.clear()
            self.handler.data_replies.clear()

    def reply_to_rcpt(self, address: str, reply: str) -> None:
        """Answer RCPT TO:<address> with ``reply`` (e.g. "550 5.1.1 No such user")."""
        self.handler.rcpt_replies[address.lower()] = reply

    def reply_to_data(self, *replies: str) -> None:
        """Answer the next DATA commands with these replies, in order."""
        self.handler.data_replies.extend(replies)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        """Wait until ``count`` messages arrived; fail the test otherwise."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            messages = self.messages
            if len(messages) >= count:
                return messages
            time.sleep(0.02)
        raise AssertionError(f"expected {count} messages, got {len(self.messages)}")

    def to(self, address: str) -> list[Received]:
        """Messages received for ``address``."""
        return [m for m in self.messages if address.lower() in (r.lower() for r in m.rcpt_tos)]


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


__all__: list[Any] = ["Received", "SmtpSink"]
