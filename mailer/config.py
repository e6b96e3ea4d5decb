"""Configuration: defaults, then the file for ``MAILER_ENV``, then ``MAILER_*``.

Every variable of the public contract is parsed and checked here, at start-up
(the parsers of single values are in ``config_values``), so that a bad value
stops the app with one line naming the variable instead of failing later in
the middle of a send.

The environment is resolved here too (``resolve_env``), and only here:
development is what ``make run`` starts, never what a forgotten variable
gives a server (docs/deploy.md, "Development or production").
"""

from __future__ import annotations

import enum
import importlib
import os
import re
import secrets
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from mailer import config_values as values
from mailer.config_values import LOCALES, loopback_host, loopback_url

ENVIRONMENTS = ("development", "production", "testing")
MAX_FEED_INTERVAL = 7 * 24 * 60  # minutes: a week
MAX_SMTP_CONNECTIONS = 100
MIN_SECRET_KEY_LENGTH = 16
KEY_ADVICE = "use e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
# The development key of earlier versions, published in their code: never a production key.
PUBLIC_DEV_KEY = "dev-only-secret-key-do-not-use-in-production"
# Where a development (or testing) instance keeps the random key made for it.
DEV_KEY_FILE = "development-secret-key"
# What production requires that development does without.
PRODUCTION_NEEDS = ("MAILER_SECRET_KEY:", "MAILER_SMTP_URL:")
# Variables whose value an error message must not repeat.
SECRET_VARIABLES = frozenset({"SECRET_KEY"})
# The password in a URL (scheme://user:password@host), hidden in error messages.
_URL_PASSWORD = re.compile(r"(://[^/@:]*:)[^/@]*@")

__all__ = ["ENVIRONMENTS", "LOCALES", "ConfigError", "Launch", "load_config"]


class ConfigError(ValueError):
    """A configuration value is wrong; the message names the variable."""


class Launch(enum.Enum):
    """What builds the app: it decides what an unset ``MAILER_ENV`` means."""

    # The flask CLI on this machine: `make run` (db upgrade, devserver) and every command.
    COMMAND = "a flask command"
    # Anything else: gunicorn, uwsgi, waitress, mod_wsgi, `flask run` beyond loopback...
    SERVER = "a WSGI server"


def detect_launch() -> Launch:
    """COMMAND when the flask CLI is building the app, else SERVER.

    The CLI loads ``wsgi:app`` inside its own click context, which carries its
    ``ScriptInfo``; a WSGI server imports the module with no such context.
    ``flask run --host 0.0.0.0`` serves others, so it counts as a server.
    """
    import click
    from flask.cli import ScriptInfo

    context = click.get_current_context(silent=True)
    if context is None or context.find_object(ScriptInfo) is None:
        return Launch.SERVER
    if context.info_name == "run" and not loopback_host(str(context.params.get("host") or "127.0.0.1")):
        return Launch.SERVER
    return Launch.COMMAND


# MAILER_<NAME> -> (config key, parser). Parsers raise ValueError with a reason.
VARIABLES: Mapping[str, Callable[[str], Any]] = {
    "DATABASE_URL": values.database_url,
    "SECRET_KEY": values.text,
    "BASE_URL": values.base_url,
    "SMTP_URL": values.smtp_url,
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
    # Beyond the contract: days a sent transactional mail stays in the outbox table.
    "OUTBOX_RETENTION_DAYS": values.int_between(1, 3650, "days a sent confirmation mail is kept"),
    # Beyond the contract: the site's identity in pages and mails.
    "SITE_NAME": values.text,
    "SITE_URL": values.base_url,
    "LOGO_URL": lambda v: values.url(v, ("http", "https")),
    "POSTAL_ADDRESS": values.one_line,
    "PRIVACY_URL": values.text,
    "LIST_ID": values.one_line,
}


