"""Configuration: defaults, then the file for ``MAILER_ENV``, then ``MAILER_*``.

Every variable of the public contract is parsed and checked here, at start-up,
so that a bad value stops the app with one line naming the variable instead of
failing later in the middle of a send.
"""

from __future__ import annotations

import importlib
import math
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

ENVIRONMENTS = ("development", "production", "testing")
LOCALES = ("it", "en")
SMTP_SCHEMES = ("smtp", "smtp+starttls", "smtps")
MAX_FEED_INTERVAL = 7 * 24 * 60  # minutes: a week
MAX_SMTP_CONNECTIONS = 100
# A digest schedule must fire within this horizon (29 February does; 31 February never).
SCHEDULE_HORIZON = timedelta(days=5 * 366)
FLAGS = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}
MIN_SECRET_KEY_LENGTH = 16
KEY_ADVICE = "use e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
# Variables whose value an error message must not repeat.
SECRET_VARIABLES = frozenset({"SECRET_KEY"})
# The password in a URL (scheme://user:password@host), hidden in error messages.
_URL_PASSWORD = re.compile(r"(://[^/@:]*:)[^/@]*@")
# postgresql:// alone means psycopg2 to SQLAlchemy; psycopg 3 is what is installed.
_POSTGRES_SHORTHANDS = ("postgresql://", "postgres://")


class ConfigError(ValueError):
    """A configuration value is wrong; the message names the variable."""


def _url(value: str, schemes: tuple[str, ...]) -> str:
    parts = urlsplit(value)
    if parts.scheme not in schemes or not parts.hostname:
        raise ValueError(f"expected a {'/'.join(schemes)} URL with a host")
    parts.port  # noqa: B018 - raises ValueError on a bad port
    return value


def _base_url(value: str) -> str:
    return _url(value, ("http", "https")).rstrip("/")


def _database_url(value: str) -> str:
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


def _int_between(low: int, high: int, what: str, note: str = "") -> Callable[[str], int]:
    """A parser of whole numbers from ``low`` to ``high``; ``what`` says what they count."""

    def parse(value: str) -> int:
        number = int(value)
        if not low <= number <= high:
            raise ValueError(f"expected {what}: {low} to {high}{note}")
        return number

    return parse


def _hops(value: str) -> int:
    number = int(value)
    if not 0 <= number <= 5:
        raise ValueError("expected the number of proxies in front of the app, 0 to 5")
    return number


def _rate(value: str) -> float:
    number = float(value)
    if not math.isfinite(number) or number < 0:
        raise ValueError("expected messages per second, 0 (no limit) or more")
    return number


def _cron(value: str) -> str:
    """A five-field cron line that fires at least once in the next few years."""
    from mailer.crontab import cron_trigger

    trigger = cron_trigger(value, "UTC")  # cron's own meaning (0 and 7 are Sunday)
    now = datetime.now(UTC)
    first = trigger.get_next_fire_time(None, now)
    if first is None or first > now + SCHEDULE_HORIZON:
        raise ValueError("this schedule never fires (no such date in the next 5 years)")
    return value


def _flag(value: str) -> bool:
    try:
        return FLAGS[value.lower()]
    except KeyError:
        raise ValueError("expected 1/0, true/false, yes/no or on/off") from None


def _timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError("unknown time zone") from exc
    return value


def _locale(value: str) -> str:
    if value not in LOCALES:
        raise ValueError(f"expected one of {', '.join(LOCALES)}")
    return value


def _url_list(value: str) -> list[str]:
    return [_url(item, ("http", "https")) for item in re.split(r"[\s,]+", value) if item]


def _origins(value: str) -> list[str]:
    return [_origin(item) for item in re.split(r"[\s,]+", value) if item]


def _origin(value: str) -> str:
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


def _dkim_name(value: str) -> str:
    if not value.isascii() or any(c.isspace() for c in value):
        raise ValueError("expected an ASCII name without spaces (an international domain in its xn-- form)")
    return value


def _ascii_address(addr: str) -> str:
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


