"""``flask --app wsgi devserver`` (what ``make run`` starts): everything in one process."""

from __future__ import annotations

import os
import re
import signal
import smtplib
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mailer.models import Article
from tests.devmail.conftest import free_port
from tests.http_server import FeedServer

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def test_the_devserver_serves_captures_polls_the_demo_feed_and_stops_on_ctrl_c(
    database_url: str, session: Session, tmp_path: Path
) -> None:
    web_port, smtp_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILER_")}
    # Embedded defaults, as a newcomer has them: only the ports and places differ.
    env.update({"MAILER_DATABASE_URL": database_url, "MAILER_INSTANCE_PATH": str(tmp_path / "instance"),
                "MAILER_CAPTURE_SMTP_PORT": str(smtp_port), "PYTHONUNBUFFERED": "1"})
    server = subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "wsgi", "devserver", "--port", str(web_port)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        # As `make run &` from a script: the shell starts it with SIGINT ignored; Ctrl-C must still stop it.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    base = f"http://127.0.0.1:{web_port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                assert httpx.get(f"{base}/healthz", timeout=5).status_code == 200
                break
            except httpx.TransportError:
                assert server.poll() is None, server.communicate()[0]
                assert time.monotonic() < deadline
                time.sleep(0.1)
        # The first poll fetched the demo feed from this very server.
        while not session.scalar(select(func.count()).select_from(Article)):
            assert time.monotonic() < deadline, "the demo feed was not polled"
            time.sleep(0.2)
        # The capture server takes mail; the viewer shows it.
        with smtplib.SMTP("127.0.0.1", smtp_port) as smtp:
            smtp.sendmail("a@example.it", ["b@example.it"], b"Subject: Ciao dal test\r\n\r\nciao\r\n")
        with httpx.Client(base_url=base, timeout=10) as browser:
            page = browser.get("/dev/mail/").text
            assert "Ciao dal test" in page  # reading is open on this machine: the newcomer's path
            assert "flask --app wsgi admin create EMAIL" in page  # no admin yet: how to make one
            token = re.search(r'name="csrf_token" value="([^"]+)"', page)
            assert token is not None
            # The buttons need the admin login, even with a valid form.
            refused = browser.post("/dev/mail/clear", data={"csrf_token": token[1]})
            assert (refused.status_code, refused.headers["Location"]) == (302, "/admin/login?next=/dev/mail/")
        assert "Ciao dal test" in httpx.get(f"{base}/dev/mail/", timeout=10).text  # nothing deleted
    finally:
        server.send_signal(signal.SIGINT)  # Ctrl-C
        try:
            output, _ = server.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()  # a failed test must not leave a server running
            output = server.communicate()[0]
            raise AssertionError(f"Ctrl-C did not stop the devserver:\n{output}") from None
    assert server.returncode == 0, output
    assert f"{base}/dev/mail/" in output
    assert f"{base}/admin/" in output
    assert "GET /demo/feed.xml" in output
    assert "warning: MAILER_ENV=development: this app is for this machine only." in output
    assert "stopped" in output
    assert "Traceback" not in output
    assert list((tmp_path / "instance" / "captured-mail" / "new").iterdir()) or list(
        (tmp_path / "instance" / "captured-mail" / "cur").iterdir())


def test_ctrl_c_does_not_wait_for_a_feed_that_hangs(database_url: str, tmp_path: Path, feed_server: FeedServer) -> None:
    """The poll's download is abandoned (not waited out for FEED_TIMEOUT, 30 s); the capture port closes."""
    release = threading.Event()

    def hang(request: BaseHTTPRequestHandler) -> None:
        release.wait(60)
        request.close_connection = True

    web_port, smtp_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILER_")}
    env.update({"MAILER_DATABASE_URL": database_url, "MAILER_INSTANCE_PATH": str(tmp_path / "instance"),
                "MAILER_CAPTURE_SMTP_PORT": str(smtp_port), "MAILER_FEEDS": feed_server.add("/hang.xml", handler=hang),
                "PYTHONUNBUFFERED": "1"})
    server = subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "wsgi", "devserver", "--port", str(web_port)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not any(path == "/hang.xml" for path, _headers in feed_server.requests):
            assert server.poll() is None, server.communicate()[0]
            assert time.monotonic() < deadline, "the feed was not polled"
            time.sleep(0.1)
        smtplib.SMTP("127.0.0.1", smtp_port).quit()  # the capture server is up
        asked = time.monotonic()
        server.send_signal(signal.SIGINT)  # Ctrl-C while the poll hangs
        output, _ = server.communicate(timeout=25)
        took = time.monotonic() - asked
    finally:
        release.set()
        if server.poll() is None:
            server.kill()
            server.communicate()
    assert server.returncode == 0, output
    assert took < 10, output
    assert "stopped" in output and "Traceback" not in output
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", smtp_port), timeout=5).close()


@pytest.mark.parametrize(("args", "variables", "line"), [
    (["--host", "0.0.0.0"], {}, "error: MAILER_ENV: development serves this machine only, not 0.0.0.0:"),
    (["--host", "192.0.2.7"], {}, "error: MAILER_ENV: development serves this machine only, not 192.0.2.7:"),
    (["--host", "0.0.0.0"], {"MAILER_ENV": "development"}, "error: MAILER_ENV: development serves this machine only"),
    ([], {"MAILER_BASE_URL": "https://news.example.it"},
     "error: MAILER_SECRET_KEY: required when MAILER_ENV=production (MAILER_ENV is not set and MAILER_BASE_URL"
     " (https://news.example.it) is not loopback: production applies)"),
    ([], {"MAILER_ENV": "development", "MAILER_BASE_URL": "https://news.example.it"},
     "error: MAILER_ENV: development serves this machine only, but MAILER_BASE_URL is https://news.example.it:"),
    ([], {"MAILER_BASE_URL": "https://news.example.it", "MAILER_SECRET_KEY": "a-long-enough-s3cret",
          "MAILER_SMTP_URL": "smtp://mx.example.it:25"}, "error: MAILER_ENV: production applies"),
])
def test_the_devserver_serves_development_on_loopback_only(
    database_url: str, tmp_path: Path, args: list[str], variables: dict[str, str], line: str
) -> None:
    """Asked for another address, or with public links, it refuses in one line naming MAILER_ENV and listens nowhere."""
    port, smtp_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILER_")}
    env.update({"MAILER_DATABASE_URL": database_url, "MAILER_INSTANCE_PATH": str(tmp_path / "instance"),
                "MAILER_CAPTURE_SMTP_PORT": str(smtp_port), **variables})
    done = subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "devserver", "--port", str(port), *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    errors = done.stderr.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith(line), done.stderr
    assert done.stdout == ""
    for closed in (port, smtp_port):
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", closed), timeout=5).close()


def test_flask_run_beyond_loopback_is_not_development(tmp_path: Path) -> None:
    """``flask run --host 0.0.0.0`` serves others: without MAILER_ENV it is production, refused without its key."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILER_")}
    env["MAILER_INSTANCE_PATH"] = str(tmp_path / "instance")
    done = subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "run", "--host", "0.0.0.0",
                           "--port", str(free_port())], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: MAILER_SECRET_KEY: required when MAILER_ENV=production (MAILER_ENV is not set and the app is served"
        " by a WSGI server, not by `make run`: production applies)"]