def load_config(
    environ: Mapping[str, str], overrides: Mapping[str, Any] | None = None, instance_path: str | None = None,
    launch: Launch | None = None,
) -> dict[str, Any]:
    """Return the configuration for ``environ``, checked; raise ConfigError.

    Order: ``config/defaults.py``, ``config/<MAILER_ENV>.py``, the operator's
    ``<instance>/config.py`` if there is one (for settings without a variable,
    such as ``TOPICS``), the ``MAILER_*`` variables, then ``overrides`` (the
    tests' ``test_config``). ``launch`` (detected when None) and the base URL
    decide the environment when ``MAILER_ENV`` is unset (``resolve_env``).
    """
    layers: list[Mapping[str, Any]] = []
    local = Path(instance_path or "", "config.py")
    if instance_path and local.is_file():
        namespace: dict[str, Any] = {}
        exec(compile(local.read_bytes(), str(local), "exec"), namespace)  # noqa: S102 - the operator's own file
        layers.append({k: v for k, v in namespace.items() if k.isupper() and k != "ENV"})
    variables: dict[str, Any] = {}
    for name, parse in VARIABLES.items():
        raw = environ.get(f"MAILER_{name}")
        if raw is None or raw == "":
            continue
        try:
            variables[name] = parse(raw.strip())
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"MAILER_{name}: {exc}{_shown(name, raw)}") from None
    layers += [variables, overrides or {}]
    defaults = _settings("config.defaults")
    base_url = str(next((layer["BASE_URL"] for layer in reversed(layers) if "BASE_URL" in layer),
                        defaults["BASE_URL"]))
    env, why = resolve_env(environ, overrides or {}, base_url, launch or detect_launch())
    config = {**defaults, **_settings(f"config.{env}"), "ENV": env}
    for layer in layers:
        config.update(layer)
    config["ENV"] = env
    try:
        _check_together(config)
    except ConfigError as exc:
        if why is None or not str(exc).startswith(PRODUCTION_NEEDS):
            raise
        # Say why production applies: the operator may not know it does.
        raise ConfigError(f"{exc} (MAILER_ENV is not set and {why}: production applies)") from None
    if not config.get("SECRET_KEY"):
        config["SECRET_KEY"] = instance_key(instance_path)
    return config


def resolve_env(environ: Mapping[str, str], overrides: Mapping[str, Any], base_url: str,
                launch: Launch) -> tuple[str, str | None]:
    """The environment, and why production applies when ``MAILER_ENV`` is unset (else None).

    Development is what `make run` starts: a flask command on this machine,
    links on loopback. Anything else without ``MAILER_ENV`` is production,
    which refuses to start without its own key and SMTP server. An explicit
    development with public links is refused: it would mail links to the
    development app. ``overrides["ENV"]`` is the caller's code (the tests).
    """
    if "ENV" in overrides:
        env = str(overrides["ENV"])
        if env not in ENVIRONMENTS:
            raise ConfigError(f"MAILER_ENV: expected one of {', '.join(ENVIRONMENTS)}, got {env!r}")
        return env, None
    given = environ.get("MAILER_ENV", "").strip()
    if given:
        if given not in ENVIRONMENTS:
            raise ConfigError(f"MAILER_ENV: expected one of {', '.join(ENVIRONMENTS)}, got {given!r}")
        if given == "development" and not loopback_url(base_url):
            raise ConfigError(f"MAILER_ENV: development serves this machine only, but MAILER_BASE_URL is {base_url}:"
                              " set MAILER_ENV=production to serve it (docs/deploy.md)")
        return given, None
    if not loopback_url(base_url):
        return "production", f"MAILER_BASE_URL ({base_url}) is not loopback"
    if launch is Launch.SERVER:
        return "production", "the app is served by a WSGI server, not by `make run`"
    return "development", None


