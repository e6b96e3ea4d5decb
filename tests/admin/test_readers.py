"""Readers: search, filters, paging, the record with its consent log, unsubscribe, erase."""

from __future__ import annotations

import re

from sqlalchemy import select

from mailer.models import ConsentEvent, Subscriber, SubscriberStatus
from mailer.subscriptions.addresses import erased_hash
from tests.admin import seed

S = SubscriberStatus


def _emails(html: str) -> list[str]:
    return re.findall(r'<a href="/admin/readers/\d+">([^<]+)</a>', html)


def _list(client, **query) -> str:
    response = client.get("/admin/readers/", query_string=query)
    assert response.status_code == 200
    return str(response.get_data(as_text=True))


def test_search_and_filters(admin_client, session):
    seed.reader(session, "mario.rossi@example.it", topics="ai,web", language="it")
    seed.reader(session, "anna@example.org", S.PENDING, topics="security", language="en")
    seed.reader(session, "tutto@example.it", topics="")  # every topic
    seed.reader(session, "web_dev@example.it", S.UNSUBSCRIBED, topics="web")
    seed.reader(session, "webxdev@example.it", topics="mobile")
    session.commit()
    assert _emails(_list(admin_client, q="ROSSI")) == ["mario.rossi@example.it"]
    assert set(_emails(_list(admin_client, q="example.it"))) == {
        "mario.rossi@example.it", "tutto@example.it", "web_dev@example.it", "webxdev@example.it"}
    # "_" and "%" are characters, not wildcards.
    assert _emails(_list(admin_client, q="web_dev")) == ["web_dev@example.it"]
    assert _emails(_list(admin_client, q="%")) == []
    assert _emails(_list(admin_client, status="pending")) == ["anna@example.org"]
    # A topic filter finds readers who chose it and those who take every topic.
    assert set(_emails(_list(admin_client, topic="web"))) == {
        "mario.rossi@example.it", "tutto@example.it", "web_dev@example.it"}
    assert set(_emails(_list(admin_client, topic="ai", status="confirmed"))) == {
        "mario.rossi@example.it", "tutto@example.it"}
    assert _emails(_list(admin_client, language="en")) == ["anna@example.org"]
    # "#id" finds a reader by number.
    anna = session.scalar(select(Subscriber).where(Subscriber.email == "anna@example.org"))
    assert "anna@example.org" in _emails(_list(admin_client, q=f"#{anna.id}"))
    # Unknown filter values are ignored, not an error.
    assert len(_emails(_list(admin_client, status="nonsense", topic="'; drop table", language="xx"))) == 5


def test_paging(admin_client, session):
    for n in range(120):
        seed.reader(session, f"r{n:03d}@example.it")
    session.commit()
    first = _list(admin_client)
    assert len(_emails(first)) == 50
    assert _emails(first)[0] == "r119@example.it"  # newest first
    assert "120 readers" in first
    assert "Page 1 of 3" in first
    last = _list(admin_client, page=3)
    assert len(_emails(last)) == 20 and _emails(last)[-1] == "r000@example.it"
    # Filters survive paging; out-of-range and junk pages do not exist (404).
    assert 'href="/admin/readers/?page=2&amp;status=confirmed"' in _list(admin_client, status="confirmed")
    assert admin_client.get("/admin/readers/", query_string={"page": 99}).status_code == 404
    assert admin_client.get("/admin/readers/", query_string={"page": "abc"}).status_code == 404


def test_reader_record_escapes_hostile_values(admin_client, session):
    reader = seed.reader(session, "x@example.it", topics="ai")
    session.add(ConsentEvent(subscriber_id=reader.id, email_hash=reader.email_hash, action="confirm", channel="link",
                             ip="198.51.100.4", user_agent="<script>alert(1)</script>",
                             source_page="javascript:alert(2)", details={"note": "<img src=x onerror=alert(3)>"}))
    session.commit()
    response = admin_client.get(f"/admin/readers/{reader.id}", headers={"Accept-Language": "en"})
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<img src=x" not in html
    # The consent log: both events, newest first, with IP and consent text version.
    log = html.split('id="consent-log"', 1)[1]
    assert log.index(">confirm<") < log.index(">signup<")
    assert "203.0.113.7" in log and "198.51.100.4" in log
    assert "Artificial intelligence" in html  # topic names in the page's language
    italian = admin_client.get(f"/admin/readers/{reader.id}", headers={"Accept-Language": "it"})
    assert "Intelligenza artificiale" in italian.get_data(as_text=True)
    assert admin_client.get("/admin/readers/999999").status_code == 404


def test_unsubscribe_from_the_admin(admin_client, session):
    reader = seed.reader(session, "lascia@example.it")
    session.commit()
    response = admin_client.post(f"/admin/readers/{reader.id}/unsubscribe", data={"reason": "asked by phone"})
    assert response.status_code == 303
    session.expire_all()
    assert session.get(Subscriber, reader.id).status is S.UNSUBSCRIBED
    event = session.scalar(select(ConsentEvent).where(ConsentEvent.subscriber_id == reader.id,
                                                      ConsentEvent.action == "unsubscribe"))
    assert event.channel == "admin"
    assert "asked by phone" in str(event.details) and "admin@example.it" in str(event.details)
    page = admin_client.get(f"/admin/readers/{reader.id}").get_data(as_text=True)
    assert "The reader is unsubscribed." in page
    assert f'action="/admin/readers/{reader.id}/unsubscribe"' not in page  # nothing more to unsubscribe


def test_erase_needs_the_tick(admin_client, session):
    reader = seed.reader(session, "cancella@example.it")
    session.commit()
    response = admin_client.post(f"/admin/readers/{reader.id}/erase", data={})
    assert response.status_code == 303
    session.expire_all()
    assert session.get(Subscriber, reader.id).email == "cancella@example.it"
    assert "Tick the box" in admin_client.get(f"/admin/readers/{reader.id}").get_data(as_text=True)


def test_erase_from_the_admin(admin_client, session):
    reader = seed.reader(session, "cancella@example.it")
    session.commit()
    # What erasure keeps is the keyed hash (tests/subscriptions/test_erasure_hash.py).
    hashed = erased_hash(reader.email_hash, admin_client.application.config["SECRET_KEY"])
    reader_id = reader.id
    response = admin_client.post(f"/admin/readers/{reader_id}/erase", data={"confirm": "y"})
    assert response.status_code == 303
    session.expire_all()
    # What stays is a new row with the hash only; the old id (in every mailed link) is gone.
    assert session.get(Subscriber, reader_id) is None
    erased = session.scalar(select(Subscriber).where(Subscriber.email_hash == hashed))
    assert erased.status is S.ERASED and erased.email is None
    assert response.headers["Location"].endswith(f"/admin/readers/{erased.id}")
    events = session.scalars(select(ConsentEvent).where(ConsentEvent.email_hash == hashed)
                             .order_by(ConsentEvent.id)).all()
    assert [e.action for e in events][-1] == "erasure" and events[-1].channel == "admin"
    assert all(e.ip is None and e.subscriber_id is None for e in events)
    page = admin_client.get(f"/admin/readers/{erased.id}").get_data(as_text=True)
    assert "cancella@example.it" not in page
    assert "(erased)" in page
    assert "cancella@example.it" not in _list(admin_client)
