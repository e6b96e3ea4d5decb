"""Bounces that come back later by mail (DSN): the reader of a missing mailbox is suppressed."""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from mailer import scheduler
from mailer.config import ConfigError, Launch, load_config
from mailer.db import get_sessionmaker
from mailer.delivery import deliver
from mailer.delivery.bounces import parse_notification
from mailer.delivery.stamp import Stamper
from mailer.models import ConsentEvent, Delivery, Subscriber, SubscriberStatus, utcnow
from tests.delivery.factory import delivery, make_digest
from tests.smtp_sink import SmtpSink


def dsn(recipient: str, returned_headers: str | None, *, action: str = "failed", status: str = "5.1.1",
        as_message: bool = False) -> bytes:
    """A delivery status notification as Postfix writes it."""
    parts = [
        "--B\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
        f"<{recipient}>: host mx.example.org said: 550 {status} User unknown\r\n",
        "--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; relay.example.it\r\nArrival-Date: Wed, 25 Nov 2026 10:00:00 +0100\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\nOriginal-Recipient: rfc822;{recipient}\r\n"
        f"Action: {action}\r\nStatus: {status}\r\nRemote-MTA: dns; mx.example.org\r\n"
        f"Diagnostic-Code: smtp; 550 {status} <{recipient}>: Recipient address\r\n    rejected: User unknown\r\n",
    ]
    if returned_headers is not None:
        kind = "message/rfc822" if as_message else "text/rfc822-headers"
        body = returned_headers + ("\r\nthe body\r\n" if as_message else "")
        parts.append(f"--B\r\nContent-Type: {kind}\r\n\r\n{body}")
    return (
        "From: MAILER-DAEMON@relay.example.it (Mail Delivery System)\r\n"
        "To: newsletter@example.it\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        "Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n"
        "Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n"
        + "".join(parts) + "--B--\r\n"
    ).encode()


@pytest.fixture
def sent(app: Flask, session: Session, smtp_server: SmtpSink) -> dict[str, str]:
    """A digest really sent to three confirmed readers: address -> the header block each received."""
    made = make_digest(session, 3)
    session.execute(update(Subscriber).values(confirmed_at=utcnow() - timedelta(days=30)))
    session.commit()
    deliver(app, echo=lambda _line: None)
    return {m.rcpt_tos[0]: m.data.split(b"\r\n\r\n", 1)[0].decode() + "\r\n" for m in smtp_server.wait_for(3)} | {
        "digest": str(made.digest_id)}


def maildir(tmp_path: Path, *mails: bytes) -> Path:
    """A Maildir with ``mails`` in new/."""
    root = tmp_path / "bounces"
    for sub in ("new", "cur", "tmp"):
        (root / sub).mkdir(parents=True)
    for number, raw in enumerate(mails):
        (root / "new" / f"1764064800.{number}.relay").write_bytes(raw)
    return root


def status(session: Session, email: str) -> SubscriberStatus:
    session.expire_all()
    return session.scalars(select(Subscriber.status).where(Subscriber.email == email)).one()


def test_a_hard_bounce_from_a_maildir_suppresses_the_reader(
    app: Flask, runner: FlaskCliRunner, session: Session, sent: dict[str, str], tmp_path: Path
) -> None:
    gone, *others = sorted(address for address in sent if "@" in address)
    root = maildir(tmp_path, dsn(gone, sent[gone]))
    result = runner.invoke(args=["bounces", "process", str(root)])
    assert result.exit_code == 0, result.output
    assert f"{gone}: hard bounce 5.1.1" in result.output and "1 readers suppressed" in result.output
    assert status(session, gone) is SubscriberStatus.BOUNCED
    assert {status(session, address) for address in others} == {SubscriberStatus.CONFIRMED}
    row = delivery(session, int(sent["digest"]), gone)
    assert row.bounce and "5.1.1" in (row.last_reply or "")
    assert session.scalars(select(ConsentEvent.action).where(ConsentEvent.action == "bounce")).all() == ["bounce"]
    # Read once: the mail moved to cur/ as seen, and a second run finds nothing new.
    assert not list((root / "new").iterdir()) and [p.name for p in (root / "cur").iterdir()] == [
        "1764064800.0.relay:2,S"]
    again = runner.invoke(args=["bounces", "process", str(root)])
    assert again.exit_code == 0 and "0 readers suppressed" in again.output


