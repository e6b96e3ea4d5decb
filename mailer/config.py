"""Configuration: defaults, then the file for ``MAILER_ENV``, then ``MAILER_*``.

Every variable of the public contract is parsed and checked here, at start-up
(the parsers of single values are in ``config_values``), so that a bad value
stops the app with one line naming the variable instead of failing later in
the middle of a send.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from mailer import config_values as values
from mailer.config_values import LOCALES

ENVIRONMENTS = ("development", "production", "testing")
SMTP_SCHEMES = ("smtp", "smtp+starttls", "smtps")
MAX_FEED_INTERVAL = 7 * 24 * 60  # minutes: a week
MAX_SMTP_CONNECTIONS = 100
MIN_SECRET_KEY_LENGTH = 16
KEY_ADVICE = "use e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
# Variables whose value an error message must not repeat.
SECRET_VARIABLES = frozenset({"SECRET_KEY"})
# The password in a URL (scheme://user:password@host), hidden in error messages.
_URL_PASSWORD = re.compile(r"(://[^/@:]*:)[^/@]*@")

__all__ = ["ENVIRONMENTS", "LOCALES", "ConfigError", "load_config"]


class ConfigError(ValueError):
    """A configuration value is wrong; the message names the variable."""


# MAILER_<NAME> -> (config key, parser). Parsers raise ValueError with a reason.
VARIABLES: Mapping[str, Callable[[str], Any]] = {
    "DATABASE_URL": values.database_url,
    "SECRET_KEY": values.text,
    "BASE_URL": values.base_url,
    "SMTP_URL": lambda v: values.url(v, SMTP_SCHEMES),
    "FROM": values.address,
    "FEEDS": values.url_list,
    "DIGEST_SCHEDULE": values.cron,
    "FEED_INTERVAL": values.int_between(1, MAX_FEED_INTERVAL, "minutes between polls", " (a week)"),
    "TIMEZONE": values.timezone,
    "LOCALE": values.locale,
    "SMTP_CONNECTIONS": values.int_between(1, MAX_SMTP_CONNECTIONS, "parallel SMTP connections"),
    "SEND_RATE": values.rate,
    "CORS_ORIGINS": values.origins,
    "DKIM_DOMAIN": values.dkim_name,
    "DKIM_SELECTOR": values.dkim_name,
    "DKIM_KEY_FILE": values.existing_file,
    "SIGNUP_LIMIT": values.limit,
    "FEED_ALLOW_NETWORKS": values.networks,
    # Beyond the contract: where rate-limit counters live (mailer/ratelimit.py).
    "RATELIMIT_STORAGE": values.rate_storage,
    "LOG_JSON": values.flag,
    # Beyond the contract: where the development capture server listens.
    "CAPTURE_SMTP_PORT": values.int_between(1, 65535, "a TCP port"),
    # Beyond the contract: proxies in front of the app (docs/deploy.md).
    "PROXY_FIX_HOPS": values.hops,
    # Beyond the contract: the envelope sender, where bounces go (docs/deploy.md).
    "BOUNCE_ADDRESS": values.bare_address,
    # Beyond the contract: the Maildir of the bounce address, read by the scheduler.
    "BOUNCE_MAILDIR": values.maildir,
    # Beyond the contract: days a read report mail is kept in that Maildir.
    "BOUNCE_RETENTION_DAYS": values.int_between(1, 3650, "days a read bounce mail is kept"),
    # Beyond the contract: the site's identity in pages and mails.
    "SITE_NAME": values.text,
    "SITE_URL": values.base_url,
    "LOGO_URL": lambda v: values.url(v, ("http", "https")),
    "POSTAL_ADDRESS": values.one_line,
    "PRIVACY_URL": values.text,
    "LIST_ID": values.one_line,
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
    try:  # also when set by a config file or an override, not only by the variable
        config["FEED_ALLOW_NETWORKS"] = values.networks(config.get("FEED_ALLOW_NETWORKS") or ())
    except ValueError as exc:
        raise ConfigError(f"MAILER_FEED_ALLOW_NETWORKS: {exc}") from None
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
