"""The parsers of the ``MAILER_*`` values (``mailer.config.VARIABLES``).

Each takes the variable's text and returns the value the app uses, or raises
ValueError with a reason that ``load_config`` prefixes with the variable's
name: one line, at start, instead of a failure in the middle of a send.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mailer.smtpurl import parse_smtp_url

LOCALES = ("it", "en")
# A digest schedule must fire within this horizon (29 February does; 31 February never).
SCHEDULE_HORIZON = timedelta(days=5 * 366)
FLAGS = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}
# postgresql:// alone means psycopg2 to SQLAlchemy; psycopg 3 is what is installed.
_POSTGRES_SHORTHANDS = ("postgresql://", "postgres://")


def url(value: str, schemes: tuple[str, ...]) -> str:
    """A URL of one of ``schemes``, with a host and a valid port."""
    parts = urlsplit(value)
    if parts.scheme not in schemes or not parts.hostname:
        raise ValueError(f"expected a {'/'.join(schemes)} URL with a host")
    parts.port  # noqa: B018 - raises ValueError on a bad port
    return value


def smtp_url(value: str) -> str:
    """An SMTP URL that ``mailer.smtpurl`` can parse, the one parser the delivery uses too."""
    parse_smtp_url(value)
    return value


def loopback_host(host: str) -> bool:
    """Whether ``host`` (a name or an address, IPv6 with or without brackets) is this machine only."""
    host = host.strip().strip("[]").rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):  # RFC 6761: always loopback
        return True
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def loopback_url(value: str) -> bool:
    """Whether the URL ``value`` points at this machine only."""
    try:
        host = urlsplit(value).hostname
    except ValueError:
        return False
    return bool(host) and loopback_host(str(host))


def base_url(value: str) -> str:
    """An http(s) URL, without the trailing slash (links are built on it)."""
    return url(value, ("http", "https")).rstrip("/")


def database_url(value: str) -> str:
    """A SQLite or PostgreSQL URL whose driver is installed; ``postgresql://`` means psycopg 3."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    for shorthand in _POSTGRES_SHORTHANDS:
        if value.startswith(shorthand):
            value = "postgresql+psycopg://" + value[len(shorthand):]
    try:
        url = make_url(value)
    except ArgumentError:
        raise ValueError("not a database URL: expected e.g. postgresql+psycopg://user@host/db"
                         " or sqlite:////path/to/file.sqlite3") from None
    if url.get_backend_name() not in ("sqlite", "postgresql"):
        raise ValueError("only sqlite and postgresql are supported")
    try:
        url.get_dialect().import_dbapi()
    except NoSuchModuleError:
        raise ValueError(f"unknown database driver {url.drivername!r}") from None
    except ImportError:
        raise ValueError(f"the database driver {url.get_driver_name()!r} is not installed:"
                         " use postgresql+psycopg:// (psycopg 3) or sqlite://") from None
    return value


def int_between(low: int, high: int, what: str, note: str = "") -> Callable[[str], int]:
    """A parser of whole numbers from ``low`` to ``high``; ``what`` says what they count."""

    def parse(value: str) -> int:
        number = int(value)
        if not low <= number <= high:
            raise ValueError(f"expected {what}: {low} to {high}{note}")
        return number

    return parse


def hops(value: str) -> int:
    """How many proxies stand in front of the app (0 to 5)."""
    number = int(value)
    if not 0 <= number <= 5:
        raise ValueError("expected the number of proxies in front of the app, 0 to 5")
    return number


def rate(value: str) -> float:
    """Messages per second, 0 for no limit; a finite number."""
    number = float(value)
    if not math.isfinite(number) or number < 0:
        raise ValueError("expected messages per second, 0 (no limit) or more")
    return number


def cron(value: str) -> str:
    """A five-field cron line that fires at least once in the next few years."""
    from mailer.crontab import cron_trigger

    trigger = cron_trigger(value, "UTC")  # cron's own meaning (0 and 7 are Sunday)
    now = datetime.now(UTC)
    first = trigger.get_next_fire_time(None, now)
    if first is None or first > now + SCHEDULE_HORIZON:
        raise ValueError("this schedule never fires (no such date in the next 5 years)")
    return value


def flag(value: str) -> bool:
    """A yes/no value: 1/0, true/false, yes/no, on/off."""
    try:
        return FLAGS[value.lower()]
    except KeyError:
        raise ValueError("expected 1/0, true/false, yes/no or on/off") from None


def timezone(value: str) -> str:
    """An IANA time zone name, e.g. Europe/Rome."""
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError("unknown time zone") from exc
    return value


def locale(value: str) -> str:
    """One of the languages pages and mails are written in."""
    if value not in LOCALES:
        raise ValueError(f"expected one of {', '.join(LOCALES)}")
    return value


def url_list(value: str) -> list[str]:
    """http(s) URLs separated by whitespace or commas."""
    return [url(item, ("http", "https")) for item in re.split(r"[\s,]+", value) if item]