def _address(value: str) -> str:
    from email.headerregistry import Address
    from email.utils import parseaddr

    if "\r" in value or "\n" in value:
        raise ValueError("line breaks are not allowed")
    name, addr = parseaddr(value)
    if "@" not in addr:
        raise ValueError("expected an address such as 'News <news@example.it>'")
    ascii_addr = _ascii_address(addr)
    Address(display_name=name, addr_spec=ascii_addr)
    # Only the domain changes (to its xn-- form); the display name is kept as written.
    at = value.rfind(addr)
    return value[:at] + ascii_addr + value[at + len(addr):] if at >= 0 else str(Address(name, addr_spec=ascii_addr))


def _bare_address(value: str) -> str:
    from email.utils import parseaddr

    name, addr = parseaddr(value)
    if "\r" in value or "\n" in value or name or addr != value or "@" not in addr:
        raise ValueError("expected a bare address such as bounces@example.it")
    return _ascii_address(addr)


def _existing_file(value: str) -> str:
    if not Path(value).is_file():
        raise ValueError("no such file")
    return value


def _maildir(value: str) -> str:
    if not (Path(value) / "new").is_dir() or not (Path(value) / "cur").is_dir():
        raise ValueError("not a Maildir (no new/ and cur/ folders)")
    return value


def _limit(value: str) -> str:
    from limits import parse_many

    parse_many(value)
    return value


def _rate_storage(value: str) -> str:
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


def _text(value: str) -> str:
    return value


def _one_line(value: str) -> str:
    if "\r" in value or "\n" in value:
        raise ValueError("line breaks are not allowed")
    return value


# MAILER_<NAME> -> (config key, parser). Parsers raise ValueError with a reason.
VARIABLES: Mapping[str, Callable[[str], Any]] = {
    "DATABASE_URL": _database_url,
    "SECRET_KEY": _text,
    "BASE_URL": _base_url,
    "SMTP_URL": lambda v: _url(v, SMTP_SCHEMES),
    "FROM": _address,
    "FEEDS": _url_list,
    "DIGEST_SCHEDULE": _cron,
    "FEED_INTERVAL": _int_between(1, MAX_FEED_INTERVAL, "minutes between polls", " (a week)"),
    "TIMEZONE": _timezone,
    "LOCALE": _locale,
    "SMTP_CONNECTIONS": _int_between(1, MAX_SMTP_CONNECTIONS, "parallel SMTP connections"),
    "SEND_RATE": _rate,
    "CORS_ORIGINS": _origins,
    "DKIM_DOMAIN": _dkim_name,
    "DKIM_SELECTOR": _dkim_name,
    "DKIM_KEY_FILE": _existing_file,
    "SIGNUP_LIMIT": _limit,
    # Beyond the contract: where rate-limit counters live (mailer/ratelimit.py).
    "RATELIMIT_STORAGE": _rate_storage,
    "LOG_JSON": _flag,
    # Beyond the contract: where the development capture server listens.
    "CAPTURE_SMTP_PORT": _int_between(1, 65535, "a TCP port"),
    # Beyond the contract: proxies in front of the app (docs/deploy.md).
    "PROXY_FIX_HOPS": _hops,
    # Beyond the contract: the envelope sender, where bounces go (docs/deploy.md).
    "BOUNCE_ADDRESS": _bare_address,
    # Beyond the contract: the Maildir of the bounce address, read by the scheduler.
    "BOUNCE_MAILDIR": _maildir,
    # Beyond the contract: the site's identity in pages and mails.
    "SITE_NAME": _text,
    "SITE_URL": _base_url,
    "LOGO_URL": lambda v: _url(v, ("http", "https")),
    "POSTAL_ADDRESS": _one_line,
    "PRIVACY_URL": _text,
    "LIST_ID": _one_line,
}


