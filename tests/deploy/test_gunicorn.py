"""The web app under ``gunicorn -w 2 wsgi:app`` (with gunicorn.conf.py), as deployed."""

from __future__ import annotations

import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def environment(database_url: str, smtp_url: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILER_")}
    env.update({
        "MAILER_ENV": "production", "MAILER_SECRET_KEY": "a-real-secret-for-the-test",
        "MAILER_DATABASE_URL": database_url, "MAILER_SMTP_URL": smtp_url,
        "MAILER_BASE_URL": "https://news.example.it", "MAILER_FROM": "Notizie <newsletter@example.it>",
        "MAILER_INSTANCE_PATH": str(tmp_path / "instance"),
    })
    env.update(extra)
    return env


@pytest.fixture
def deployed_database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """SQLite: a brand-new file, migrated; PostgreSQL: the suite's database."""
    if request.config.getoption("--db") == "postgresql":
        url: str = request.getfixturevalue("database_url")
        return url
    path = tmp_path / "fresh.sqlite3"
    url = f"sqlite:///{path}"
    env = environment(url, "smtp://127.0.0.1:25", tmp_path)
    done = subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "db", "upgrade"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    # As fresh as a file can be: `db upgrade` left it in WAL mode; put it back,
    # so the two workers' first connections race to switch it, the moment
    # "database is locked" used to kill a worker (busy_timeout comes first now).
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode = DELETE").fetchone() == ("delete",)
    return url


@contextmanager
def gunicorn(env: dict[str, str], workers: int = 2) -> Iterator[tuple[str, list[str]]]:
    """``gunicorn -w N wsgi:app`` on a free port, answering /healthz; yields (base URL, [its output])."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-w", str(workers), "-b", f"127.0.0.1:{port}", "wsgi:app"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    base, output = f"http://127.0.0.1:{port}", list[str]()
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "gunicorn did not answer"
            assert server.poll() is None, server.communicate()[0]
            time.sleep(0.1)
        yield base, output
    finally:
        server.send_signal(signal.SIGTERM)
        output.append(server.communicate(timeout=30)[0])
    assert server.returncode == 0, output[0]


def test_two_workers_start_cleanly_and_answer_healthz(deployed_database: str, smtp_server, tmp_path: Path) -> None:
    env = environment(deployed_database, smtp_server.url, tmp_path)
    with gunicorn(env) as (base, log):
        # Many requests at once, spread over both workers and their threads.
        url = f"{base}/healthz"
        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(lambda _: httpx.get(url, timeout=30), range(64)))
        assert {a.status_code for a in answers} == {200}
        assert {a.json()["database"] for a in answers} == {"ok"}
    output = log[0]
    assert len(re.findall(r"Booting worker with pid", output)) == 2, output
    for trouble in ("Traceback", "database is locked", "Worker failed to boot", "WORKER TIMEOUT"):
        assert trouble not in output, output
    # The access log (gunicorn.conf.py) recorded the requests.
    assert output.count('"GET /healthz HTTP/1.1" 200') >= 64
    if make_url(deployed_database).get_backend_name() == "sqlite":
        with sqlite3.connect(str(make_url(deployed_database).database)) as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_a_flood_of_signups_through_two_workers_is_applied_whole(
    deployed_database: str, smtp_server, tmp_path: Path
) -> None:
    """Signups answered by both workers at once: each applied once by their threads, none lost."""
    env = environment(deployed_database, smtp_server.url, tmp_path, MAILER_SIGNUP_LIMIT="10000/minute")
    with gunicorn(env) as (base, log):

        def sign_up(number: int) -> int:
            # 150 addresses, each typed twice: the second is throttled, never mailed twice.
            body = {"email": f"flood-{number % 150}@example.org", "consent": True}
            return httpx.post(f"{base}/api/subscribe", json=body, timeout=30).status_code

        with ThreadPoolExecutor(16) as pool:
            assert set(pool.map(sign_up, range(300))) == {202}
        deadline = time.monotonic() + 30
        while httpx.get(f"{base}/healthz", timeout=5).json()["signup_queue"]:
            assert time.monotonic() < deadline, "the signup queue was not applied"
            time.sleep(0.1)
        delivered = smtp_server.wait_for(150, timeout=60)
    assert "Traceback" not in log[0], log[0]
    assert sorted(r for m in delivered for r in m.rcpt_tos) == sorted(f"flood-{n}@example.org" for n in range(150))
    from sqlalchemy import create_engine, text

    engine = create_engine(deployed_database)
    with engine.connect() as conn:
        outcomes: dict[str, int] = dict(conn.execute(text(
            "SELECT json_extract(details, '$.outcome'), COUNT(*) FROM consent_events GROUP BY 1"
            if deployed_database.startswith("sqlite") else
            "SELECT details->>'outcome', COUNT(*) FROM consent_events GROUP BY 1")).tuples().all())
        readers = conn.execute(text("SELECT COUNT(*) FROM subscribers")).scalar()
    engine.dispose()
    assert readers == 150
    assert outcomes == {"mailed": 150, "throttled": 150}


def test_the_per_ip_signup_limit_is_one_budget_for_every_worker(
    deployed_database: str, smtp_server, tmp_path: Path
) -> None:
    """MAILER_SIGNUP_LIMIT=4/minute behind two workers: 4 signups from one IP pass, not 4 per worker."""
    env = environment(deployed_database, smtp_server.url, tmp_path, MAILER_SIGNUP_LIMIT="4/minute")
    with gunicorn(env) as (base, log):

        def sign_up(number: int) -> httpx.Response:
            body = {"email": f"limited-{number}@example.org", "consent": True}
            return httpx.post(f"{base}/api/subscribe", json=body, timeout=30)

        # At once, so that both (sync, one-request-at-a-time) workers answer some.
        with ThreadPoolExecutor(12) as pool:
            answers = list(pool.map(sign_up, range(12)))
    assert sorted(a.status_code for a in answers) == [202] * 4 + [429] * 8, log
    refused = [a for a in answers if a.status_code == 429]
    assert all(1 <= int(a.headers["Retry-After"]) <= 60 for a in refused)
    assert {a.json()["error"] for a in refused} == {"rate_limited"}


def test_json_access_log(database_url: str, smtp_server, tmp_path: Path) -> None:
    port = free_port()
    env = environment(database_url, smtp_server.url, tmp_path, MAILER_LOG_JSON="1")
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-w", "1", "-b", f"127.0.0.1:{port}", "wsgi:app"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/healthz?probe=1", timeout=5, headers={"User-Agent": 'say "hi"'})
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
    finally:
        server.send_signal(signal.SIGTERM)
        output, _ = server.communicate(timeout=30)
    import json

    events = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    assert len(events) == len([line for line in output.splitlines() if line.strip()]), output
    access = [e for e in events if e.get("path") == "/healthz"]
    assert access
    assert access[0]["status"] == 200
    assert access[0]["query"] == "probe=1"
    assert access[0]["user_agent"] == 'say "hi"'


def test_a_bad_setting_stops_gunicorn_with_one_line(tmp_path: Path) -> None:
    """Checked once in the master: no worker restarted forever on a value that can never work."""
    env = environment("sqlite:///" + str(tmp_path / "db.sqlite3"), "smtp://127.0.0.1:25", tmp_path,
                      MAILER_BASE_URL="not a url")
    done = subprocess.run([sys.executable, "-m", "gunicorn", "-w", "2", "-b", f"127.0.0.1:{free_port()}", "wsgi:app"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith("error: MAILER_BASE_URL:"), done.stderr
    assert "Booting worker" not in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize(("name", "value"), [
    ("MAILER_WORKERS", "abc"), ("MAILER_THREADS", "0"), ("MAILER_THREADS", "-2"),
])
def test_a_bad_worker_count_stops_gunicorn_with_one_line(tmp_path: Path, name: str, value: str) -> None:
    """gunicorn.conf.py reads these itself, before on_starting: int('abc') was gunicorn's traceback."""
    env = environment("sqlite:///" + str(tmp_path / "db.sqlite3"), "smtp://127.0.0.1:25", tmp_path, **{name: value})
    done = subprocess.run([sys.executable, "-m", "gunicorn", "-b", f"127.0.0.1:{free_port()}", "wsgi:app"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [f"error: {name}: expected a whole number, 1 or more (got {value!r})"]


def test_the_settings_check_leaves_the_master_without_the_apps_code(tmp_path: Path) -> None:
    """Workers forked after an upgrade and a reload (HUP) must import the new code, not the master's old."""
    probe = ("import runpy, sys\n"
             "from gunicorn.config import Config\n"
             "settings = runpy.run_path('gunicorn.conf.py')\n"
             "settings['on_starting'](None)\n"
             "settings['JsonLogger'](Config())  # MAILER_LOG_JSON's logger, set up in the master\n"
             "print(sorted(name for name in sys.modules if name == 'mailer' or name.startswith('mailer.')))\n")
    env = environment("sqlite:///" + str(tmp_path / "db.sqlite3"), "smtp://127.0.0.1:25", tmp_path)
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def _without(env: dict[str, str], *names: str) -> dict[str, str]:
    return {k: v for k, v in env.items() if k not in names}


@pytest.mark.parametrize("base_url", ["https://news.example.it", None])
def test_gunicorn_without_mailer_env_is_production_and_refuses_without_its_key(
    tmp_path: Path, base_url: str | None
) -> None:
    """MAILER_ENV forgotten under a WSGI server: production, so no capture, no viewer, no development key."""
    env = _without(environment("sqlite:///" + str(tmp_path / "db.sqlite3"), "smtp://user:hunter2@mx.example.it:587",
                               tmp_path), "MAILER_ENV", "MAILER_SECRET_KEY", "MAILER_BASE_URL")
    if base_url:
        env["MAILER_BASE_URL"] = base_url
    done = subprocess.run([sys.executable, "-m", "gunicorn", "-w", "2", "-b", f"127.0.0.1:{free_port()}", "wsgi:app"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, done.stderr
    assert errors[0].startswith("error: MAILER_SECRET_KEY: required when MAILER_ENV=production (MAILER_ENV is not set")
    assert errors[0].endswith("production applies)")
    assert "Booting worker" not in done.stderr and "Traceback" not in done.stderr and "hunter2" not in done.stderr
    assert not (tmp_path / "instance" / "development-secret-key").exists()


def test_gunicorn_without_mailer_env_but_with_its_settings_serves_production(
    deployed_database: str, smtp_server, tmp_path: Path
) -> None:
    env = _without(environment(deployed_database, smtp_server.url, tmp_path), "MAILER_ENV")
    with gunicorn(env, workers=1) as (base, log):
        assert httpx.get(f"{base}/dev/mail/", timeout=10).status_code == 404
        assert httpx.post(f"{base}/dev/mail/send-digest", timeout=10).status_code == 404
    assert "MAILER_ENV=development" not in log[0]


def test_mailer_env_testing_from_the_environment_keeps_csrf_and_the_limits(
    deployed_database: str, smtp_server, tmp_path: Path
) -> None:
    """The relaxations of the suite are its fixtures' own: MAILER_ENV=testing set by hand relaxes nothing."""
    env = environment(deployed_database, smtp_server.url, tmp_path, MAILER_ENV="testing",
                      MAILER_SIGNUP_LIMIT="2/minute", MAILER_BASE_URL="http://127.0.0.1:5000")
    with gunicorn(env, workers=1) as (base, _log):
        form = httpx.post(f"{base}/subscribe", data={"email": "anna@example.it", "consent": "y"}, timeout=10)
        assert form.status_code == 400  # no CSRF token
        answers = [httpx.post(f"{base}/api/subscribe", json={"email": f"r{n}@example.org", "consent": True},
                              timeout=10).status_code for n in range(3)]
        assert answers == [202, 202, 429]
        assert httpx.get(f"{base}/dev/mail/", timeout=10).status_code == 404  # no viewer either


def test_explicit_development_under_gunicorn_listens_on_loopback_only(tmp_path: Path) -> None:
    env = _without(environment("sqlite:///" + str(tmp_path / "db.sqlite3"), "smtp://127.0.0.1:25", tmp_path,
                               MAILER_ENV="development"), "MAILER_BASE_URL")
    done = subprocess.run([sys.executable, "-m", "gunicorn", "-w", "2", "-b", f"0.0.0.0:{free_port()}", "wsgi:app"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith("error: MAILER_ENV: development serves this machine only, not"
                                                     " 0.0.0.0:"), done.stderr
    assert "Booting worker" not in done.stderr


def test_explicit_development_under_gunicorn_warns_what_it_exposes(
    deployed_database: str, smtp_server, tmp_path: Path
) -> None:
    env = _without(environment(deployed_database, smtp_server.url, tmp_path, MAILER_ENV="development"),
                   "MAILER_BASE_URL", "MAILER_SECRET_KEY")
    with gunicorn(env, workers=1) as (base, log):
        assert httpx.get(f"{base}/dev/mail/", timeout=10).status_code == 200  # loopback: open for reading
    warning = "MAILER_ENV=development: this app is for this machine only"
    warnings = [line for line in log[0].splitlines() if warning in line]
    assert len(warnings) == 1, log[0]
    assert "/dev/mail/" in warnings[0] and "MAILER_ENV=production" in warnings[0]
