"""The confirmation budget: a flood from a few networks cannot spend it, and what the cap holds back waits."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from mailer.delivery import send_outbox
from mailer.models import SubscriberStatus, utcnow
from mailer.subscriptions.budget import HOUR, Budget, network_key, network_of, source_of
from tests.smtp_sink import SmtpSink
from tests.subscriptions.conftest import confirm_path, delivered, english, events, mails, started, subscriber

# Three networks that flood (12 addresses, each within the per-IP limit), and a reader on a fourth.
FLOOD = [f"203.0.113.{n}" for n in (10, 11, 12, 13)] + [f"198.51.100.{n}" for n in (20, 21, 22, 23)] + [
    f"2001:db8:bad:{n:x}::1" for n in (1, 2, 3, 4)]  # one /48, four /64s
READER_IP = "192.0.2.55"


def api_signup(client: FlaskClient, email: str, forwarded_for: str) -> bytes:
    """``POST /api/subscribe`` through nginx, which appends the client's address to X-Forwarded-For."""
    response = client.post("/api/subscribe", json={"email": email, "consent": True},
                           headers={"X-Forwarded-For": forwarded_for})
    assert response.status_code == 202
    return response.get_data()


def test_a_flood_from_a_few_networks_does_not_keep_a_reader_from_their_mail(
    make_app: Callable[..., Flask], session: Session, smtp_server: SmtpSink, caplog: pytest.LogCaptureFixture,
) -> None:
    """The issue's flood (each address within MAILER_SIGNUP_LIMIT), then a reader on another network."""
    app = make_app(CONFIRM_MAILS_PER_HOUR=20, CONFIRM_MAILS_PER_NETWORK_PER_HOUR=5, PROXY_FIX_HOPS=1,
                   RATELIMIT_ENABLED=True, SIGNUP_LIMIT="10/minute;100/hour")
    client = english(app.test_client())
    bots = {f"bot-{i}-{n}@example.net": ip for i, ip in enumerate(FLOOD) for n in range(10)}
    answers = {api_signup(client, email, ip) for email, ip in bots.items()}
    # The reader uses the form, behind the same proxy.
    page = client.post("/subscribe", data={"email": "reader@example.org", "consent": "y", "language": "en",
                                           "started": started(app)},
                       headers={"X-Forwarded-For": f"10.9.9.9, {READER_IP}"})  # the first is the client's claim
    assert page.status_code == 200 and "check your inbox" in page.get_data(as_text=True).lower()
    assert len(answers) == 1  # the same answer to every signup

    received = delivered(smtp_server, "reader@example.org")[0]
    link = confirm_path(mails(session, "reader@example.org")[0])
    assert link in received.message.get_body(("plain",)).get_content()
    queued = mails(session)
    # Five mails per network, then the reader's, sent at once: not held, not dropped.
    assert len(queued) == 3 * 5 + 1
    assert queued[-1].to_address == "reader@example.org" and queued[-1].not_before == queued[-1].created_at
    # The rest of the flood is dropped, not queued for the next hours; one log line per network and batch names it.
    dropped = [e for email in bots for e in events(session, subscriber(session, email).email_hash)
               if e.details["outcome"] == "network-share"]
    assert len(dropped) == len(bots) - 15
    logged = {r.getMessage().split(": ")[1].split(" has")[0] for r in caplog.records if "not queued" in r.getMessage()}
    assert logged == {"203.0.113.0/24", "198.51.100.0/24", "2001:db8:bad::/48"}
    # The outbox keeps a keyed hash of the network, no address.
    assert {m.network for m in queued} == {network_key(n, "test-secret") for n in (
        "203.0.113.0/24", "198.51.100.0/24", "2001:db8:bad::/48", "192.0.2.0/24")}
    assert not any("203.0.113" in (m.network or "") for m in queued)


def test_without_a_declared_proxy_a_forged_forwarded_for_gains_no_share(make_app: Callable[..., Flask],
                                                                       session: Session) -> None:
    """The share follows the address the per-IP limit uses: X-Forwarded-For only through MAILER_PROXY_FIX_HOPS."""
    app = make_app(CONFIRM_MAILS_PER_NETWORK_PER_HOUR=2)
    client = english(app.test_client())
    for n in range(4):
        response = client.post("/api/subscribe", json={"email": f"forger{n}@example.net", "consent": True},
                               headers={"X-Forwarded-For": f"198.51.{n}.1"},
                               environ_base={"REMOTE_ADDR": "203.0.113.66"})
        assert response.status_code == 202
    assert [m.to_address for m in mails(session)] == ["forger0@example.net", "forger1@example.net"]


