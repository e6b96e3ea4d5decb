"""``flask --app wsgi devserver`` (what ``make run`` starts): everything in one process."""

from __future__ import annotations

import os
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
        assert "Ciao dal test" in httpx.get(f"{base}/dev/mail/", timeout=10).text
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