def check_listening(env: str, hosts: list[str]) -> None:
    """Development and testing listen on loopback only; raise ConfigError naming MAILER_ENV.

    ``hosts`` are the addresses a server binds (``0.0.0.0``, ``[::1]:8000``,
    ``unix:/run/x.sock``): a unix socket may be a proxy's door to the world.
    """
    if env == "production":
        return
    for host in hosts:
        if not loopback_host(_bound_host(host)):
            raise ConfigError(f"MAILER_ENV: {env} serves this machine only, not {host}: listen on 127.0.0.1,"
                              " or set MAILER_ENV=production to serve others (docs/deploy.md)")


def _bound_host(bind: str) -> str:
    """The host of a bind address (``[::1]:8000`` -> ``::1``; a unix socket or fd gives its own text)."""
    if bind.startswith(("unix:", "fd://")):
        return bind
    if bind.startswith("["):
        return bind[1:].split("]", 1)[0]
    return bind.rsplit(":", 1)[0] if bind.count(":") == 1 else bind


def instance_key(instance_path: str | None) -> str:
    """The random key of this instance, made on first use and kept (mode 0600) in its folder.

    A constant development key would be public: anyone could forge a reader's
    links on any development install. Like Django's startproject, each
    instance gets its own. Without an instance folder, a key for this process.
    """
    if not instance_path:
        return secrets.token_urlsafe(32)
    path = Path(instance_path, DEV_KEY_FILE)
    try:
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            # Written whole under another name, then linked: two processes
            # starting at once keep the same key, and none reads half of one.
            draft = path.with_name(f".{DEV_KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
            descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w", encoding="ascii") as handle:
                handle.write(secrets.token_urlsafe(32) + "\n")
            try:
                os.link(draft, path)
            except FileExistsError:
                pass
            finally:
                draft.unlink()
        key = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeError) as exc:
        raise ConfigError(f"MAILER_SECRET_KEY: cannot keep a development key in {path}"
                          f" ({getattr(exc, 'strerror', None) or exc}): set MAILER_SECRET_KEY") from None
    if not key:
        raise ConfigError(f"MAILER_SECRET_KEY: {path} is empty: delete it (a new key is made) or set MAILER_SECRET_KEY")
    return key


def _settings(module_name: str) -> dict[str, Any]:
    """The upper-case names of a file in ``config/``."""
    return {k: v for k, v in vars(importlib.import_module(module_name)).items() if k.isupper()}


def _shown(name: str, raw: str) -> str:
    """`` (got '...')`` for an error message: never a secret key, never a password in a URL."""
    if name in SECRET_VARIABLES:
        return ""
    shown = _URL_PASSWORD.sub(r"\1***@", raw)
    return f" (got {shown!r})"


def _check_together(config: dict[str, Any]) -> None:
    """Rules that involve several settings."""
    if config["ENV"] == "production":
        if not config.get("SECRET_KEY"):
            raise ConfigError("MAILER_SECRET_KEY: required when MAILER_ENV=production")
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
    if key == PUBLIC_DEV_KEY:
        raise ConfigError(f"MAILER_SECRET_KEY: the public development key cannot sign production links: {KEY_ADVICE}")
    if len(key) < MIN_SECRET_KEY_LENGTH:
        raise ConfigError(f"MAILER_SECRET_KEY: too short ({len(key)} characters, at least {MIN_SECRET_KEY_LENGTH}):"
                          f" {KEY_ADVICE}")


def _check_dkim_key(config: Mapping[str, Any]) -> None:
    """The DKIM key loads and signs now, not at the first mail of a send."""
    from mailer.dkim import signer_from_config  # the delivery stage, only when DKIM is set

    try:
        signer = signer_from_config(config)
        if signer is not None:
            signer.sign(b"From: check@example.it\r\nSubject: check\r\n\r\ncheck\r\n")
    except Exception as exc:  # noqa: BLE001 - whatever is wrong with the key, it is refused here, in one line
        reason = " ".join(str(exc).split())[:300] or type(exc).__name__
        raise ConfigError(f"MAILER_DKIM_KEY_FILE: not a usable PEM private key: {reason}") from None