def test_a_held_mail_leaves_when_the_hour_has_room(make_app: Callable[..., Flask], session: Session,
                                                   smtp_server: SmtpSink) -> None:
    """Two an hour: the 3rd and 4th readers' mails wait in the outbox, each for its slot, and their links work."""
    app = make_app(CONFIRM_MAILS_PER_HOUR=2)
    client = english(app.test_client())
    readers = [f"reader{n}@example.org" for n in range(4)]
    for n, email in enumerate(readers):
        api_signup(client, email, f"192.0.{n}.1")  # no proxy declared: the header is ignored
    for email in readers[:2]:
        delivered(smtp_server, email)
    first, second, third, fourth = (mails(session, email)[0] for email in readers)
    # The sliding hour: the 3rd leaves an hour after the 1st, the 4th an hour after the 2nd.
    assert (third.not_before, fourth.not_before) == (first.not_before + HOUR, second.not_before + HOUR)

    # The clock moves (the pass is told the time): nothing is due before its slot.
    assert send_outbox(app, now=utcnow()) == 0
    assert send_outbox(app, now=third.not_before - timedelta(seconds=1)) == 0
    assert send_outbox(app, now=third.not_before) == 1
    assert [m.rcpt_tos for m in smtp_server.messages][-1] == [readers[2]]
    assert send_outbox(app, now=fourth.not_before) == 1
    assert [m.rcpt_tos for m in smtp_server.messages][-1] == [readers[3]]
    # A held mail's link is as good as a prompt one.
    assert client.post(confirm_path(third)).status_code == 200
    assert subscriber(session, readers[2]).status is SubscriberStatus.CONFIRMED


def test_a_mail_that_would_wait_too_long_is_dropped_with_a_log_line(
    make_app: Callable[..., Flask], session: Session, caplog: pytest.LogCaptureFixture,
) -> None:
    app = make_app(CONFIRM_MAILS_PER_HOUR=1, CONFIRM_MAX_WAIT_HOURS=1)
    client = english(app.test_client())
    for n in range(3):
        api_signup(client, f"late{n}@example.org", "127.0.0.1")
    # The 2nd waits an hour; the 3rd would wait two: dropped, and said so.
    assert [m.to_address for m in mails(session)] == ["late0@example.org", "late1@example.org"]
    assert events(session, subscriber(session, "late2@example.org").email_hash)[-1].details["outcome"] == "capped"
    assert any(r.levelno == logging.ERROR and "CONFIRM_MAX_WAIT_HOURS" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(("ip", "network"), [
    ("203.0.113.77", "203.0.113.0/24"),
    ("2001:db8:1:2:3::5", "2001:db8:1::/48"),
    ("::ffff:203.0.113.5", "203.0.113.0/24"),
    ("192.0.2.1", "192.0.2.0/24"),  # documentation ranges are networks like any other
    ("127.0.0.1", None), ("::1", None), ("10.1.2.3", None), ("172.20.0.2", None), ("192.168.1.1", None),
    ("fd00::1", None), ("fe80::1", None), ("100.64.0.1", None), (None, None), ("", None), ("unix:socket", None),
])
def test_networks(ip: str | None, network: str | None) -> None:
    assert network_of(ip) == network


def test_the_network_key_is_a_keyed_hash() -> None:
    one, other = source_of("203.0.113.9", "secret-one"), source_of("203.0.113.200", "secret-one")
    assert one is not None and one == other and len(one.key) == 16
    assert source_of("203.0.113.9", "secret-two") != one


def test_the_schedule_never_puts_more_than_the_cap_in_an_hour() -> None:
    config = {"CONFIRM_MAILS_PER_HOUR": 3, "CONFIRM_MAILS_PER_NETWORK_PER_HOUR": 2, "CONFIRM_MAX_WAIT_HOURS": 5,
              "PURGE_UNCONFIRMED_DAYS": 7}
    start = datetime(2026, 12, 1, 12, 0)
    already = (start - timedelta(minutes=50), start - timedelta(minutes=10))
    allowance = Budget(count=2, schedule=already, shares={"busy": 2}).allowance(config, start)
    assert allowance.refusal("busy") is not None and allowance.refusal("quiet") is None
    slots = [allowance.spend(None) for _ in range(16)]
    assert allowance.refusal(None) is not None  # the 17th would leave past the five hours
    times = sorted([*already, *slots])
    assert all(sum(1 for t in times if at <= t < at + HOUR) <= 3 for at in times)
    assert slots[:3] == [start, start + timedelta(minutes=10), start + timedelta(minutes=50)]
    assert max(slots) <= start + timedelta(hours=5)