def load_config(
    environ: Mapping[str, str], overrides: Mapping[str, Any] | None = None, instance_path: str | None = None
) -> dict[str, Any]:
    """Return the configuration for ``environ``, checked; raise ConfigError.

    Order: ``config/defaults.py``, ``config/<MAILER_ENV>.py``, the operator's
    ``<instance>/config.py`` if there is one (for settings without a variable,
    such as ``TOPICS``), the ``MAILER_*`` variables, then ``overrides`` (the
    tests' ``test_config``).
    """
    env = environ.get("MAILER_ENV", "development")
    if overrides and "ENV" in overrides:
        env = overrides["ENV"]
    if env not in ENVIRONMENTS:
        raise ConfigError(f"MAILER_ENV: expected one of {', '.join(ENVIRONMENTS)}, got {env!r}")
    config: dict[str, Any] = {}
    for module_name in ("config.defaults", f"config.{env}"):
        module = importlib.import_module(module_name)
        config.update({k: v for k, v in vars(module).items() if k.isupper()})
    config["ENV"] = env
    local = Path(instance_path or "", "config.py")
    if instance_path and local.is_file():
        namespace: dict[str, Any] = {}
        exec(compile(local.read_bytes(), str(local), "exec"), namespace)  # noqa: S102 - the operator's own file
        config.update({k: v for k, v in namespace.items() if k.isupper()})
    for name, parse in VARIABLES.items():
        raw = environ.get(f"MAILER_{name}")
        if raw is None or raw == "":
            continue
        try:
            config[name] = parse(raw.strip())
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"MAILER_{name}: {exc}{_shown(name, raw)}") from None
    config.update(overrides or {})
    _check_together(config)
    return config


def _shown(name: str, raw: str) -> str:
    """`` (got '...')`` for an error message: never a secret key, never a password in a URL."""
    if name in SECRET_VARIABLES:
        return ""
    shown = _URL_PASSWORD.sub(r"\1***@", raw)
    return f" (got {shown!r})"


def _check_together(config: dict[str, Any]) -> None:
    """Rules that involve several settings."""
    if not config.get("SECRET_KEY"):
        raise ConfigError("MAILER_SECRET_KEY: required when MAILER_ENV=production")
    if config["ENV"] == "production":
        _check_production_key(str(config["SECRET_KEY"]))
    dkim = [config.get(k) for k in ("DKIM_DOMAIN", "DKIM_SELECTOR", "DKIM_KEY_FILE")]
    if any(dkim) and not all(dkim):
        raise ConfigError(
            "MAILER_DKIM_DOMAIN: set MAILER_DKIM_DOMAIN, MAILER_DKIM_SELECTOR and MAILER_DKIM_KEY_FILE together,"
            " or none"
        )
    if all(dkim):
        _check_dkim_key(config)
    if config["ENV"] == "production" and not config.get("SMTP_URL"):
        raise ConfigError("MAILER_SMTP_URL: required when MAILER_ENV=production")


def _check_production_key(key: str) -> None:
    """Production tokens are signed with a key of the operator's own, long enough not to be guessed."""
    defaults = importlib.import_module("config.defaults")
    if key == defaults.SECRET_KEY:
        raise ConfigError(f"MAILER_SECRET_KEY: the public development key cannot sign production links: {KEY_ADVICE}")
    if len(key) < MIN_SECRET_KEY_LENGTH:
        raise ConfigError(f"MAILER_SECRET_KEY: too short ({len(key)} characters, at least {MIN_SECRET_KEY_LENGTH}):"
                          f" {KEY_ADVICE}")


def _check_dkim_key(config: Mapping[str, Any]) -> None:
    """The DKIM key loads and signs now, not at the first mail of a send."""
    from mailer.delivery.dkim import signer_from_config  # the delivery stage, only when DKIM is set

    try:
        signer = signer_from_config(config)
        if signer is not None:
            signer.sign(b"From: check@example.it\r\nSubject: check\r\n\r\ncheck\r\n")
    except Exception as exc:  # noqa: BLE001 - whatever is wrong with the key, it is refused here, in one line
        reason = " ".join(str(exc).split())[:300] or type(exc).__name__
        raise ConfigError(f"MAILER_DKIM_KEY_FILE: not a usable PEM private key: {reason}") from None
