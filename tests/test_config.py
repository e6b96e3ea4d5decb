"""Configuration: defaults, environment files, MAILER_* variables, bad values."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mailer.config import ConfigError, load_config

ROOT = Path(__file__).resolve().parent.parent


def test_defaults_follow_the_contract() -> None:
    config = load_config({})
    assert config["ENV"] == "development"
    assert config["DIGEST_SCHEDULE"] == "0 8 * * mon"
    assert config["FEED_INTERVAL"] == 60
    assert config["TIMEZONE"] == "Europe/Rome"
    assert config["LOCALE"] == "it"
    assert config["SEND_RATE"] == 0
    assert config["SIGNUP_LIMIT"] == "10/minute;100/hour"
    assert config["CORS_ORIGINS"] == []


def test_variables_override_defaults() -> None:
    config = load_config({
        "MAILER_FEEDS": "https://a.example/feed, https://b.example/rss  https://c.example/atom",
        "MAILER_SMTP_CONNECTIONS": "8",
        "MAILER_SEND_RATE": "12.5",
        "MAILER_LOCALE": "en",
        "MAILER_BASE_URL": "https://news.example.it/",
    })
    assert config["FEEDS"] == ["https://a.example/feed", "https://b.example/rss", "https://c.example/atom"]
    assert config["SMTP_CONNECTIONS"] == 8
    assert config["SEND_RATE"] == 12.5
    assert config["LOCALE"] == "en"
    assert config["BASE_URL"] == "https://news.example.it"


@pytest.mark.parametrize(("name", "value"), [
    ("MAILER_ENV", "staging"),
    ("MAILER_SMTP_URL", "http://mail.example.it"),
    ("MAILER_SMTP_URL", "smtp://mail.example.it:99999"),
    ("MAILER_DIGEST_SCHEDULE", "every monday"),
    ("MAILER_FEED_INTERVAL", "0"),
    ("MAILER_FEED_INTERVAL", "hourly"),
    ("MAILER_TIMEZONE", "Europe/Atlantis"),
    ("MAILER_LOCALE", "fr"),
    ("MAILER_SMTP_CONNECTIONS", "-1"),
    ("MAILER_SEND_RATE", "fast"),
    ("MAILER_FEEDS", "ftp://example.it/feed"),
    ("MAILER_FROM", "no address here"),
    ("MAILER_FROM", "News <a@example.it>\r\nBcc: victim@example.it"),
    ("MAILER_DATABASE_URL", "mysql://localhost/db"),
    ("MAILER_SIGNUP_LIMIT", "lots"),
    ("MAILER_FROM", "Notizie <è@example.it>"),  # a non-ASCII local part needs SMTPUTF8 everywhere
    ("MAILER_FROM", "Notizie <news@nodot>"),
    ("MAILER_BOUNCE_ADDRESS", "rimbalzi@città..it"),
    ("MAILER_RATELIMIT_STORAGE", "shared"),
    ("MAILER_RATELIMIT_STORAGE", "async+redis://127.0.0.1:6379"),
    ("MAILER_RATELIMIT_STORAGE", "memcached://127.0.0.1:11211"),  # pymemcache is not installed
    ("MAILER_DKIM_KEY_FILE", "/nonexistent/key.pem"),
])
def test_a_bad_value_names_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config({name: value})
    assert str(info.value).startswith(f"{name}:")


def test_an_international_domain_is_kept_in_its_ascii_form() -> None:
    """MAIL FROM and the From header take the xn-- form: an encoded-word in an address is not allowed."""
    config = load_config({"MAILER_FROM": '"Notizie, Città" <newsletter@città.it>',
                          "MAILER_BOUNCE_ADDRESS": "rimbalzi@città.it"})
    assert config["FROM"] == '"Notizie, Città" <newsletter@xn--citt-3na.it>'
    assert config["BOUNCE_ADDRESS"] == "rimbalzi@xn--citt-3na.it"


@pytest.mark.parametrize("value", ["database", "memory", "redis://127.0.0.1:6379/0"])
def test_rate_limit_storages(value: str) -> None:
    assert load_config({"MAILER_RATELIMIT_STORAGE": value})["RATELIMIT_STORAGE"] == value


def test_production_needs_a_secret_key_and_an_smtp_server() -> None:
    with pytest.raises(ConfigError, match=r"^MAILER_SECRET_KEY:"):
        load_config({"MAILER_ENV": "production", "MAILER_SMTP_URL": "smtp://mx.example.it:25"})
    with pytest.raises(ConfigError, match=r"^MAILER_SMTP_URL:"):
        load_config({"MAILER_ENV": "production", "MAILER_SECRET_KEY": "s3cret"})


def test_the_instance_config_file_sets_what_has_no_variable(tmp_path: Path) -> None:
    (tmp_path / "config.py").write_text('SITE_NAME = "HTML.it"\nDIGEST_MAX_ARTICLES = 12\nlowercase = 1\n')
    config = load_config({"MAILER_SITE_NAME": "Overridden"}, None, str(tmp_path))
    assert config["DIGEST_MAX_ARTICLES"] == 12
    assert config["SITE_NAME"] == "Overridden"  # variables win over the file
    assert "lowercase" not in config
    assert load_config({}, None, str(tmp_path))["SITE_NAME"] == "HTML.it"


def test_identity_values_refuse_line_breaks() -> None:
    with pytest.raises(ConfigError, match=r"^MAILER_LIST_ID:"):
        load_config({"MAILER_LIST_ID": "News <news.example.it>\r\nBcc: x@example.it"})


def test_dkim_needs_all_three_or_none(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^MAILER_DKIM_DOMAIN:"):
        load_config({"MAILER_DKIM_DOMAIN": "example.it"})


def test_the_app_refuses_to_start_with_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", "db", "upgrade"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={"PATH": "/usr/bin:/bin", "MAILER_FEED_INTERVAL": "soon", "MAILER_INSTANCE_PATH": str(tmp_path)},
    )
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert lines == ["error: MAILER_FEED_INTERVAL: invalid literal for int() with base 10: 'soon' (got 'soon')"]
