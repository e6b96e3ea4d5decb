"""The newcomer's path, for real: `make run`'s devserver in its own process.

Signup through HTTP, the confirmation mail caught by the built-in capture
server, confirm, `feeds fetch` and `digest send` as commands, the digest in
the capture Maildir, one-click unsubscribe, Ctrl-C. Nothing is faked.
"""

from __future__ import annotations

import json
import mailbox
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.slow, pytest.mark.sqlite_only]
_processes: dict[str, subprocess.Popen[str]] = {}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _flask(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def _http(
    url: str, data: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, str, dict[str, str]]:
    request = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode(), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(), dict(error.headers)


@pytest.fixture
def devserver(tmp_path: Path) -> Iterator[tuple[str, dict[str, str], Path]]:
    """`flask devserver` on free ports with its own instance folder."""
    port, smtp_port = _free_port(), _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILER_")}
    env.update(MAILER_INSTANCE_PATH=str(tmp_path), MAILER_BASE_URL=base, MAILER_CAPTURE_SMTP_PORT=str(smtp_port))
    assert _flask(env, "db", "upgrade").returncode == 0
    process = subprocess.Popen([sys.executable, "-m", "flask", "--app", "wsgi", "devserver", "--port", str(port)],
                               cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if _http(f"{base}/healthz")[0] == 200:
                break
        except OSError:
            time.sleep(0.2)
    else:
        process.kill()
        pytest.fail(f"devserver did not start: {process.communicate()[0]}")
    _processes[base] = process
    yield base, env, tmp_path / "captured-mail"
    _processes.pop(base, None)
    if process.poll() is None:
        process.kill()
        process.wait()


def _captured(maildir: Path, count: int, timeout: float = 30) -> list[EmailMessage]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if maildir.exists():
            box = mailbox.Maildir(maildir, create=False)
            mails = [message_from_bytes(box.get_bytes(key), policy=policy.default) for key in box.keys()]  # noqa: SIM118
            if len(mails) >= count:
                return sorted(mails, key=lambda m: m["Date"].datetime)
        time.sleep(0.2)
    raise AssertionError(f"expected {count} captured mails")


def _part(mail: EmailMessage, subtype: str) -> str:
    body = mail.get_body(preferencelist=(subtype,))
    assert body is not None, f"no text/{subtype} part"
    return str(body.get_content())


def test_the_whole_path_on_embedded_defaults(devserver: tuple[str, dict[str, str], Path]) -> None:
    base, env, maildir = devserver

    status, page, _ = _http(f"{base}/")
    assert status == 200 and "Non perderti nessuna news!" in page

    body = json.dumps({"email": "lettore@example.it", "consent": True, "topics": []}).encode()
    status, answer, _ = _http(f"{base}/api/subscribe", body, {"Content-Type": "application/json"})
    assert status == 202, answer

    (confirmation,) = _captured(maildir, 1)
    assert confirmation["To"] == "lettore@example.it"
    assert confirmation.get_content_type() == "multipart/alternative"
    link = re.search(rf"{re.escape(base)}/confirm/[\w.\-]+", _part(confirmation, "plain"))
    assert link, "the confirmation mail links to /confirm/<token>"
    assert _http(link.group())[0] == 200  # the GET only shows a button
    assert _http(link.group(), b"")[0] == 200

    fetched = _flask(env, "feeds", "fetch")
    assert fetched.returncode == 0, fetched.stdout + fetched.stderr
    sent = _flask(env, "digest", "send")
    for _ in range(5):
        # 75 is "run it again later": on SQLite, when the devserver's own retry
        # job happens to be sending at that moment, as the contract allows.
        if sent.returncode != 75 or "another sender" not in sent.stderr + sent.stdout:
            break
        time.sleep(2)
        sent = _flask(env, "digest", "send")
    assert sent.returncode == 0, sent.stdout + sent.stderr

    digest = _captured(maildir, 2)[-1]
    assert digest["To"] == "lettore@example.it"
    assert digest["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert digest["List-Id"]
    unsubscribe = re.fullmatch(r"<([^>]+)>.*", str(digest["List-Unsubscribe"]))
    assert unsubscribe and unsubscribe.group(1).startswith(f"{base}/unsubscribe/")
    html, text = _part(digest, "html"), _part(digest, "plain")
    assert 'style="' in html and "<script" not in html.lower() and 'rel="stylesheet"' not in html
    assert f"{base}/archive/" in html and f"{base}/unsubscribe/" in html
    assert f"{base}/archive/" in text

    one_click = urllib.parse.urlencode({"List-Unsubscribe": "One-Click"}).encode()
    status, _, _ = _http(unsubscribe.group(1), one_click, {"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 200

    export = _flask(env, "subscribers", "export")
    assert "lettore@example.it" in export.stdout and "unsubscribed" in export.stdout


def test_ctrl_c_stops_everything(devserver: tuple[str, dict[str, str], Path]) -> None:
    base, env, _ = devserver
    process = _processes[base]
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        pytest.fail("devserver still running 20 s after Ctrl-C")
    with pytest.raises(OSError):
        _http(f"{base}/healthz")
    smtp_port = int(env["MAILER_CAPTURE_SMTP_PORT"])
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", smtp_port), timeout=2):
        pass
