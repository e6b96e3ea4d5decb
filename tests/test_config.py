"""Configuration: defaults, environment files, MAILER_* variables, bad values."""

from __future__ import annotations

import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mailer.config import PUBLIC_DEV_KEY as DEV_SECRET_KEY
from mailer.config import ConfigError, Launch, check_listening, load_config

ROOT = Path(__file__).resolve().parent.parent


def load(environ: dict[str, str], instance: str | None = None) -> dict[str, Any]:
    """The configuration as a flask command of `make run` loads it (development when MAILER_ENV is unset)."""
    return load_config(environ, None, instance, Launch.COMMAND)


def test_defaults_follow_the_contract() -> None:
    config = load({})
    assert config["ENV"] == "development"
    assert config["DIGEST_SCHEDULE"] == "0 8 * * mon"
    assert config["FEED_INTERVAL"] == 60
    assert config["TIMEZONE"] == "Europe/Rome"
    assert config["LOCALE"] == "it"
    assert config["SEND_RATE"] == 0
    assert config["SIGNUP_LIMIT"] == "10/minute;100/hour"
    assert config["CORS_ORIGINS"] == []


def test_variables_override_defaults() -> None:
    config = load({
        "MAILER_FEEDS": "https://a.example/feed, https://b.example/rss  https://c.example/atom",
        "MAILER_SMTP_CONNECTIONS": "8",
        "MAILER_SEND_RATE": "12.5",
        "MAILER_LOCALE": "en",
        "MAILER_BASE_URL": "https://news.example.it/",
        "MAILER_ENV": "production", "MAILER_SECRET_KEY": "a-long-enough-s3cret", "MAILER_SMTP_URL": "smtp://mx.example.it",
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
    # The sender's own parser refuses it: checked at start, not at the first mail.
    ("MAILER_SMTP_URL", "smtps://:s3cret@mail.example.it"),
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
    ("MAILER_DATABASE_URL", "garbage"),
    ("MAILER_DATABASE_URL", "postgresql+psycopg2://postgres@127.0.0.1/x"),  # psycopg2 is not installed
    ("MAILER_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1/x"),
    ("MAILER_DATABASE_URL", "postgresql+nosuchdriver://postgres@127.0.0.1/x"),
    ("MAILER_FEED_INTERVAL", "99999999999"),  # the scheduler died of OverflowError
    ("MAILER_FEED_INTERVAL", "10081"),  # more than a week
    ("MAILER_SEND_RATE", "nan"),
    ("MAILER_SEND_RATE", "inf"),
    ("MAILER_SEND_RATE", "-1"),
    ("MAILER_SMTP_CONNECTIONS", "100000"),
    ("MAILER_SMTP_CONNECTIONS", "101"),
    ("MAILER_DIGEST_SCHEDULE", "0 8 31 2 *"),  # 31 February: never
    ("MAILER_DIGEST_SCHEDULE", "0 8 30 2 *"),
    ("MAILER_LOG_JSON", "maybe"),
    ("MAILER_CORS_ORIGINS", "https://www.example.it/news/"),  # a path: it never matches an Origin header
    ("MAILER_CORS_ORIGINS", "https://www.example.it https://shop.example.it/?x=1"),
    ("MAILER_CORS_ORIGINS", "https://www.example.it#top"),
    ("MAILER_CORS_ORIGINS", "https://user@www.example.it"),
    ("MAILER_CORS_ORIGINS", "www.example.it"),
    ("MAILER_CAPTURE_SMTP_PORT", "70000"),
    ("MAILER_DKIM_SELECTOR", "news 2026"),
])
def test_a_bad_value_names_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError) as info:
        load({name: value})
    assert str(info.value).startswith(f"{name}:")


def test_an_international_domain_is_kept_in_its_ascii_form() -> None:
    """MAIL FROM and the From header take the xn-- form: an encoded-word in an address is not allowed."""
    config = load({"MAILER_FROM": '"Notizie, Città" <newsletter@città.it>',
                          "MAILER_BOUNCE_ADDRESS": "rimbalzi@città.it"})
    assert config["FROM"] == '"Notizie, Città" <newsletter@xn--citt-3na.it>'
    assert config["BOUNCE_ADDRESS"] == "rimbalzi@xn--citt-3na.it"


@pytest.mark.parametrize("value", ["database", "memory", "redis://127.0.0.1:6379/0"])
def test_rate_limit_storages(value: str) -> None:
    assert load({"MAILER_RATELIMIT_STORAGE": value})["RATELIMIT_STORAGE"] == value


