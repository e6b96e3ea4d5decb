"""CSV import and export: bulk, line-numbered problems, suppression, no mail, consent record."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from mailer.models import ConsentChannel, ConsentEvent, OutboundMail, Subscriber, SubscriberStatus
from mailer.subscriptions import CsvError, erase, export_csv, import_csv, unsubscribe
from mailer.subscriptions.addresses import email_hash, erased_hash
from tests.subscriptions.conftest import confirm_path, events, mails, subscribe, subscriber


def run_import(app: Flask, session: Session, text: str, confirmed: bool = False, locale: str = "it"):
    """Import ``text``; problems are worded in ``locale`` (MAILER_LOCALE)."""
    with app.app_context():
        report = import_csv(session, io.StringIO(text), confirmed=confirmed, source="list.csv",
                            config={**app.config, "LOCALE": locale})
    session.commit()
    return report


def test_import_reports_bad_rows_by_line(app: Flask, session: Session) -> None:
    text = (
        "Email,Language,Topics\n"           # 1
        "anna@example.it,it,ai web\n"       # 2
        "not-an-address,it,\n"              # 3
        "\n"                                # 4 (blank: ignored)
        "bruno@example.it,fr,\n"            # 5
        "carla@example.it,en,gossip\n"      # 6
        "\"dario@example.it\",en,\"ai;mobile\"\n"  # 7
        "ANNA@example.it,en,\n"             # 8 duplicate of line 2
        "eva@example.it,en,,extra\n"        # 9 too many fields
        "\"multi\nline@example.it\",en,\n"  # 10-11
        "fabio@città.it\n"                  # 12: short row, defaults
    )
    report = run_import(app, session, text, locale="en")
    assert [(p.line, p.reason.split(":")[0]) for p in report.problems] == [
        (3, "'not-an-address'"), (5, "unknown language 'fr' (expected it, en)"), (6, "unknown topic"),
        (9, "4 fields, the header has 3"), (10, "'multi\\nline@example.it'"),
    ]
    assert "line break" in report.problems[-1].reason
    assert (report.imported, report.duplicates, report.suppressed) == (3, 1, 0)
    assert "imported 3" in report.summary() and "5 bad rows" in report.summary()
    anna = subscriber(session, "anna@example.it")
    assert (anna.status, anna.language, anna.topics) == (SubscriberStatus.PENDING, "it", "ai,web")
    assert subscriber(session, "dario@example.it").topics == "ai,mobile"
    fabio = subscriber(session, "fabio@xn--citt-3na.it")
    assert fabio.language == "en" and fabio.confirm_requested_at is None  # MAILER_LOCALE by default
    assert session.scalar(select(func.count(OutboundMail.id))) == 0  # no mail, ever
    [event] = events(session, anna.email_hash)
    assert (event.action, event.channel, event.source_page) == ("import", "import", "list.csv")


def test_import_confirmed(app: Flask, session: Session) -> None:
    run_import(app, session, "email\nanna@example.it\n", confirmed=True)
    anna = subscriber(session, "anna@example.it")
    assert anna.status is SubscriberStatus.CONFIRMED and anna.confirmed_at is not None
    assert events(session, anna.email_hash)[0].details == {"confirmed": True, "status": "confirmed"}


def test_import_skips_known_and_suppressed(app: Flask, client, session: Session) -> None:
    for address in ("pending@example.it", "gone@example.it", "erased@example.it", "bounced@example.it"):
        subscribe(client, app, address)
    for mail in mails(session):
        client.post(confirm_path(mail))
    unsubscribe(session, subscriber(session, "gone@example.it"), ConsentChannel.ADMIN)
    with app.app_context():
        erase(session, subscriber(session, "erased@example.it"), ConsentChannel.ADMIN)
    subscriber(session, "bounced@example.it").status = SubscriberStatus.BOUNCED
    session.commit()
    report = run_import(app, session, "email\npending@example.it\ngone@example.it\nerased@example.it\n"
                                      "bounced@example.it\nnew@example.it\n", confirmed=True)
    assert (report.imported, report.duplicates, report.suppressed) == (1, 1, 3)
    assert subscriber(session, "gone@example.it").status is SubscriberStatus.UNSUBSCRIBED
    assert session.scalar(select(Subscriber.status).where(Subscriber.email_hash == erased_hash(
        email_hash("erased@example.it"), app.config["SECRET_KEY"]))) is SubscriberStatus.ERASED


@pytest.mark.parametrize(("text", "words"), [
    ("", "empty"),
    ("name,surname\nanna,rossi\n", "no 'email' column"),
])
def test_unreadable_files(app: Flask, session: Session, text: str, words: str) -> None:
    with pytest.raises(CsvError, match=words):
        run_import(app, session, text)


def test_bulk_import(app: Flask, session: Session) -> None:
    rows = "".join(f"reader{n}@example.it,{'it' if n % 2 else 'en'},\n" for n in range(6000))
    report = run_import(app, session, "email,language,topics\n" + rows, confirmed=True)
    assert report.imported == 6000 and not report.problems
    assert session.scalar(select(func.count(Subscriber.id))) == 6000
    assert session.scalar(select(func.count(ConsentEvent.id)).where(ConsentEvent.subscriber_id.is_not(None))) == 6000
    # Each event belongs to its own subscriber (ids matched in batch order).
    mismatched = session.scalar(
        select(func.count(ConsentEvent.id)).join(Subscriber, Subscriber.id == ConsentEvent.subscriber_id)
        .where(Subscriber.email_hash != ConsentEvent.email_hash))
    assert mismatched == 0


def test_export_has_status_and_consent_record(app: Flask, client, session: Session) -> None:
    client.post("/api/subscribe", json={"email": "anna@example.it", "consent": True, "source": "https://site/a"},
                headers={"User-Agent": "=cmd|' /C calc'!A0"})
    client.post(confirm_path(mails(session)[0]), environ_base={"REMOTE_ADDR": "198.51.100.9"})
    run_import(app, session, "email\nbruno@example.it\n")
    subscribe(client, app, "carla@example.it")
    with app.app_context():
        erase(session, subscriber(session, "carla@example.it"), ConsentChannel.ADMIN)
    session.commit()
    out = io.StringIO()
    assert export_csv(session, out) == 3
    rows = {r["email_hash"]: r for r in csv.DictReader(io.StringIO(out.getvalue()))}
    anna = rows[email_hash("anna@example.it")]
    assert anna["email"] == "anna@example.it" and anna["status"] == "confirmed"
    assert anna["signup_channel"] == "api" and anna["signup_ip"] == "127.0.0.1"
    assert anna["signup_source"] == "https://site/a" and len(anna["consent_text_version"]) == 64
    assert anna["signup_user_agent"].startswith("'=")  # a spreadsheet will not run it
    assert anna["confirm_ip"] == "198.51.100.9" and anna["confirm_at"].endswith("Z")
    bruno = rows[email_hash("bruno@example.it")]
    assert (bruno["status"], bruno["signup_channel"], bruno["confirm_at"]) == ("pending", "import", "")
    carla = rows[erased_hash(email_hash("carla@example.it"), app.config["SECRET_KEY"])]
    assert (carla["email"], carla["status"], carla["signup_ip"]) == ("", "erased", "")


def test_export_then_import_keeps_opt_outs(app: Flask, client, session: Session, make_app) -> None:
    for address in ("anna@example.it", "bruno@example.it", "carla@example.it"):
        subscribe(client, app, address)
    for mail in mails(session):
        client.post(confirm_path(mail))
    unsubscribe(session, subscriber(session, "bruno@example.it"), ConsentChannel.ADMIN)
    with app.app_context():
        erase(session, subscriber(session, "carla@example.it"), ConsentChannel.ADMIN)
    session.commit()
    out = io.StringIO()
    export_csv(session, out)
    # Into an empty list, as when moving to a new server.
    session.execute(delete(ConsentEvent))
    session.execute(delete(Subscriber))
    session.commit()
    report = run_import(app, session, out.getvalue(), confirmed=True)
    assert report.imported == 3 and not report.problems
    assert subscriber(session, "anna@example.it").status is SubscriberStatus.CONFIRMED
    assert subscriber(session, "bruno@example.it").status is SubscriberStatus.UNSUBSCRIBED
    # The erased row moves with its keyed hash (the same secret key on the new server).
    kept = erased_hash(email_hash("carla@example.it"), app.config["SECRET_KEY"])
    carla = session.scalar(select(Subscriber).where(Subscriber.email_hash == kept))
    assert carla is not None and carla.status is SubscriberStatus.ERASED and carla.email is None


def test_a_round_trip_keeps_each_status_and_the_proof_of_consent(
        app: Flask, client, session: Session) -> None:
    """Export, move to an empty server, import with --confirmed: nobody changes state, the record stays."""
    client.post("/api/subscribe", json={"email": "anna@example.it", "consent": True, "source": "https://site/a"},
                headers={"User-Agent": "Browser/1"})
    client.post(confirm_path(mails(session)[0]), environ_base={"REMOTE_ADDR": "198.51.100.9"})
    subscribe(client, app, "bruno@example.it")  # never confirmed
    subscribe(client, app, "carla@example.it")
    client.post(confirm_path(mails(session, "carla@example.it")[0]))
    unsubscribe(session, subscriber(session, "carla@example.it"), ConsentChannel.ADMIN)  # confirmed, then left
    session.commit()
    first = io.StringIO()
    export_csv(session, first)
    session.execute(delete(ConsentEvent))
    session.execute(delete(OutboundMail))
    session.execute(delete(Subscriber))
    session.commit()
    report = run_import(app, session, first.getvalue(), confirmed=True)
    assert report.imported == 3 and not report.problems
    anna, bruno = subscriber(session, "anna@example.it"), subscriber(session, "bruno@example.it")
    assert anna.status is SubscriberStatus.CONFIRMED
    assert bruno.status is SubscriberStatus.PENDING  # --confirmed does not confirm who never did
    # ... and the consent log does not say it did.
    assert [e.details["confirmed"] for e in events(session, bruno.email_hash)] == [False]
    assert [e.details["confirmed"] for e in events(session, anna.email_hash)] == [True]
    before = {r["email"]: r for r in csv.DictReader(io.StringIO(first.getvalue()))}
    assert anna.confirmed_at is not None and anna.confirmed_at.isoformat(timespec="seconds") + "Z" == \
        before["anna@example.it"]["confirmed_at"]
    again = io.StringIO()
    export_csv(session, again)
    after = {r["email"]: r for r in csv.DictReader(io.StringIO(again.getvalue()))}
    for column in ("signup_at", "signup_channel", "signup_ip", "signup_user_agent", "signup_source",
                   "consent_text_version", "confirm_at", "confirm_ip", "created_at", "confirmed_at", "status"):
        assert after["anna@example.it"][column] == before["anna@example.it"][column], column
    assert after["anna@example.it"]["confirm_ip"] == "198.51.100.9"
    # A reader who left keeps when they had confirmed and when they left.
    for column in ("status", "confirmed_at", "unsubscribed_at", "created_at"):
        assert after["carla@example.it"][column] == before["carla@example.it"][column], column


def test_an_address_that_looks_like_a_formula_is_defused_and_comes_back_whole(
        app: Flask, client, session: Session) -> None:
    sneaky = "=cmd|'/ccalc'!a0@example.com"
    assert client.post("/api/subscribe", json={"email": sneaky, "consent": True}).status_code == 202
    out = io.StringIO()
    export_csv(session, out)
    [row] = csv.DictReader(io.StringIO(out.getvalue()))
    assert row["email"] == "'" + sneaky  # a spreadsheet shows it, never runs it
    session.execute(delete(ConsentEvent))
    session.execute(delete(OutboundMail))
    session.execute(delete(Subscriber))
    session.commit()
    assert run_import(app, session, out.getvalue()).imported == 1
    assert subscriber(session, sneaky).email == sneaky


def test_cli_imports_an_italian_excel_file(runner: FlaskCliRunner, session: Session, tmp_path: Path) -> None:
    """Windows-1252 with semicolons, as Excel saves "CSV" in Italy; problems in English like the rest."""
    source = tmp_path / "excel.csv"
    source.write_bytes("Email;Nome;Language\r\nlucia@example.it;Lucìa;it\r\nniccolò;Niccolò;it\r\n".encode("cp1252"))
    result = runner.invoke(args=["subscribers", "import", str(source)])
    assert result.exit_code == 0, result.output
    assert "imported 1" in result.output and "windows-1252" in result.output
    assert "excel.csv:3:" in result.output and "@" in result.output
    assert subscriber(session, "lucia@example.it").language == "it"


def test_cli_import_and_export(app: Flask, runner: FlaskCliRunner, session: Session, tmp_path: Path) -> None:
    source = tmp_path / "list.csv"
    source.write_text("\ufeffemail,language\nanna@example.it,it\nwrong,it\n", encoding="utf-8")
    result = runner.invoke(args=["subscribers", "import", str(source), "--confirmed"])
    assert result.exit_code == 0, result.output
    assert "list.csv:3:" in result.output and "imported 1" in result.output
    assert subscriber(session, "anna@example.it").status is SubscriberStatus.CONFIRMED
    result = runner.invoke(args=["subscribers", "export"])
    assert result.exit_code == 0
    assert "anna@example.it,confirmed,it" in result.output
    target = tmp_path / "out.csv"
    assert runner.invoke(args=["subscribers", "export", "--out", str(target)]).exit_code == 0
    assert target.read_text().startswith("email,status,language,topics")
