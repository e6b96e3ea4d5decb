"""SMTP over smtplib: one persistent connection, reused message after message,
given the settings that ``mailer.smtpurl`` parsed from ``MAILER_SMTP_URL``.

It speaks through smtplib's low-level commands rather than ``sendmail``:
the payload arrives already dot-stuffed (the edition template was stuffed
once, where ``sendmail`` runs a regex over every message), and the final
"." waits for ``before_end``. A crash then leaves at most one accepted but
unrecorded message per connection. A 421 or a dropped connection comes
back as a 4xx reply and the next message reconnects.
"""

from __future__ import annotations

import smtplib
import socket
import ssl
import struct
import time
from collections.abc import Callable, Sequence

from mailer.delivery.report import DeliveryError
from mailer.delivery.transport import ABANDONED, Reply
from mailer.smtpurl import SmtpSettings


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
    would hold it until the body's ACK. And the timeout is left to the
    kernel (SO_RCVTIMEO, SO_SNDTIMEO) on a blocking socket: Python's own
    timeout polls before every read and write (bench/FIGURES.md). A kernel timeout surfaces as a lost connection (451).
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