def test_production_needs_a_secret_key_and_an_smtp_server() -> None:
    with pytest.raises(ConfigError, match=r"^MAILER_SECRET_KEY:"):
        load({"MAILER_ENV": "production", "MAILER_SMTP_URL": "smtp://mx.example.it:25"})
    with pytest.raises(ConfigError, match=r"^MAILER_SMTP_URL:"):
        load({"MAILER_ENV": "production", "MAILER_SECRET_KEY": "a-long-enough-s3cret"})


@pytest.mark.parametrize("key", [DEV_SECRET_KEY, "x", "fifteen-chars!!"])
def test_production_refuses_the_public_dev_key_and_a_short_one(key: str) -> None:
    with pytest.raises(ConfigError) as info:
        load({"MAILER_ENV": "production", "MAILER_SMTP_URL": "smtp://mx.example.it:25",
                     "MAILER_SECRET_KEY": key})
    message = str(info.value)
    assert message.startswith("MAILER_SECRET_KEY:")
    assert "secrets.token_urlsafe(32)" in message
    assert key not in message  # a key is never repeated in a log
    # Development takes any key it is given.
    assert load({"MAILER_SECRET_KEY": key})["SECRET_KEY"] == key
    production = {"MAILER_ENV": "production", "MAILER_SMTP_URL": "smtp://mx.example.it:25"}
    assert load({**production, "MAILER_SECRET_KEY": "sixteen-chars!!!"})["SECRET_KEY"] == "sixteen-chars!!!"


@pytest.mark.parametrize("given", ["postgresql://mailer@db.example.it:5432/news", "postgres://mailer@db.example.it:5432/news"])
def test_a_plain_postgresql_url_means_psycopg_3(given: str) -> None:
    """``postgresql://`` alone would make SQLAlchemy import psycopg2, which is not installed."""
    config = load({"MAILER_DATABASE_URL": given})
    assert config["DATABASE_URL"] == "postgresql+psycopg://mailer@db.example.it:5432/news"


def test_a_password_in_a_bad_url_is_not_repeated() -> None:
    with pytest.raises(ConfigError) as info:
        load({"MAILER_DATABASE_URL": "postgresql+psycopg2://mailer:hunter2@db.example.it/news"})
    assert "hunter2" not in str(info.value)
    assert "psycopg2" in str(info.value) and "mailer:***@db.example.it" in str(info.value)


def test_cors_origins_are_spelled_as_browsers_send_them() -> None:
    config = load({"MAILER_CORS_ORIGINS": "https://WWW.Example.it/, https://shop.example.it:443 http://[::1]:8080"})
    assert config["CORS_ORIGINS"] == ["https://www.example.it", "https://shop.example.it", "http://[::1]:8080"]


@pytest.mark.parametrize(("value", "expected"), [
    ("1", True), ("true", True), ("Yes", True), ("ON", True), ("0", False), ("false", False), ("no", False),
    ("off", False),
])
def test_log_json_words(value: str, expected: bool) -> None:
    assert load({"MAILER_LOG_JSON": value})["LOG_JSON"] is expected


def test_bounds_keep_their_ends() -> None:
    config = load({"MAILER_FEED_INTERVAL": "10080", "MAILER_SMTP_CONNECTIONS": "100",
                          "MAILER_DIGEST_SCHEDULE": "0 8 29 2 *"})  # 29 February: leap years only, still fires
    assert (config["FEED_INTERVAL"], config["SMTP_CONNECTIONS"]) == (10080, 100)


def _dkim(key_file: Path) -> dict[str, str]:
    return {"MAILER_DKIM_DOMAIN": "example.it", "MAILER_DKIM_SELECTOR": "news2026",
            "MAILER_DKIM_KEY_FILE": str(key_file)}


@pytest.mark.parametrize("content", [
    b"not a key at all\n",
    b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    b"-----BEGIN RSA PRIVATE KEY-----\nbm90IGEga2V5\n-----END RSA PRIVATE KEY-----\n",
    b"-----BEGIN CERTIFICATE-----\nbm90IGEga2V5\n-----END CERTIFICATE-----\n",
])
def test_a_dkim_key_file_that_is_not_a_private_key_is_refused_at_start(tmp_path: Path, content: bytes) -> None:
    key = tmp_path / "dkim.pem"
    key.write_bytes(content)
    with pytest.raises(ConfigError, match=r"^MAILER_DKIM_KEY_FILE: ") as info:
        load(_dkim(key))
    assert "\n" not in str(info.value)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_a_real_dkim_key_is_accepted(tmp_path: Path) -> None:
    key = tmp_path / "dkim.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", str(key)], check=True, capture_output=True)
    assert load(_dkim(key))["DKIM_KEY_FILE"] == str(key)