def test_the_whole_returned_message_counts_too(
    runner: FlaskCliRunner, session: Session, sent: dict[str, str], tmp_path: Path
) -> None:
    gone = min(address for address in sent if "@" in address)
    mail = tmp_path / "bounce.eml"
    mail.write_bytes(dsn(gone, sent[gone], as_message=True))
    assert runner.invoke(args=["bounces", "process", str(mail)]).exit_code == 0
    assert status(session, gone) is SubscriberStatus.BOUNCED


def test_a_postfix_pipe_gives_the_mail_on_standard_input(
    runner: FlaskCliRunner, session: Session, sent: dict[str, str]
) -> None:
    gone = min(address for address in sent if "@" in address)
    result = runner.invoke(args=["bounces", "process", "-"], input=dsn(gone, sent[gone]))
    assert result.exit_code == 0, result.output
    assert status(session, gone) is SubscriberStatus.BOUNCED


def test_forged_or_foreign_reports_change_nothing(
    runner: FlaskCliRunner, session: Session, sent: dict[str, str], tmp_path: Path
) -> None:
    first, second, third = sorted(address for address in sent if "@" in address)
    forged = [
        dsn(second, sent[first]),  # names a reader, but returns another reader's digest
        dsn(third, None),  # returns nothing of ours at all
        dsn(first, "Message-ID: <digest-999.999.20261125@example.it>\r\n"),  # a delivery that does not exist
        dsn(first, sent[first].replace("Message-ID", "X-Old-Message-ID")),
    ]
    result = runner.invoke(args=["bounces", "process", str(maildir(tmp_path, *forged))])
    assert result.exit_code == 0, result.output
    assert result.output.count("names none of our deliveries") == 4
    assert {status(session, address) for address in (first, second, third)} == {SubscriberStatus.CONFIRMED}


def test_only_a_missing_mailbox_suppresses(
    runner: FlaskCliRunner, session: Session, sent: dict[str, str], tmp_path: Path
) -> None:
    first, second, _third = sorted(address for address in sent if "@" in address)
    reports = [
        dsn(first, sent[first], action="delayed", status="4.4.1"),  # still trying
        dsn(second, sent[second], status="5.7.1"),  # refused as spam: about us, not the address
        b"From: reader@example.org\r\nSubject: Out of office\r\n\r\nI am on holiday.\r\n",
        b"\x00\xff garbage",
    ]
    result = runner.invoke(args=["bounces", "process", str(maildir(tmp_path, *reports))])
    assert result.exit_code == 0, result.output
    assert "delayed 4.4.1: not a missing mailbox" in result.output and "failed 5.7.1" in result.output
    assert result.output.count("not a delivery status notification or complaint report: ignored") == 2
    assert {status(session, address) for address in (first, second)} == {SubscriberStatus.CONFIRMED}


def test_an_unreadable_path_is_one_line_and_exit_1(runner: FlaskCliRunner, tmp_path: Path) -> None:
    result = runner.invoke(args=["bounces", "process", str(tmp_path / "missing.eml")])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [f"error: cannot read {tmp_path / 'missing.eml'}: "
                                                  "No such file or directory"]


def test_the_scheduler_reads_the_bounce_maildir(
    app: Flask, session: Session, sent: dict[str, str], tmp_path: Path
) -> None:
    gone = min(address for address in sent if "@" in address)
    app.config["BOUNCE_MAILDIR"] = str(maildir(tmp_path, dsn(gone, sent[gone])))
    scheduler.bounces_job(app, threading.Event())
    assert status(session, gone) is SubscriberStatus.BOUNCED


def test_bounce_maildir_must_be_a_maildir(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="MAILER_BOUNCE_MAILDIR"):
        load_config({"MAILER_BOUNCE_MAILDIR": str(tmp_path)}, None, str(tmp_path))


