"""Login floods and large bodies against a real ``gunicorn -w 2 wsgi:app``, as deployed (production, CSRF on)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
EMAIL, PASSWORD = "admin@example.it", "the real admin password"
pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def production(request: pytest.FixtureRequest, tmp_path: Path, smtp_server) -> dict[str, str]:
    """The environment of a production deployment behind one proxy, on a migrated database with an admin."""
    commands: list[tuple[list[str], str | None]] = [(["admin", "create", EMAIL, "--password-stdin"], PASSWORD)]
    if request.config.getoption("--db") == "postgresql":
        url: str = request.getfixturevalue("database_url")  # the suite's schema, emptied
    else:
        url = f"sqlite:///{tmp_path / 'limits.sqlite3'}"
        commands.insert(0, (["db", "upgrade"], None))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILER_")}
    env.update({
        "MAILER_ENV": "production", "MAILER_SECRET_KEY": "a-real-secret-for-the-test",
        "MAILER_DATABASE_URL": url, "MAILER_SMTP_URL": smtp_server.url,
        "MAILER_BASE_URL": "https://news.example.it", "MAILER_FROM": "Notizie <newsletter@example.it>",
        "MAILER_INSTANCE_PATH": str(tmp_path / "instance"), "MAILER_PROXY_FIX_HOPS": "1",
    })
    flask = [sys.executable, "-m", "flask", "--app", "wsgi"]
    for command, given in commands:
        done = subprocess.run(flask + command, cwd=ROOT, env=env, input=given, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr
    return env


@contextmanager
def gunicorn(env: dict[str, str]) -> Iterator[tuple[str, list[str]]]:
    """``gunicorn -w 2 wsgi:app`` on a free port; yields (base URL, [its output, once stopped])."""
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "gunicorn", "-w", "2", "-b", f"127.0.0.1:{port}", "wsgi:app"],
                              cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base, output = f"http://127.0.0.1:{port}", list[str]()
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline and server.poll() is None, "gunicorn did not answer"
            time.sleep(0.1)
        yield base, output
    finally:
        server.send_signal(signal.SIGTERM)
        output.append(server.communicate(timeout=30)[0])


def log_in(base: str, source: str, password: str) -> int:
    """The login form as a browser at ``source`` sends it (its cookie, its CSRF token); the status."""
    headers = {"X-Forwarded-For": source}
    with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
        page = client.get("/admin/login")
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page.text)
        assert token, page.text
        # The cookie is Secure (production): sent by hand over the test's plain http.
        cookie = page.headers["Set-Cookie"].split(";", 1)[0]
        answer = client.post("/admin/login", data={"csrf_token": token.group(1), "email": EMAIL, "password": password},
                             headers={"Cookie": cookie})
        return answer.status_code


def test_thirty_parallel_guesses_get_at_most_the_limit_of_checks_and_the_owner_gets_in(
        production: dict[str, str]) -> None:
    """ADMIN_LOGIN_LIMIT is 5/minute: 30 wrong logins at once from one address, over both workers and their
    threads, get at most 5 password checks; the account is then past its own limit, and the owner, from an
    address that never failed, still logs in."""
    with gunicorn(production) as (base, log):
        with ThreadPoolExecutor(30) as pool:
            answers = list(pool.map(lambda n: log_in(base, "198.51.100.1", f"guess {n}"), range(30)))
        owner = log_in(base, "203.0.113.7", PASSWORD)
        stranger = log_in(base, "198.51.100.1", PASSWORD)  # even the right password: this source waits
    output = log[0]
    checked = output.count("admin login failed")
    assert answers.count(401) == checked and answers.count(429) == 30 - checked, (answers, output)
    assert 1 <= checked <= 5, output
    assert owner == 303 and stranger == 429, output
    assert "Traceback" not in output


def raw_post(base: str, path: str, head: dict[str, str], body: Iterator[bytes]) -> tuple[int, int]:
    """POST over a bare socket, sending ``body`` until the server answers; (status, body bytes sent)."""
    host, port = base.removeprefix("http://").split(":")
    sent = 0
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        lines = [f"POST {path} HTTP/1.1", f"Host: {host}", *(f"{k}: {v}" for k, v in head.items()), "", ""]
        sock.sendall("\r\n".join(lines).encode())
        sock.setblocking(False)
        answer = b""
        for chunk in body:
            with suppress(BlockingIOError):
                answer += sock.recv(65536)
            if answer:
                break
            try:
                sock.sendall(chunk)
            except (BlockingIOError, BrokenPipeError, ConnectionResetError):
                break
            sent += len(chunk)
        sock.settimeout(30)  # the answer must come: a server still waiting for the body fails the test
        while b"\r\n" not in answer:
            answer += sock.recv(65536)
    return int(answer.split(b" ", 2)[1]), sent


def test_a_large_anonymous_body_is_refused_by_gunicorn_before_it_is_read(production: dict[str, str]) -> None:
    """300 MB declared: the 413 comes before a byte of the body is sent; chunked: soon past the 256 KB cap."""
    with gunicorn(production) as (base, log):
        status, sent = raw_post(base, "/subscribe", {"Content-Type": "application/x-www-form-urlencoded",
                                                     "Content-Length": str(300 * 1024 * 1024)}, iter([]))
        assert (status, sent) == (413, 0)

        def chunked() -> Iterator[bytes]:
            piece = b"a" * 16384
            for _ in range(20000):  # up to 320 MB, if nobody stopped it
                yield b"%x\r\n%s\r\n" % (len(piece), piece)
                time.sleep(0.001)

        status, sent = raw_post(base, "/api/subscribe", {"Content-Type": "application/json",
                                                         "Transfer-Encoding": "chunked"}, chunked())
        assert status == 413 and sent < 8 * 1024 * 1024
        status, sent = raw_post(base, "/subscribe", {"Content-Type": "application/x-www-form-urlencoded",
                                                     "Transfer-Encoding": "chunked"}, chunked())
        assert status == 413 and sent < 8 * 1024 * 1024
        assert httpx.get(f"{base}/healthz", timeout=10).status_code == 200
    assert "Traceback" not in log[0], log[0]