def test_the_instance_config_file_sets_what_has_no_variable(tmp_path: Path) -> None:
    (tmp_path / "config.py").write_text('SITE_NAME = "HTML.it"\nDIGEST_MAX_ARTICLES = 12\nlowercase = 1\n')
    config = load({"MAILER_SITE_NAME": "Overridden"}, str(tmp_path))
    assert config["DIGEST_MAX_ARTICLES"] == 12
    assert config["SITE_NAME"] == "Overridden"  # variables win over the file
    assert "lowercase" not in config
    assert load({}, str(tmp_path))["SITE_NAME"] == "HTML.it"


def test_identity_values_refuse_line_breaks() -> None:
    with pytest.raises(ConfigError, match=r"^MAILER_LIST_ID:"):
        load({"MAILER_LIST_ID": "News <news.example.it>\r\nBcc: x@example.it"})


def test_dkim_needs_all_three_or_none(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^MAILER_DKIM_DOMAIN:"):
        load({"MAILER_DKIM_DOMAIN": "example.it"})


@pytest.mark.parametrize(("name", "value", "line"), [
    ("MAILER_DATABASE_URL", "garbage",
     "error: MAILER_DATABASE_URL: not a database URL: expected e.g. postgresql+psycopg://user@host/db"
     " or sqlite:////path/to/file.sqlite3 (got 'garbage')"),
    ("MAILER_DATABASE_URL", "postgresql+psycopg2://postgres:pw@127.0.0.1/x",
     "error: MAILER_DATABASE_URL: the database driver 'psycopg2' is not installed: use postgresql+psycopg://"
     " (psycopg 3) or sqlite:// (got 'postgresql+psycopg2://postgres:***@127.0.0.1/x')"),
    ("MAILER_FEED_INTERVAL", "99999999999",
     "error: MAILER_FEED_INTERVAL: expected minutes between polls: 1 to 10080 (a week) (got '99999999999')"),
])
@pytest.mark.slow
def test_a_value_that_used_to_crash_is_one_line_at_start(tmp_path: Path, name: str, value: str, line: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", "feeds", "fetch"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={"PATH": "/usr/bin:/bin", name: value, "MAILER_INSTANCE_PATH": str(tmp_path)},
    )
    assert (result.returncode, result.stderr.strip().splitlines(), result.stdout) == (2, [line], "")


def test_the_app_refuses_to_start_with_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", "db", "upgrade"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={"PATH": "/usr/bin:/bin", "MAILER_FEED_INTERVAL": "soon", "MAILER_INSTANCE_PATH": str(tmp_path)},
    )
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert lines == ["error: MAILER_FEED_INTERVAL: invalid literal for int() with base 10: 'soon' (got 'soon')"]


PRODUCTION_READY = {"MAILER_SECRET_KEY": "a-long-enough-s3cret", "MAILER_SMTP_URL": "smtp://mx.example.it:25"}


@pytest.mark.parametrize(("environ", "launch", "env"), [
    ({}, Launch.COMMAND, "development"),  # make run: the flask CLI, links on loopback
    ({"MAILER_BASE_URL": "http://localhost:5001"}, Launch.COMMAND, "development"),
    ({"MAILER_BASE_URL": "http://[::1]:5000"}, Launch.COMMAND, "development"),
    ({"MAILER_BASE_URL": "http://127.0.0.2:5000"}, Launch.COMMAND, "development"),
    ({**PRODUCTION_READY}, Launch.SERVER, "production"),  # gunicorn wsgi:app with MAILER_ENV forgotten
    ({**PRODUCTION_READY, "MAILER_BASE_URL": "https://news.example.it"}, Launch.COMMAND, "production"),
    ({**PRODUCTION_READY, "MAILER_BASE_URL": "http://192.168.1.10:5000"}, Launch.COMMAND, "production"),
    ({**PRODUCTION_READY, "MAILER_BASE_URL": "http://127.0.0.1.example.it"}, Launch.COMMAND, "production"),
    ({"MAILER_ENV": "development"}, Launch.SERVER, "development"),  # asked for: loopback only (check_listening)
    ({"MAILER_ENV": "testing"}, Launch.SERVER, "testing"),
])
def test_development_is_never_reached_by_accident(environ: dict[str, str], launch: Launch, env: str) -> None:
    assert load_config(environ, None, None, launch)["ENV"] == env


SERVED = "the app is served by a WSGI server, not by `make run`"


