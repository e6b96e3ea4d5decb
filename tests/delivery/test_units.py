"""Small parts on their own: SMTP URLs, reply classes, backoff, rate, progress."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from mailer.delivery.faults import SendOutcome, classify, next_attempt
from mailer.delivery.personalise import envelope_address
from mailer.delivery.report import DeliveryReport, Progress, duration
from mailer.delivery.senders import TokenBucket
from mailer.delivery.transport import ABANDONED, Reply
from mailer.smtpurl import SmtpSettings, parse_smtp_url


@pytest.mark.parametrize(("url", "expected"), [
    ("smtp://mail.example.it", SmtpSettings("mail.example.it", 25, "none")),
    ("smtp://127.0.0.1:2525", SmtpSettings("127.0.0.1", 2525, "none")),
    ("smtp+starttls://relay.example.it", SmtpSettings("relay.example.it", 587, "starttls")),
    ("smtps://user:pass@relay.example.it", SmtpSettings("relay.example.it", 465, "tls", "user", "pass")),
    ("smtps://news%40example.it:p%40ss%3Aw%2Frd@relay:2465",
     SmtpSettings("relay", 2465, "tls", "news@example.it", "p@ss:w/rd")),
    ("smtp+starttls://apikey:@relay", SmtpSettings("relay", 587, "starttls", "apikey", "")),
])
def test_smtp_urls(url: str, expected: SmtpSettings) -> None:
    settings = parse_smtp_url(url)
    assert settings == expected and settings.password == expected.password


@pytest.mark.parametrize("url", ["http://x", "smtp://", "smtp://host:notaport", "smtp://:secret@host", "smtp+tls://h"])
def test_bad_smtp_urls(url: str) -> None:
    with pytest.raises(ValueError):
        parse_smtp_url(url)


def test_the_password_stays_out_of_repr() -> None:
    assert "s3cret" not in repr(parse_smtp_url("smtps://u:s3cret@h"))


@pytest.mark.parametrize(("code", "text", "stage", "outcome"), [
    (250, "2.0.0 OK queued", "data", SendOutcome.SENT),
    (421, "4.3.2 closing", "mail", SendOutcome.DEFERRED),
    (451, "4.4.2 connection lost", "data", SendOutcome.DEFERRED),
    (450, "4.2.0 greylisted", "rcpt", SendOutcome.DEFERRED),
    (452, "4.2.2 mailbox full", "rcpt", SendOutcome.DEFERRED),
    (550, "5.1.1 no such user", "rcpt", SendOutcome.BOUNCED),
    (550, "5.1.10 null MX", "rcpt", SendOutcome.BOUNCED),
    (551, "5.1.6 moved", "data", SendOutcome.BOUNCED),
    (550, "5.2.1 mailbox disabled", "rcpt", SendOutcome.BOUNCED),
    (550, "No such user here", "rcpt", SendOutcome.BOUNCED),  # no enhanced code: 550 on RCPT
    (550, "5.7.1 rejected by policy", "rcpt", SendOutcome.PAUSE),
    (554, "5.7.1 message rejected as spam", "data", SendOutcome.PAUSE),
    (553, "5.1.8 sender domain does not exist", "mail", SendOutcome.PAUSE),  # about us, not the reader
    (530, "5.7.0 authentication required", "mail", SendOutcome.PAUSE),
    (552, "5.3.4 message too big", "data", SendOutcome.FAILED),
    (552, "5.2.2 mailbox full", "rcpt", SendOutcome.FAILED),
    (554, "transaction failed", "data", SendOutcome.FAILED),
    (451, "4.3.0 abandoned", ABANDONED, SendOutcome.RELEASED),
])
def test_replies_are_classified(code: int, text: str, stage: str, outcome: SendOutcome) -> None:
    assert classify(Reply(code, text, stage)) is outcome


def test_backoff_doubles_up_to_a_ceiling_and_never_passes_the_give_up_time() -> None:
    now = datetime(2026, 11, 25, 8)
    far = now + timedelta(days=3)
    delays = [(next_attempt(n, now, far, base=60, ceiling=3600) - now).total_seconds() for n in range(1, 9)]
    assert 54 <= delays[0] <= 66 and 108 <= delays[1] <= 132 and 216 <= delays[2] <= 264
    assert all(d <= 3600 * 1.1 for d in delays) and delays[-1] >= 3600 * 0.9
    assert next_attempt(20, now, now + timedelta(seconds=10), base=60, ceiling=3600) == now + timedelta(seconds=10)


def test_the_token_bucket_waits_for_its_rate() -> None:
    clock = [0.0]
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        clock[0] += seconds

    bucket = TokenBucket(10, clock=lambda: clock[0], sleep=sleep)
    for _ in range(30):
        bucket.take()
    # 10 at once (one second of burst), then one every 0.1 s.
    assert waits[:1] == [pytest.approx(0.1)] and len(waits) == 20
    assert clock[0] == pytest.approx(2.0)
    unlimited = TokenBucket(0, clock=lambda: 0.0, sleep=sleep)
    for _ in range(100):
        unlimited.take()
    assert len(waits) == 20


def test_progress_writes_lines_with_rate_and_eta_when_not_a_terminal() -> None:
    clock = [0.0]
    lines: list[str] = []
    progress = Progress(lines.append, 1000, "digest 3", interval=10, clock=lambda: clock[0])
    clock[0] = 5
    progress.advance(100)
    assert lines == []
    clock[0] = 10
    progress.advance(100)
    assert lines == ["digest 3  200/1000 (20%)  20/s  ETA 0:40"]
    assert duration(3725) == "1:02:05"


def test_reports_merge() -> None:
    first = DeliveryReport(sent=3, deferred=2, failed=1, bounced=1, paused=[(1, "x")])
    second = DeliveryReport(sent=4, deferred=1, failed=0, skipped=2)
    merged = first.merge(second)
    assert (merged.sent, merged.deferred, merged.failed, merged.bounced, merged.skipped) == (7, 1, 1, 1, 2)
    assert merged.paused == [(1, "x")] and not merged.settled


@pytest.mark.parametrize(("email", "smtputf8", "expected"), [
    ("reader@example.org", False, "reader@example.org"),
    ("reader@bücher.example", False, "reader@xn--bcher-kva.example"),
    ("lettore@xn--bcher-kva.example", False, "lettore@xn--bcher-kva.example"),
    ("léa@example.org", True, "léa@example.org"),
    ("léa@example.org", False, None),
    ("victim@example.org>\r\nRCPT TO:<other@example.org", False, None),
    ("a b@example.org", False, None),
    ("<x@example.org>", False, None),
    ("noatsign", False, None),
])
def test_addresses_that_could_bend_smtp_are_refused(email: str, smtputf8: bool, expected: str | None) -> None:
    assert envelope_address(email, smtputf8)[0] == expected
