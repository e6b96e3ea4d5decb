"""``subscribers import --send-confirmation``: a request to confirm for each new pending reader.

The requests go through the outbox like a signup's mail, in the import's own
wording and the reader's language; their link confirms through the normal
route, and readers who never confirm are purged like unconfirmed signups.
"""

from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mailer.delivery import send_outbox
from mailer.models import ConsentChannel, MailKind, OutboundMail, Subscriber, SubscriberStatus, utcnow
from mailer.subscriptions import import_csv, purge_unconfirmed, unsubscribe
from mailer.subscriptions.addresses import email_hash
from tests.smtp_sink import SmtpSink
from tests.subscriptions.conftest import (
    LINK,
    confirm_path,
    delivered,
    english,
    events,
    mails,
    subscribe,
    subscriber,
)

LIST = (
    "email,language,status\n"
    "anna@example.it,it,\n"             # 2: new, Italian
    "bob@example.org,en,\n"             # 3: new, English
    "ANNA@example.it,en,\n"             # 4: repeated in the file
    "known@example.it,it,\n"            # 5: already a reader (pending)
    "gone@example.it,it,\n"             # 6: unsubscribed before: suppressed
    "left@example.it,it,unsubscribed\n" # 7: the file's own opt-out
    "dead@example.it,en,bounced\n"      # 8: the file's own bounce
    "not-an-address,it,\n"              # 9: bad row
)


def import_requests(session: Session) -> list[OutboundMail]:
    """The confirmation requests queued by imports, oldest first."""
    return [mail for mail in mails(session) if mail.kind == MailKind.IMPORT_CONFIRM]


def write_list(tmp_path: Path, text: str = LIST) -> Path:
    source = tmp_path / "moved.csv"
    source.write_text(text, encoding="utf-8")
    return source


def run_import(app: Flask, session: Session, text: str, **options: bool):
    with app.app_context():
        report = import_csv(session, io.StringIO(text), source="moved.csv", **options)  # type: ignore[arg-type]
    session.commit()
    return report


def test_cli_queues_one_request_per_new_pending_reader(
    app: Flask, client: FlaskClient, runner: FlaskCliRunner, session: Session, tmp_path: Path,
) -> None:
    subscribe(client, app, "known@example.it")
    subscribe(client, app, "gone@example.it")
    client.post(confirm_path(mails(session, "gone@example.it")[0]))
    unsubscribe(session, subscriber(session, "gone@example.it"), ConsentChannel.ADMIN)
    session.commit()
    signup_mails = len(mails(session))
    result = runner.invoke(args=["subscribers", "import", str(write_list(tmp_path)), "--send-confirmation"])
    assert result.exit_code == 0, result.output
    assert "moved.csv:9:" in result.output
    assert "imported 4, skipped 2 already known, 1 suppressed" in result.output
    assert "queued 2 confirmation requests: the scheduler" in result.output
    requests = import_requests(session)
    assert sorted(mail.to_address for mail in requests) == ["anna@example.it", "bob@example.org"]
    assert len(mails(session)) == signup_mails + 2  # nothing more for anyone else
    for address in ("anna@example.it", "bob@example.org"):
        reader = subscriber(session, address)
        assert reader.status is SubscriberStatus.PENDING
        assert reader.confirm_requested_at is not None and len(reader.confirmations_sent) == 1
        [event] = events(session, reader.email_hash)
        assert event.action == "import"
        assert event.details == {"confirmed": False, "status": "pending", "confirmation_requested": True}
    for address, status in (("left@example.it", "unsubscribed"), ("dead@example.it", "bounced")):
        reader = subscriber(session, address)
        assert reader.status == status and reader.confirm_requested_at is None
        assert events(session, reader.email_hash)[0].details["confirmation_requested"] is False
    # The reader already known keeps its own signup, and gets no second mail.
    assert len(mails(session, "known@example.it")) == 1