@pytest.mark.parametrize(("environ", "launch", "why"), [
    ({}, Launch.SERVER, SERVED),
    ({"MAILER_BASE_URL": "https://news.example.it"}, Launch.COMMAND,
     "MAILER_BASE_URL (https://news.example.it) is not loopback"),
    ({"MAILER_SECRET_KEY": "a-long-enough-s3cret"}, Launch.SERVER, SERVED),
])
def test_implied_production_says_why_in_the_same_line(environ: dict[str, str], launch: Launch, why: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(environ, None, None, launch)
    message = str(info.value)
    assert message.startswith(("MAILER_SECRET_KEY: required", "MAILER_SMTP_URL: required"))
    assert message.endswith(f"(MAILER_ENV is not set and {why}: production applies)")
    assert "\n" not in message


def test_explicit_development_with_public_links_is_refused() -> None:
    with pytest.raises(ConfigError) as info:
        load({"MAILER_ENV": "development", "MAILER_BASE_URL": "https://news.example.it"})
    assert str(info.value).startswith("MAILER_ENV: development serves this machine only, but MAILER_BASE_URL is"
                                      " https://news.example.it")


@pytest.mark.parametrize(("env", "hosts", "refused"), [
    ("development", ["127.0.0.1"], False), ("development", ["::1", "localhost", "[::1]:8000", "127.0.0.1:8000"], False),
    ("development", ["0.0.0.0"], True), ("development", ["0.0.0.0:8000"], True), ("development", [":8000"], True),
    ("development", ["192.168.1.10"], True), ("development", ["unix:/run/mailer.sock"], True),
    ("testing", ["0.0.0.0:8000"], True), ("production", ["0.0.0.0:8000", "unix:/run/mailer.sock"], False),
])
def test_development_listens_on_loopback_only(env: str, hosts: list[str], refused: bool) -> None:
    if refused:
        with pytest.raises(ConfigError, match=rf"^MAILER_ENV: {env} serves this machine only"):
            check_listening(env, hosts)
    else:
        check_listening(env, hosts)


def test_the_development_key_is_made_once_per_instance_and_kept_private(tmp_path: Path) -> None:
    first, second = tmp_path / "one", tmp_path / "two"
    key = load({}, str(first))["SECRET_KEY"]
    assert key != DEV_SECRET_KEY and len(key) >= 32
    assert load({}, str(first))["SECRET_KEY"] == key  # kept: links mailed yesterday still work
    assert load({}, str(second))["SECRET_KEY"] not in (key, DEV_SECRET_KEY)  # another install, another key
    kept = first / "development-secret-key"
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert [p.name for p in first.iterdir()] == ["development-secret-key"]  # no draft left behind
    assert load({"MAILER_SECRET_KEY": "my-own"}, str(first))["SECRET_KEY"] == "my-own"
    # Testing too; without an instance folder, a key for the process, never the public constant.
    assert load({"MAILER_ENV": "testing"}, str(first))["SECRET_KEY"] == key
    assert load({}, None)["SECRET_KEY"] not in (DEV_SECRET_KEY, load({}, None)["SECRET_KEY"])


def test_two_processes_starting_at_once_keep_the_same_key(tmp_path: Path) -> None:
    code = ("import sys; from mailer.config import Launch, load_config; "
            "print(load_config({}, None, sys.argv[1], Launch.COMMAND)['SECRET_KEY'])")
    processes = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], cwd=ROOT, stdout=subprocess.PIPE,
                                  text=True) for _ in range(6)]
    keys = {process.communicate(timeout=60)[0].strip() for process in processes}
    assert len(keys) == 1 and (tmp_path / "development-secret-key").read_text().strip() in keys


def test_an_unwritable_instance_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ConfigError, match=r"^MAILER_SECRET_KEY: cannot keep a development key in "):
        load({}, str(blocker / "instance"))


def test_testing_from_the_environment_relaxes_nothing() -> None:
    config = load({"MAILER_ENV": "testing"})
    assert config.get("WTF_CSRF_ENABLED", True) is True
    assert config.get("RATELIMIT_ENABLED", True) is True
    assert not config.get("SHOW_CAPTURED_MAIL")


def test_the_configuration_imports_no_stage() -> None:
    """``mailer/config.py`` is shared by every stage: it checks the SMTP URL and the DKIM key
    with neutral modules (``mailer.smtpurl``, ``mailer.dkim``), never through ``delivery/``."""
    import ast

    stages = ("mailer.subscriptions", "mailer.feeds", "mailer.digest", "mailer.delivery", "mailer.admin")
    for module in ("config.py", "config_values.py", "smtpurl.py", "dkim.py"):
        tree = ast.parse((Path(__file__).parents[1] / "mailer" / module).read_text())
        imported = [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
        imported += [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
        assert not [name for name in imported if name.startswith(stages)], module
