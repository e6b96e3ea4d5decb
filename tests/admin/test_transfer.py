"""CSV import (upload) and export (streamed download) from the admin."""

from __future__ import annotations

import csv
import io
import re
import threading

import pytest
from sqlalchemy import func, select

from mailer.admin.streaming import CHUNK, stream_writes
from mailer.models import ConsentEvent, MailKind, OutboundMail, Subscriber, SubscriberStatus
from tests.admin import seed
from tests.admin.conftest import add_admin, csrf_token, log_in
from tests.subscriptions.conftest import delivered


def _upload(client, body: bytes, confirmed: bool = False, name: str = "lista.csv", send_confirmation: bool = False,
            csrf: str | None = None):
    data: dict[str, object] = {"file": (io.BytesIO(body), name)}
    if confirmed:
        data["confirmed"] = "y"
    if send_confirmation:
        data["send_confirmation"] = "y"
    if csrf:
        data["csrf_token"] = csrf
    return client.post("/admin/readers/import", data=data, content_type="multipart/form-data")


def test_import_page(admin_client):
    html = admin_client.get("/admin/readers/import").get_data(as_text=True)
    assert 'enctype="multipart/form-data"' in html and 'name="confirmed"' in html
    assert 'name="send_confirmation"' in html and "Send them a request to confirm" in html


def test_import_reports_bad_rows_by_line(admin_client, session):
    seed.reader(session, "gia@example.it")
    seed.reader(session, "via@example.it", SubscriberStatus.UNSUBSCRIBED)
    session.commit()
    body = ("\ufeffemail,language\n"
            "nuovo@example.it,it\n"
            "non-un-indirizzo,it\n"
            "gia@example.it,en\n"
            "via@example.it,it\n"
            "<script>x</script>@example.it,it\n"
            "altro@example.it,en\n").encode()
    response = _upload(admin_client, body, confirmed=True)
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "Imported 2" in html
    problems = html.split('id="import-problems"', 1)[1]
    assert re.findall(r'<td class="num">(\d+)</td>', problems) == ["3", "6"]
    assert "<script>x" not in html
    new = session.scalar(select(Subscriber).where(Subscriber.email == "nuovo@example.it"))
    assert new.status is SubscriberStatus.CONFIRMED
    # The import is in the consent log, with the file's name.
    event = session.scalar(select(ConsentEvent).where(ConsentEvent.subscriber_id == new.id))
    assert event.action == "import" and "lista.csv" in str(event.details) + str(event.source_page)
    # Still suppressed.
    assert session.scalar(select(Subscriber.status).where(Subscriber.email == "via@example.it")) == "unsubscribed"


def test_import_without_consent_makes_pending_readers(admin_client, session):
    response = _upload(admin_client, b"email\nuno@example.it\n")
    assert response.status_code == 200
    assert session.scalar(select(Subscriber.status).where(Subscriber.email == "uno@example.it")) == "pending"


def test_import_with_confirmation_requests(admin_client, session, smtp_server):
    seed.reader(session, "gia@example.it", SubscriberStatus.PENDING)
    seed.reader(session, "via@example.it", SubscriberStatus.UNSUBSCRIBED)
    session.commit()
    body = b"email,language\nnuovo@example.it,it\nnew@example.org,en\ngia@example.it,it\nvia@example.it,it\n"
    response = _upload(admin_client, body, send_confirmation=True)
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "Imported 2" in html and "2 confirmation requests queued" in html
    assert 'id="import-confirmations"' in html
    requests = session.scalars(select(OutboundMail).where(OutboundMail.kind == MailKind.IMPORT_CONFIRM)).all()
    assert sorted(m.to_address for m in requests) == ["new@example.org", "nuovo@example.it"]
    # The web app's own outbox thread sends them at once.
    [received] = delivered(smtp_server, "nuovo@example.it")
    assert "è nell'elenco dei lettori" in received.message.get_body(("plain",)).get_content()
    assert smtp_server.to("gia@example.it") == [] and smtp_server.to("via@example.it") == []


def test_import_refuses_both_boxes(admin_client, session):
    response = _upload(admin_client, b"email\nuno@example.it\n", confirmed=True, send_confirmation=True)
    assert response.status_code == 400
    assert "tick only one of the two" in response.get_data(as_text=True)
    assert session.scalar(select(func.count()).select_from(Subscriber)) == 0
    assert session.scalar(select(func.count()).select_from(OutboundMail)) == 0


