"""Real ``flask --app wsgi digest send`` processes: killed mid-way, and two at once."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from mailer.models import Article, DeliveryStatus, Digest, DigestStatus, Feed, utcnow
from tests.delivery.factory import add_readers, digest_row, make_digest, statuses
from tests.smtp_sink import SmtpSink

ROOT = Path(__file__).resolve().parents[2]
FLASK = [sys.executable, "-m", "flask", "--app", "wsgi"]
CONNECTIONS = 2


def _env(app: Flask, smtp_server: SmtpSink, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILER_")}
    env.update(
        MAILER_ENV="testing", MAILER_DATABASE_URL=app.config["DATABASE_URL"], MAILER_SMTP_URL=smtp_server.url,
        MAILER_SECRET_KEY="test-secret", MAILER_BASE_URL="http://newsletter.test",
        MAILER_FROM="Notizie Tech <newsletter@example.it>", MAILER_SMTP_CONNECTIONS=str(CONNECTIONS),
        MAILER_INSTANCE_PATH=str(tmp_path / "instance"), PYTHONUNBUFFERED="1",
    )
    return env


def _send(env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([*FLASK, "digest", "send"], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


@pytest.mark.slow
def test_killed_with_sigkill_mid_way_and_rerun_nobody_is_lost(
    app: Flask, session: Session, smtp_server: SmtpSink, tmp_path: Path
) -> None:
    made = make_digest(session, 80)
    env = _env(app, smtp_server, tmp_path)
    smtp_server.handler.data_delay = 0.02
    first = _send(env)
    smtp_server.wait_for(15, timeout=60)
    first.send_signal(signal.SIGKILL)
    first.wait(30)
    accepted = Counter(r for m in smtp_server.messages for r in m.rcpt_tos)
    recorded = [e for e, s in statuses(session, made.digest_id).items() if s == DeliveryStatus.SENT]
    assert set(recorded) <= set(accepted)
    # Accepted but not yet recorded: at most the one message in flight per connection.
    assert len(accepted) - len(recorded) <= CONNECTIONS
    smtp_server.handler.data_delay = 0
    second = _send(env)
    output, _ = second.communicate(timeout=120)
    assert second.returncode == 0, output
    copies = Counter(r for m in smtp_server.messages for r in m.rcpt_tos)
    assert set(copies) == set(made.emails)  # no reader lost
    assert sum(n - 1 for n in copies.values()) <= CONNECTIONS  # at most one duplicate per connection
    assert set(statuses(session, made.digest_id).values()) == {DeliveryStatus.SENT}
    assert digest_row(session, made.digest_id).status == DigestStatus.FINISHED


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_mid_way_records_the_messages_in_flight_and_exits_75(
    app: Flask, session: Session, smtp_server: SmtpSink, tmp_path: Path, signum: signal.Signals
) -> None:
    made = make_digest(session, 80)
    env = _env(app, smtp_server, tmp_path)
    smtp_server.handler.data_delay = 0.02
    first = _send(env)
    smtp_server.wait_for(15, timeout=60)
    first.send_signal(signum)
    output, _ = first.communicate(timeout=60)
    assert first.returncode == 75, output
    assert f"{signum.name} received: finishing the messages in flight" in output
    assert "run 'digest send' again to send the rest" in output
    accepted = Counter(r for m in smtp_server.messages for r in m.rcpt_tos)
    recorded = [e for e, s in statuses(session, made.digest_id).items() if s == DeliveryStatus.SENT]
    # Every message the server accepted is recorded as sent: none in flight was left behind.
    assert sorted(recorded) == sorted(accepted) and len(recorded) < 80
    assert digest_row(session, made.digest_id).status == DigestStatus.SENDING
    smtp_server.handler.data_delay = 0
    second = _send(env)
    output, _ = second.communicate(timeout=120)
    assert second.returncode == 0, output
    copies = Counter(r for m in smtp_server.messages for r in m.rcpt_tos)
    assert set(copies) == set(made.emails) and set(copies.values()) == {1}  # nobody twice
    assert digest_row(session, made.digest_id).status == DigestStatus.FINISHED


@pytest.mark.slow
def test_a_second_signal_stops_at_once(
    app: Flask, session: Session, smtp_server: SmtpSink, tmp_path: Path
) -> None:
    made = make_digest(session, 80)
    env = _env(app, smtp_server, tmp_path)
    smtp_server.handler.data_delay = 0.5  # the messages in flight would hold the first signal's stop
    first = _send(env)
    smtp_server.wait_for(2, timeout=60)
    first.send_signal(signal.SIGTERM)
    assert first.stdout is not None
    seen = [first.stdout.readline() for _ in range(2)]  # the send's first line, then the signal's
    assert "SIGTERM received" in seen[-1], seen  # a signal sent before this one was taken would merge with it
    first.send_signal(signal.SIGTERM)
    output, _ = first.communicate(timeout=60)
    output = "".join(seen) + output
    assert first.returncode not in (0, 75), output
    accepted = Counter(r for m in smtp_server.messages for r in m.rcpt_tos)
    assert len(accepted) < 80
    smtp_server.handler.data_delay = 0
    second = _send(env)
    output, _ = second.communicate(timeout=120)
    assert second.returncode == 0, output
    copies = Counter(r for m in smtp_server.messages for r in m.rcpt_tos)
    assert set(copies) == set(made.emails)
    assert sum(n - 1 for n in copies.values()) <= CONNECTIONS  # as after a kill: one per connection at most


@pytest.mark.slow
@pytest.mark.postgresql_only
def test_two_senders_share_a_digest_and_each_reader_gets_one_copy(
    app: Flask, session: Session, smtp_server: SmtpSink, tmp_path: Path
) -> None:
    made = make_digest(session, 1200)
    env = _env(app, smtp_server, tmp_path)
    senders = [_send(env), _send(env)]
    outputs = [sender.communicate(timeout=180)[0] for sender in senders]
    assert [s.returncode for s in senders] == [0, 0], outputs
    copies = Counter(r for m in smtp_server.messages for r in m.rcpt_tos)
    assert set(copies) == set(made.emails) and set(copies.values()) == {1}
    sent_by = [sum(int(n) for n in re.findall(rf"digest {made.digest_id}: (\d+) sent", out)) for out in outputs]
    assert sum(sent_by) == 1200 and all(sent_by), outputs  # both took a share
    assert set(statuses(session, made.digest_id).values()) == {DeliveryStatus.SENT}
    assert digest_row(session, made.digest_id).status == DigestStatus.FINISHED


def _news_and_readers(session: Session, count: int) -> list[str]:
    """Confirmed readers and new articles, no digest yet: the next ``digest send`` composes one."""
    emails = [f"together-{n}@example.org" for n in range(count)]
    add_readers(session, emails)
    feed = Feed(url="https://news.example.it/feed.xml", title="Tech News Example")
    session.add(feed)
    session.flush()
    for n in range(3):
        session.add(Article(feed_id=feed.id, dedup_key=f"guid-{n}", url=f"https://news.example.it/articoli/{n}",
                            title=f"Notizia {n}", summary_html="<p>Sommario.</p>", summary_text="Sommario.",
                            topic="ai", published_at=utcnow()))
    session.commit()
    return emails


def _sent_by(output: str) -> int:
    return sum(int(n) for n in re.findall(r"digest \d+: (\d+) sent", output))


@pytest.mark.slow
@pytest.mark.postgresql_only
def test_two_senders_started_together_compose_once_and_both_carry_a_share(
    app: Flask, session: Session, smtp_server: SmtpSink, tmp_path: Path
) -> None:
    emails = _news_and_readers(session, 600)
    env = {**_env(app, smtp_server, tmp_path), "MAILER_SMTP_CONNECTIONS": "1"}  # a connection is a process
    smtp_server.handler.data_delay = 0.005
    senders = [_send(env), _send(env)]
    outputs = [sender.communicate(timeout=180)[0] for sender in senders]
    assert [s.returncode for s in senders] == [0, 0], outputs
    assert len(session.scalars(select(Digest.id)).all()) == 1  # composed once
    copies = Counter(r for m in smtp_server.messages for r in m.rcpt_tos)
    assert set(copies) == set(emails) and set(copies.values()) == {1}, outputs  # nobody twice
    sent_by = [_sent_by(out) for out in outputs]
    assert sum(sent_by) == 600 and min(sent_by) >= 150, outputs  # each at least a quarter
    per_connection = sorted(smtp_server.handler.per_connection.values())
    assert len(per_connection) == 2 and per_connection[0] >= 150, per_connection
    assert any("being sent by another process: joining it" in out for out in outputs), outputs


@pytest.mark.slow
@pytest.mark.sqlite_only
def test_two_senders_started_together_on_sqlite_the_second_exits_75(
    app: Flask, session: Session, smtp_server: SmtpSink, tmp_path: Path
) -> None:
    emails = _news_and_readers(session, 200)
    env = _env(app, smtp_server, tmp_path)
    smtp_server.handler.data_delay = 0.01
    senders = [_send(env), _send(env)]
    outputs = [sender.communicate(timeout=180)[0] for sender in senders]
    codes = [s.returncode for s in senders]
    assert sorted(codes) == [0, 75], outputs
    waited = outputs[codes.index(75)]
    assert "another sender (pid" in waited and "SQLite allows one at a time" in waited, waited
    assert len(session.scalars(select(Digest.id)).all()) == 1
    copies = Counter(r for m in smtp_server.messages for r in m.rcpt_tos)
    assert set(copies) == set(emails) and set(copies.values()) == {1}