def test_the_request_speaks_the_import_wording_in_the_readers_language_and_confirms(
    app: Flask, client: FlaskClient, session: Session, smtp_server: SmtpSink,
) -> None:
    run_import(app, session, "email,language\nanna@example.it,it\nbob@example.org,en\n", send_confirmation=True)
    assert send_outbox(app) == 2
    [italian] = delivered(smtp_server, "anna@example.it")
    [english] = delivered(smtp_server, "bob@example.org")
    texts = {}
    for received, language in ((italian, "it"), (english, "en")):
        message = received.message
        plain = message.get_body(("plain",)).get_content()
        html = message.get_body(("html",)).get_content()
        texts[language] = " ".join(plain.split())  # the text part is wrapped at 76
        link = LINK.search(plain)
        assert link and f'href="{link.group(0)}"' in html
    assert "Conferma la tua iscrizione" in italian.message["Subject"]
    assert "anna@example.it è nell'elenco dei lettori della newsletter di Notizie Tech" in texts["it"]
    assert "Se non confermi entro 7 giorni, cancelleremo il tuo indirizzo" in texts["it"]
    assert "bob@example.org is on the list of readers of the Notizie Tech newsletter" in texts["en"]
    assert "If you do not confirm within 7 days, we will delete your address" in texts["en"]
    # Nobody asked: the signup's wording would say someone did.
    assert "speriamo tu" not in texts["it"] and "hopefully you" not in texts["en"]
    assert "did not ask" not in texts["en"]
    # The link is the normal confirmation link.
    path = LINK.search(texts["it"]).group(1)  # type: ignore[union-attr]
    assert client.get(path).status_code == 200
    assert subscriber(session, "anna@example.it").status is SubscriberStatus.PENDING  # a GET changes nothing
    assert client.post(path).status_code == 200
    anna = subscriber(session, "anna@example.it")
    assert anna.status is SubscriberStatus.CONFIRMED and anna.confirm_requested_at is None
    assert [e.action for e in events(session, anna.email_hash)] == ["import", "confirm"]


def test_the_wording_names_the_purge_delay_when_it_is_shorter(make_app, session: Session) -> None:
    app = make_app(PURGE_UNCONFIRMED_DAYS=3)
    run_import(app, session, "email,language\nbob@example.org,en\n", send_confirmation=True)
    [request] = import_requests(session)
    assert "If you do not confirm within 3 days" in request.text and "within 3 days" in request.html


def test_readers_who_never_confirm_are_purged(app: Flask, client: FlaskClient, session: Session) -> None:
    now = utcnow()
    run_import(app, session, "email\nsilent@example.it\nkeen@example.it\n", send_confirmation=True)
    run_import(app, session, "email\nquiet@example.it\n")  # no request: never purged
    keen = [mail for mail in import_requests(session) if mail.to_address == "keen@example.it"]
    link = confirm_path(keen[0])
    assert client.post(link).status_code == 200
    silent_hash = email_hash("silent@example.it")
    days = int(app.config["PURGE_UNCONFIRMED_DAYS"])
    assert purge_unconfirmed(session, app.config, now + timedelta(days=days - 1)) == 0  # not yet
    assert purge_unconfirmed(session, app.config, now + timedelta(days=days, minutes=1)) == 1
    session.commit()
    assert set(session.scalars(select(Subscriber.email))) == {"keen@example.it", "quiet@example.it"}
    assert [e.action for e in events(session, silent_hash)] == ["import", "purge"]
    assert session.scalar(select(func.count(OutboundMail.id)).where(OutboundMail.to_address == "silent@example.it")) \
        == 0


def test_confirmed_and_send_confirmation_exclude_each_other(
    runner: FlaskCliRunner, session: Session, tmp_path: Path,
) -> None:
    result = runner.invoke(args=["subscribers", "import", str(write_list(tmp_path)), "--confirmed",
                                 "--send-confirmation"])
    assert result.exit_code == 1
    assert len(result.output.strip().splitlines()) == 1
    assert result.output.startswith("error: --confirmed and --send-confirmation")
    assert session.scalar(select(func.count(Subscriber.id))) == 0


def test_requests_are_outside_the_signup_hourly_cap(make_app, session: Session) -> None:
    """The cap is the public form's anti-abuse limit: an import neither waits for it nor uses it up."""
    app = make_app(CONFIRM_MAILS_PER_HOUR=2)
    client = english(app.test_client())
    rows = "".join(f"reader{n}@example.it\n" for n in range(5))
    report = run_import(app, session, "email\n" + rows, send_confirmation=True)
    assert report.confirmation_requests == 5 and len(import_requests(session)) == 5
    for address in ("first@example.it", "second@example.it", "third@example.it"):
        subscribe(client, app, address)
    form_mails = [mails(session, a) for a in ("first@example.it", "second@example.it", "third@example.it")]
    # The cap still holds for the form, counting only the form's mails: the third waits for the next hour.
    assert [len(found) for found in form_mails] == [1, 1, 1]
    held = form_mails[2][0]
    assert held.not_before >= form_mails[0][0].not_before + timedelta(hours=1)
    assert [m.not_before == m.created_at for found in form_mails[:2] for m in found] == [True, True]


def test_without_the_option_nothing_is_queued(app: Flask, session: Session) -> None:
    report = run_import(app, session, "email\nanna@example.it\n")
    assert report.confirmation_requests == 0 and mails(session) == []
    assert events(session, email_hash("anna@example.it"))[0].details == {"confirmed": False, "status": "pending"}