def test_import_with_confirmation_requests_and_csrf_on(make_app, session):
    app = make_app(WTF_CSRF_ENABLED=True)
    add_admin(session)
    session.commit()
    client = app.test_client()
    assert log_in(client).status_code == 303
    token = csrf_token(client.get("/admin/readers/import").get_data(as_text=True))
    assert token
    assert _upload(client, b"email\nuno@example.it\n", send_confirmation=True).status_code == 400  # no token
    response = _upload(client, b"email\nuno@example.it\n", send_confirmation=True, csrf=token)
    assert response.status_code == 200
    assert "1 confirmation request queued" in response.get_data(as_text=True)
    assert session.scalar(select(OutboundMail.to_address).where(OutboundMail.kind == MailKind.IMPORT_CONFIRM)) \
        == "uno@example.it"


@pytest.mark.parametrize(("body", "message"), [
    (b"", "empty"),
    (b"name,phone\nMario,123\n", "no &#39;email&#39; column"),
])
def test_import_of_an_unreadable_file(admin_client, session, body, message):
    response = _upload(admin_client, body)
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    assert session.scalar(select(func.count()).select_from(Subscriber)) == 0


def test_an_italian_excel_file_imports(admin_client, session):
    """Excel on an Italian Windows saves "CSV" as Windows-1252 with semicolons."""
    body = "email;nome;language;topics\nlucia@example.it;Lucìa;it;ai\nmario@example.it;Niccolò;en;web\n".encode(
        "cp1252")
    response = _upload(admin_client, body)
    page = response.get_data(as_text=True)
    assert response.status_code == 200, page
    assert session.scalar(select(Subscriber.topics).where(Subscriber.email == "lucia@example.it")) == "ai"
    assert session.scalar(select(Subscriber.language).where(Subscriber.email == "mario@example.it")) == "en"
    assert "Windows-1252" in page


def test_import_without_a_file(admin_client):
    response = admin_client.post("/admin/readers/import", data={}, content_type="multipart/form-data")
    assert response.status_code == 400
    assert "Choose a CSV file." in response.get_data(as_text=True)


def test_export_streams_every_reader(admin_client, session):
    for n in range(3):
        seed.reader(session, f"r{n}@example.it")
    seed.reader(session, "formula@example.it", SubscriberStatus.PENDING)
    session.commit()
    response = admin_client.get("/admin/readers/export.csv")
    assert response.status_code == 200
    assert response.is_streamed
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"].startswith('attachment; filename="subscribers-')
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert sorted(r["email"] for r in rows) == ["formula@example.it", "r0@example.it", "r1@example.it", "r2@example.it"]
    assert {r["status"] for r in rows} == {"confirmed", "pending"}


def test_stream_writes_hands_over_chunks():
    def write(handle):
        for n in range(20_000):
            handle.write(f"{n},riga è\n")

    chunks = list(stream_writes(write))
    assert len(chunks) > 2 and all(len(c) >= CHUNK for c in chunks[:-1])
    text = b"".join(chunks).decode()
    assert text.splitlines()[0] == "0,riga è" and text.splitlines()[-1] == "19999,riga è"


def test_stream_writes_raises_the_writer_error():
    def write(handle):
        handle.write("x" * (CHUNK + 1))
        raise RuntimeError("database went away")

    stream = stream_writes(write)
    assert next(stream)
    with pytest.raises(RuntimeError, match="database went away"):
        list(stream)


def test_stream_writes_stops_the_writer_when_the_client_leaves():
    stopped = threading.Event()

    def write(handle):
        try:
            while True:
                handle.write("y" * 1024)
        finally:
            stopped.set()

    stream = stream_writes(write)
    next(stream)
    stream.close()  # type: ignore[attr-defined]  # a generator: what the server does when the client disconnects
    assert stopped.wait(5)



def test_an_upload_over_the_limit_is_refused(admin_client, session, app):
    app.config["ADMIN_IMPORT_MAX_BYTES"] = 2000
    response = _upload(admin_client, b"email\n" + b"someone@example.it\n" * 200)
    assert response.status_code == 413
    assert session.scalar(select(func.count()).select_from(Subscriber)) == 0
    assert _upload(admin_client, b"email\nsomeone@example.it\n").status_code == 200
