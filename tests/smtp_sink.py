"""A real SMTP server for tests: aiosmtpd on loopback, keeping what it receives.

Replies can be programmed per recipient (``reply_to_rcpt``) or for the next
DATA commands (``reply_to_data``), to play 421, 451, 550 or 5.7.1 on demand.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import ssl
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
    # False: leave 8BITMIME out of the EHLO answer (a 7-bit-only server).
    eightbit: bool = True
    # Seconds each DATA takes: slows a send down so a test can act mid-way.
    data_delay: float = 0.0
    mail_options: list[list[str]] = field(default_factory=list)
    # Messages accepted per connection (keyed by aiosmtpd's session), in the order connections came.
    per_connection: dict[int, int] = field(default_factory=dict)
    _sessions: set[int] = field(default_factory=set)

    async def handle_EHLO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname  # what aiosmtpd does itself without this hook
        with self.lock:
            if id(session) not in self._sessions:
                self._sessions.add(id(session))
                self.connections += 1
        if not self.eightbit:
            responses = [r for r in responses if r[4:].upper() != "8BITMIME"]
        return responses

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        reply = self.rcpt_replies.get(address.lower())
        if reply:
            return _closing(server, reply)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.data_delay:
            await asyncio.sleep(self.data_delay)
        with self.lock:
            if self.data_replies:
                return _closing(server, self.data_replies.popleft())
            content = envelope.original_content or b""
            self.messages.append(Received(str(envelope.mail_from), list(envelope.rcpt_tos), bytes(content)))
            self.per_connection[id(session)] = self.per_connection.get(id(session), 0) + 1
            self.mail_options.append(list(envelope.mail_options))
        return "250 OK queued"


def _closing(server: SMTP, reply: str) -> str:
    """A 421 reply closes the connection after it is sent, as RFC 5321 says."""
    if reply.startswith("421") and server.transport is not None:
        asyncio.get_running_loop().call_later(0.05, server.transport.close)
    return reply


class SmtpSink:
    """Start/stop the server; look at and program what it does."""

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, *, ssl_context: ssl.SSLContext | None = None, **smtp_kwargs: Any
    ) -> None:
        """``ssl_context``: TLS from the first byte (smtps://); ``smtp_kwargs`` go to
        aiosmtpd's SMTP (``tls_context``, ``require_starttls``, ``authenticator``...)."""
        self.handler = SinkHandler()
        self.scheme = "smtps" if ssl_context is not None else "smtp"
        self.controller = Controller(
            self.handler, hostname=host, port=port or _free_port(), data_size_limit=50 * 1024 * 1024,
            decode_data=False,
            ssl_context=ssl_context,
            **smtp_kwargs,
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
        return f"{self.scheme}://{self.host}:{self.port}"

    @property
    def messages(self) -> list[Received]:
        with self.handler.lock:
            return list(self.handler.messages)

    def reset(self) -> None:
        with self.handler.lock:
            self.handler.messages.clear()
            self.handler.rcpt_replies.clear()
            self.handler.data_replies.clear()
            self.handler.mail_options.clear()
            self.handler.per_connection.clear()
            self.handler.eightbit = True
            self.handler.data_delay = 0.0

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
