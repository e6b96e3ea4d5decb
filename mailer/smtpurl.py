"""``MAILER_SMTP_URL`` parsed into its settings, in one place.

The configuration checks the URL with this parser when the app starts, and
the delivery stage connects with what it returns: neither imports the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

# ``MAILER_SMTP_URL``: where to send, how to secure it, who to log in as.
#
# ``smtp://host:25`` is plain SMTP, ``smtp+starttls://host:587`` upgrades the
# connection with STARTTLS (and refuses to go on without it), ``smtps://host:465``
# is TLS from the first byte. ``user:password@`` logs in with AUTH; both are
# percent-decoded, so a password may hold ``@``, ``:`` or ``/`` written as
# ``%40``, ``%3A`` and ``%2F``.

DEFAULT_PORTS = {"smtp": 25, "smtp+starttls": 587, "smtps": 465}


@dataclass(frozen=True)
class SmtpSettings:
    """A parsed SMTP URL. ``security`` is "none", "starttls" or "tls"."""

    host: str
    port: int
    security: str = "none"
    username: str | None = None
    # Kept out of repr(), so a settings object in a log line leaks nothing.
    password: str | None = field(default=None, repr=False)

    @property
    def where(self) -> str:
        """``host:port``, for messages to the operator."""
        return f"{self.host}:{self.port}"


def parse_smtp_url(url: str) -> SmtpSettings:
    """Parse ``url``; raise ValueError with a reason when it is not usable."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise ValueError(f"unknown scheme {parts.scheme!r}: expected smtp, smtp+starttls or smtps")
    if not parts.hostname:
        raise ValueError("no host in the SMTP URL")
    try:
        port = parts.port or DEFAULT_PORTS[scheme]
    except ValueError as exc:  # a port that is not a number, or out of range
        raise ValueError(f"bad port in the SMTP URL: {exc}") from None
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    if password is not None and not username:
        raise ValueError("a password without a user name in the SMTP URL")
    security = {"smtp": "none", "smtp+starttls": "starttls", "smtps": "tls"}[scheme]
    return SmtpSettings(parts.hostname, port, security, username, password)
