"""The SMTP transport: one persistent connection, reused message after message.

The sender depends on the small ``Transport`` interface only (listmonk's
"Messenger"), so tests can swap in ``MemoryTransport``. ``SmtpTransport``
speaks SMTP through smtplib's low-level commands rather than ``sendmail``:
the payload arrives already dot-stuffed (the edition template was stuffed
once), and the final "." waits for ``before_end`` so that the previous
message's "sent" is committed before this one can be accepted. A crash then
leaves at most one accepted-but-unrecorded message per connection.
"""

from __future__ import annotations

import re
import smtplib
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from mailer.delivery.report import DeliveryError
from mailer.delivery.smtp_url import SmtpSettings

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


class SmtpTransport:
    """A persistent smtplib connection; reconnects after a 421 or a drop."""

    def __init__(self, settings: SmtpSettings, *, timeout: float = 60.0, reconnect_tries: int = 3,
                 context: ssl.SSLContext | None = None) -> None:
        """Nothing connects until ``open`` or the first ``send``.

        ``context`` verifies the server's certificate (STARTTLS, SMTPS); by
        default the system's CA bundle. Share one between transports: loading
        the bundle costs a tenth of a second.
        """
        self.settings = settings
        self.context = context
        self.timeout = timeout
        self.reconnect_tries = reconnect_tries
        self.eightbit = False
        self.smtputf8 = False
        self.connections = 0
        self._conn: smtplib.SMTP | None = None

    def open(self) -> None:
        """Connect, secure and log in; raise DeliveryError with one clear line."""
        settings = self.settings
        # gethostname(), not smtplib's getfqdn(): no DNS lookup that can hang.
        helo = socket.gethostname() or "localhost"
        if settings.security != "none" and self.context is None:
            self.context = ssl.create_default_context()
        context = self.context
        try:
            if settings.security == "tls":
                conn: smtplib.SMTP = smtplib.SMTP_SSL(settings.host, settings.port, helo, timeout=self.timeout,
                                                      context=context)
            else:
                conn = smtplib.SMTP(settings.host, settings.port, helo, timeout=self.timeout)
            conn.ehlo()
            if settings.security == "starttls":
                if not conn.has_extn("starttls"):
                    conn.close()
                    raise DeliveryError(f"the SMTP server at {settings.where} does not offer STARTTLS")
                conn.starttls(context=context)
                conn.ehlo()
            if settings.username:
                _login(conn, settings.username, settings.password or "")
        except smtplib.SMTPAuthenticationError as exc:
            raise DeliveryError(f"SMTP authentication failed at {settings.where}: {_reply_text(exc)}") from None
        except smtplib.SMTPNotSupportedError:
            raise DeliveryError(f"the SMTP server at {settings.where} does not offer AUTH") from None
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"cannot connect to the SMTP server at {settings.where}: {_reason(exc)}") from None
        if conn.sock is not None:
            _tune(conn.sock, self.timeout)
        self.eightbit = conn.has_extn("8bitmime")
        self.smtputf8 = conn.has_extn("smtputf8")
        self.connections += 1
        self._conn = conn

    def _connection(self) -> smtplib.SMTP:
        """The open connection, reconnecting (a few tries) after a drop."""
        if self._conn is not None:
            return self._conn
        if not self.connections:
            self.open()
        else:
            for attempt in range(self.reconnect_tries):
                try:
                    self.open()
                    break
                except DeliveryError:
                    if attempt == self.reconnect_tries - 1:
                        raise
                    time.sleep(0.5 * 2**attempt)
        assert self._conn is not None
        return self._conn

    def send(self, sender: str, recipient: str, payload: bytes, *, options: Sequence[str] = (),
             before_end: Callable[[], bool] | None = None) -> Reply:
        """Send one message; a lost connection comes back as a 451 reply."""
        conn = self._connection()
        stage = "mail"
        try:
            code, text = _command(conn, "mail", f"FROM:<{sender}>" + "".join(f" {o}" for o in options))
            if code != 250:
                return self._refused(conn, code, text, stage)
            stage = "rcpt"
            code, text = _command(conn, "rcpt", f"TO:<{recipient}>")
            if code not in (250, 251):
                return self._refused(conn, code, text, stage)
            stage = "data"
            code, text = _command(conn, "data", "")
            if code != 354:
                return self._refused(conn, code, text, stage)
            conn.send(payload)
            if before_end is not None and not before_end():
                # Without its final "." the server throws the message away.
                self._drop()
                return Reply(451, "4.3.0 abandoned: the run stopped", ABANDONED)
            conn.send(b".\r\n")
            code, raw = conn.getreply()
            text = raw.decode("utf-8", "replace")
            if code == 421:
                self._drop()
            return Reply(code, text, stage)
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            self._drop()
            return Reply(451, f"4.4.2 connection lost: {_reason(exc)}", stage)

    def _refused(self, conn: smtplib.SMTP, code: int, text: str, stage: str) -> Reply:
        """End the refused transaction: RSET, or drop the connection on a 421."""
        if code == 421:
            self._drop()
        else:
            try:
                conn.rset()
            except (smtplib.SMTPException, OSError):
                self._drop()
        return Reply(code, text, stage)

    def _drop(self) -> None:
        """Forget a connection the server closed (or is closing)."""
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None

    def close(self) -> None:
        """QUIT politely; never raise."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.quit()
        except (smtplib.SMTPException, OSError):
            conn.close()


def _tune(sock: socket.socket, timeout: float) -> None:
    """Socket options for a connection that carries thousands of messages.

    The final "." goes out alone after the body: without TCP_NODELAY, Nagle
    would hold it until the body's ACK, 40 ms a message. And the timeout is
    left to the kernel (SO_RCVTIMEO, SO_SNDTIMEO) on a blocking socket:
    Python's own timeout polls before every read and write, nine system
    calls a message. A kernel timeout surfaces as a lost connection (451).
    """
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    seconds = max(1, int(timeout))
    interval = struct.pack("ll", seconds, 0)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, interval)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, interval)
    sock.settimeout(None)


def _login(conn: smtplib.SMTP, username: str, password: str) -> None:
    """AUTH with the best mechanism offered, once.

    smtplib's ``login`` tries each mechanism in turn after a refusal; a wrong
    password would then cost several refusals (and lock accounts sooner).
    """
    if not conn.has_extn("auth"):
        raise smtplib.SMTPNotSupportedError("AUTH not offered")
    offered = conn.esmtp_features["auth"].upper().split()
    conn.user, conn.password = username, password
    for name, method in (("PLAIN", conn.auth_plain), ("LOGIN", conn.auth_login), ("CRAM-MD5", conn.auth_cram_md5)):
        if name in offered:
            conn.auth(name, method)  # raises SMTPAuthenticationError on a refusal
            return
    raise smtplib.SMTPException(f"no AUTH mechanism in common (the server offers {' '.join(offered)})")


def _command(conn: smtplib.SMTP, verb: str, argument: str) -> tuple[int, str]:
    """One command and its reply (smtplib's ``mail``/``rcpt`` re-parse the address)."""
    conn.putcmd(verb, argument)
    code, raw = conn.getreply()
    return code, raw.decode("utf-8", "replace")


def _reply_text(exc: smtplib.SMTPResponseException) -> str:
    """``535 5.7.8 bad credentials`` from smtplib's exception."""
    text = exc.smtp_error.decode("utf-8", "replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
    return f"{exc.smtp_code} {text}".replace("\n", " ")


def _reason(exc: BaseException) -> str:
    """A short reason: the strerror of an OSError, the reply of an SMTP error."""
    if isinstance(exc, smtplib.SMTPResponseException):
        return _reply_text(exc)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc).replace("\n", " ") or type(exc).__name__


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
