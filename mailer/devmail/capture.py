"""The capture SMTP server: every message it accepts goes to a Maildir, none leaves.

In development ``MAILER_SMTP_URL`` defaults to this server, so confirmation
mails and digests land in ``CAPTURE_MAILDIR`` (``instance/captured-mail``)
where the viewer (``views.py``) and any mail client that reads a Maildir
(mutt -f) can show them.
"""

from __future__ import annotations

import logging
import mailbox
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

log = logging.getLogger("mailer.devmail")
# A digest with images inlined by a careless template can be big; real relays
# accept 25-50 MB, and the capture server must not refuse what they accept.
DATA_SIZE_LIMIT = 50 * 1024 * 1024


class MaildirHandler:
    """aiosmtpd handler: store each message, with its envelope, in a Maildir."""

    def __init__(self, maildir: str | Path) -> None:
        self.path = Path(maildir)
        # Maildir(create=True) makes the last directory only, not its parents.
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.maildir = mailbox.Maildir(self.path, create=True)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802 - aiosmtpd's name
        """Write the message with the envelope on top, as a delivering MTA does."""
        content = envelope.original_content or envelope.content or b""
        if isinstance(content, str):
            content = content.encode("utf-8", "surrogateescape")
        trace = [f"Return-Path: <{envelope.mail_from or ''}>"]
        trace += [f"Delivered-To: {address}" for address in envelope.rcpt_tos]
        message = ("\r\n".join(trace) + "\r\n").encode("utf-8") + content
        key = self.maildir.add(message)
        log.info("captured mail %s for %s", key, ", ".join(envelope.rcpt_tos))
        return "250 2.0.0 OK: captured, not delivered"


class CaptureServer:
    """Start and stop the capture server on ``host:port``, writing to ``maildir``."""

    def __init__(self, maildir: str | Path, host: str = "127.0.0.1", port: int = 2525) -> None:
        self.handler = MaildirHandler(maildir)
        self.controller = Controller(
            self.handler, hostname=host, port=port, data_size_limit=DATA_SIZE_LIMIT,
            enable_SMTPUTF8=True, decode_data=False,
        )

    @classmethod
    def from_config(cls, config: Any) -> CaptureServer:
        """The server the configuration describes (``CAPTURE_*``)."""
        return cls(config["CAPTURE_MAILDIR"], config["CAPTURE_SMTP_HOST"], int(config["CAPTURE_SMTP_PORT"]))

    def start(self) -> CaptureServer:
        """Listen; raise OSError when the port is taken."""
        self.controller.start()
        return self

    def stop(self) -> None:
        """Stop listening (messages already accepted are on disk)."""
        self.controller.stop()

    @property
    def address(self) -> str:
        """host:port, for messages."""
        return f"{self.controller.hostname}:{self.controller.port}"