def networks(value: str | Iterable[Any]) -> tuple[Any, ...]:
    """IP networks in CIDR notation, separated by whitespace or commas (``mailer.netguard``)."""
    from mailer.netguard import parse_networks

    return parse_networks(value)


def origins(value: str) -> list[str]:
    """Browser origins (scheme://host[:port]) separated by whitespace or commas."""
    return [origin(item) for item in re.split(r"[\s,]+", value) if item]


def origin(value: str) -> str:
    """``scheme://host[:port]``, as a browser's Origin header spells it (lower case, no default port)."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{value!r} is not an origin: expected scheme://host[:port], e.g. https://www.example.it")
    extra = [name for name, found in (("a path", parts.path not in ("", "/")), ("a query", "?" in value),
                                      ("a fragment", "#" in value), ("a user", "@" in parts.netloc)) if found]
    if extra:
        raise ValueError(f"{value!r} has {' and '.join(extra)}: an origin is scheme://host[:port] only"
                         " (a browser's Origin header never has more), so it would never match")
    port = parts.port  # raises ValueError on a bad port
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    default = {"http": 80, "https": 443}[parts.scheme]
    return f"{parts.scheme}://{host}" + (f":{port}" if port not in (None, default) else "")


def dkim_name(value: str) -> str:
    """A DKIM domain or selector: ASCII, no spaces."""
    if not value.isascii() or any(c.isspace() for c in value):
        raise ValueError("expected an ASCII name without spaces (an international domain in its xn-- form)")
    return value


def ascii_address(addr: str) -> str:
    """``addr`` with an IDN domain in its ASCII (xn--) form; a non-ASCII local part is refused.

    The address goes into MAIL FROM and the From header as it is: an
    international domain has to be in the form every server takes, and an
    encoded-word inside an address is not allowed (RFC 2047, 5).
    """
    local, _, domain = addr.rpartition("@")
    if not local.isascii():
        raise ValueError("the part before @ must be ASCII (no server must be assumed to take SMTPUTF8)")
    try:
        ascii_domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        raise ValueError(f"{domain!r} is not a valid domain") from None
    if "." not in ascii_domain.strip(".") and ascii_domain != "localhost":
        raise ValueError(f"{domain!r} is not a full domain name")
    return f"{local}@{ascii_domain}"


def address(value: str) -> str:
    """A From header (``Name <box@domain>``), its domain in the xn-- form."""
    from email.headerregistry import Address
    from email.utils import parseaddr

    if "\r" in value or "\n" in value:
        raise ValueError("line breaks are not allowed")
    name, addr = parseaddr(value)
    if "@" not in addr:
        raise ValueError("expected an address such as 'News <news@example.it>'")
    ascii_addr = ascii_address(addr)
    Address(display_name=name, addr_spec=ascii_addr)
    # Only the domain changes (to its xn-- form); the display name is kept as written.
    at = value.rfind(addr)
    return value[:at] + ascii_addr + value[at + len(addr):] if at >= 0 else str(Address(name, addr_spec=ascii_addr))


def bare_address(value: str) -> str:
    """A bare address (``box@domain``), its domain in the xn-- form."""
    from email.utils import parseaddr

    name, addr = parseaddr(value)
    if "\r" in value or "\n" in value or name or addr != value or "@" not in addr:
        raise ValueError("expected a bare address such as bounces@example.it")
    return ascii_address(addr)


def existing_file(value: str) -> str:
    """The path of a file that exists."""
    if not Path(value).is_file():
        raise ValueError("no such file")
    return value


def maildir(value: str) -> str:
    """The path of a Maildir (its new/ and cur/ folders exist)."""
    if not (Path(value) / "new").is_dir() or not (Path(value) / "cur").is_dir():
        raise ValueError("not a Maildir (no new/ and cur/ folders)")
    return value


def limit(value: str) -> str:
    """A rate limit in the limits notation, e.g. ``10/minute;100/hour``."""
    from limits import parse_many

    parse_many(value)
    return value


def rate_storage(value: str) -> str:
    """Where rate-limit counters live: database, memory or a limits storage URI."""
    from limits.errors import ConfigurationError
    from limits.storage import Storage, storage_from_string

    if value in ("database", "memory"):
        return value
    try:
        # Builds the client without connecting: an unknown scheme or a
        # missing client library (redis...) is refused here, at start.
        storage = storage_from_string(value)
    except ConfigurationError as exc:
        raise ValueError(f"expected database, memory or a storage URI such as redis://host:6379 ({exc})") from None
    if not isinstance(storage, Storage):
        raise ValueError("an async+ storage cannot serve this synchronous app")
    return value


def text(value: str) -> str:
    """Any text, as it is."""
    return value


def one_line(value: str) -> str:
    """Text without line breaks (it goes into mail headers)."""
    if "\r" in value or "\n" in value:
        raise ValueError("line breaks are not allowed")
    return value