def test_parse_reads_the_recipient_blocks() -> None:
    notification = parse_notification(dsn("Someone@Example.org", "Message-ID: <digest-1.2.3@example.it>\r\n"))
    assert notification is not None
    assert [(r.recipient, r.action, r.status, r.hard) for r in notification.reports] == [
        ("someone@example.org", "failed", "5.1.1", True)]
    assert notification.message_ids == ("<digest-1.2.3@example.it>",)
    assert notification.complaint is None


# --- the stamp: only a report that quotes a copy's own MAC counts ------------------------------


def _delivery_ids(session: Session, digest_id: int) -> dict[str, int]:
    """Address -> delivery id of a digest."""
    rows = session.execute(
        select(Subscriber.email, Delivery.id).join(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .where(Delivery.digest_id == digest_id)).tuples().all()
    return {email: delivery_id for email, delivery_id in rows if email is not None}


def test_each_copy_carries_its_delivery_id_and_a_mac(
    app: Flask, session: Session, sent: dict[str, str]
) -> None:
    ids = _delivery_ids(session, int(sent["digest"]))
    stamper = Stamper(app.config["SECRET_KEY"])
    for address, delivery_id in ids.items():
        found = re.search(r"^Message-ID: <digest-(\d+)\.(\d+)\.(\d+)\.([0-9a-f]{24})@example\.it>\r$",
                          sent[address], re.M)
        assert found is not None, sent[address]
        assert int(found.group(1)) == int(sent["digest"]) and int(found.group(2)) == delivery_id
        assert stamper.verify(delivery_id, found.group(4))
        # Another key (another site, a guessed key) makes another MAC.
        assert not Stamper("another key").verify(delivery_id, found.group(4))
    assert len({re.search(r"\.([0-9a-f]{24})@", sent[a]).group(1) for a in ids}) == len(ids)  # type: ignore[union-attr]


def test_a_forged_or_guessed_stamp_suppresses_nobody(
    runner: FlaskCliRunner, session: Session, sent: dict[str, str], tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    digest_id = int(sent["digest"])
    ids = _delivery_ids(session, digest_id)
    victim = min(ids)
    real = re.search(r"<digest-[^>]+>", sent[victim]).group(0)  # type: ignore[union-attr]
    wrong_mac = re.sub(r"\.[0-9a-f]{24}@", "." + "0" * 24 + "@", real)
    # Before stamps, the id alone was trusted: the ids are sequential, so a guess was easy.
    guessed = f"<digest-{digest_id}.{ids[victim]}.20261125080000@example.it>"
    next_id = re.sub(r"digest-(\d+)\.(\d+)\.", lambda m: f"digest-{m[1]}.{int(m[2]) + 1}.", real)
    forged = [
        dsn(victim, f"Message-ID: {wrong_mac}\r\n"),
        dsn(victim, f"Message-ID: {guessed}\r\n"),
        dsn(victim, f"Message-ID: {next_id}\r\n"),  # another copy's id under this copy's MAC
        dsn(victim, f"Message-ID: {wrong_mac.upper()}\r\n"
                    f"Return-Path: <bounces+{ids[victim]}-{'a' * 24}@example.it>\r\n"),  # a VERP guess
    ]
    with caplog.at_level("WARNING", logger="mailer.delivery.bounces"):
        result = runner.invoke(args=["bounces", "process", str(maildir(tmp_path, *forged))])
    assert result.exit_code == 0, result.output
    assert result.output.count("do not verify: a forged or foreign report, ignored") == 3
    assert result.output.count("names none of our deliveries") == 1  # the guess has no stamp at all
    assert "0 readers suppressed" in result.output
    assert len([r for r in caplog.records if "do not verify" in r.getMessage()]) == 3
    assert {status(session, address) for address in ids} == {SubscriberStatus.CONFIRMED}
    assert not any(delivery(session, digest_id, address).bounce for address in ids)


def test_a_verp_return_path_identifies_a_bounce_without_returned_headers(
    make_app: Callable[..., Flask], smtp_server: SmtpSink,
) -> None:
    """With MAILER_BOUNCE_ADDRESS, each copy's envelope sender is bounces+<id>-<mac>@: a DSN that
    returns nothing of the message still names it, by the address it was sent back to."""
    app = make_app(BOUNCE_ADDRESS="bounces@example.it")
    with get_sessionmaker(app)() as session:
        made = make_digest(session, 2)
        session.execute(update(Subscriber).values(confirmed_at=utcnow() - timedelta(days=30)))
        session.commit()
        deliver(app, echo=lambda _line: None)
        mails = {m.rcpt_tos[0]: m for m in smtp_server.wait_for(2)}
        ids = _delivery_ids(session, made.digest_id)
        stamper = Stamper(app.config["SECRET_KEY"])
        for address, mail in mails.items():
            assert mail.mail_from == f"bounces+{ids[address]}-{stamper.mac(ids[address])}@example.it"
        gone, other = sorted(mails)
        # Postfix's bounce goes to the envelope sender; local delivery adds Delivered-To.
        report = dsn(gone, None).replace(
            b"To: newsletter@example.it\r\n",
            f"Delivered-To: {mails[gone].mail_from}\r\nTo: {mails[gone].mail_from}\r\n".encode())
        # The same with another reader's VERP address: their stamp verifies, but they are not the recipient.
        crossed = dsn(gone, None).replace(b"To: newsletter@example.it\r\n",
                                          f"To: {mails[other].mail_from}\r\n".encode())
        runner = app.test_cli_runner()
        result = runner.invoke(args=["bounces", "process", "-"], input=crossed)
        assert "names none of our deliveries" in result.output and "0 readers suppressed" in result.output
        result = runner.invoke(args=["bounces", "process", "-"], input=report)
        assert result.exit_code == 0 and f"{gone}: hard bounce 5.1.1" in result.output, result.output
        assert status(session, gone) is SubscriberStatus.BOUNCED
        assert status(session, other) is SubscriberStatus.CONFIRMED


def test_what_is_kept_of_a_bounce_is_one_short_line(
    runner: FlaskCliRunner, session: Session, sent: dict[str, str]
) -> None:
    gone = min(address for address in sent if "@" in address)
    long = dsn(gone, sent[gone]).replace(b"rejected: User unknown", b"rejected: User unknown " + b"x" * 2000)
    assert runner.invoke(args=["bounces", "process", "-"], input=long).exit_code == 0
    reply = delivery(session, int(sent["digest"]), gone).last_reply or ""
    assert reply.startswith("bounced later (DSN): 5.1.1 smtp; 550 5.1.1") and len(reply) <= 200


# --- retention of the report mails ---------------------------------------------------------------


def test_the_bounces_job_deletes_report_mails_read_long_ago(
    app: Flask, session: Session, sent: dict[str, str], tmp_path: Path
) -> None:
    gone = min(address for address in sent if "@" in address)
    root = maildir(tmp_path, dsn(gone, sent[gone]))
    now = time.time()
    old, recent = root / "cur" / "1700000000.1.relay:2,S", root / "cur" / "1764000000.2.relay:2,S"
    for path, age in ((old, 31), (recent, 29)):
        path.write_bytes(b"a report read earlier")
        os.utime(path, (now - age * 86400, now - age * 86400))
    waiting = root / "new" / "1700000000.3.relay"  # unread, however old: kept
    waiting.write_bytes(b"not read yet")
    os.utime(waiting, (now - 90 * 86400, now - 90 * 86400))
    app.config.update(BOUNCE_MAILDIR=str(root), BOUNCE_RETENTION_DAYS=30)
    scheduler.bounces_job(app, threading.Event())
    assert status(session, gone) is SubscriberStatus.BOUNCED
    left = sorted(p.name for p in (root / "cur").iterdir())
    # The old one is gone; the recent one and the two just read (moved from new/) stay.
    assert old.name not in left and recent.name in left and "1764064800.0.relay:2,S" in left
    assert "1700000000.3.relay:2,S" not in left  # read now, but it arrived 90 days ago: gone at once
    assert not list((root / "new").iterdir())


def test_bounce_retention_days_is_checked_at_start(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="MAILER_BOUNCE_RETENTION_DAYS"):
        load_config({"MAILER_BOUNCE_RETENTION_DAYS": "0"}, None, str(tmp_path), Launch.COMMAND)
    assert load_config({}, None, str(tmp_path), Launch.COMMAND)["BOUNCE_RETENTION_DAYS"] == 30
