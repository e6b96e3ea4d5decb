"""Digests: preview, send now (one at a time), pause and resume, history, progress."""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

from sqlalchemy import select

from mailer.admin.sending import get_sender
from mailer.models import Delivery, DeliveryStatus, Digest, DigestStatus, SubscriberStatus
from tests.admin import seed


def _found(pattern: str, html: str) -> str:
    """The first group of ``pattern`` in ``html`` (the test fails when it is not there)."""
    match = re.search(pattern, html, re.S)
    assert match is not None, pattern
    return match.group(1)

def _rss(*titles: str) -> str:
    now = datetime.now(UTC)
    items = "".join(
        f"<item><title>{title}</title><link>https://www.example.it/{n}</link><guid>n{n}</guid>"
        f"<category>Web</category><description>Riassunto {n}</description>"
        f"<pubDate>{format_datetime(now - timedelta(hours=n + 1))}</pubDate></item>"
        for n, title in enumerate(titles)
    )
    return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Notizie</title>'
            f"<link>https://www.example.it/</link><description>d</description>{items}</channel></rss>")


def _sending_digest(session, readers=3, status=DigestStatus.SENDING):
    made = seed.digest(session, "2026-W05", status)
    for n in range(readers):
        seed.delivery(session, made, seed.reader(session, f"r{n}@example.it"), DeliveryStatus.PENDING)
    session.commit()
    return made


def test_digests_page(admin_client, session):
    done = seed.digest(session, "2026-W01", subject="Settimana <uno>")
    seed.delivery(session, done, seed.reader(session, "a@example.it"))
    seed.delivery(session, done, seed.reader(session, "b@example.it"), DeliveryStatus.FAILED, bounce=True,
                  reply="550 5.1.1 <b@example.it>: no such user")
    _sending_digest(session, 2)
    html = admin_client.get("/admin/digests/").get_data(as_text=True)
    assert "Settimana &lt;uno&gt;" in html
    history = html.split('id="history"', 1)[1]
    row = _found(r'<tr data-digest-id="1">(.*?)</tr>', history)
    assert re.findall(r'<td class="num">(\d+)</td>', row) == ["1", "0", "0", "1", "0", "0"]  # sent..unsubscribed
    running = html.split('id="running"', 1)[1].split("</section>", 1)[0]
    assert 'action="/admin/digests/2/pause"' in running
    # The preview frame is sandboxed: no scripts, no access to the admin's origin.
    frame = _found(r"(<iframe[^>]*>)", html)
    assert 'sandbox="' in frame and "allow-scripts" not in frame and "allow-same-origin" not in frame
    assert 'src="/admin/digests/preview?language=en"' in frame  # MAILER_LOCALE


def test_preview_of_the_next_digest(app, admin_client, session):
    feed = seed.feed(session, "https://www.example.it/feed/")
    from mailer.models import Article, utcnow

    session.add(Article(feed_id=feed.id, dedup_key="k1", url="https://www.example.it/a", title="Un articolo nuovo",
                        summary_html="<p>Testo</p>", summary_text="Testo", topic="web", published_at=utcnow()))
    session.commit()
    response = admin_client.get("/admin/digests/preview?language=en")
    assert response.status_code == 200
    assert "Un articolo nuovo" in response.get_data(as_text=True)
    csp = response.headers["Content-Security-Policy"]
    assert csp.startswith("sandbox") and "allow-scripts" not in csp and "script-src" not in csp
    assert "default-src 'none'" in csp
    assert response.headers["X-Frame-Options"] == "SAMEORIGIN"


def test_preview_without_news(admin_client):
    response = admin_client.get("/admin/digests/preview?language=xx")
    assert response.status_code == 200
    assert "No new articles" in response.get_data(as_text=True)
    assert response.headers["Content-Security-Policy"].startswith("sandbox")


def test_send_now_runs_once_however_many_clicks(app, admin_client, monkeypatch):
    release = threading.Event()
    calls = []

    def slow_job(flask_app, echo):
        calls.append(flask_app)
        echo("sending...")
        release.wait(10)
        return None

    monkeypatch.setattr("mailer.admin.digests.send_now_job", slow_job)
    first = admin_client.post("/admin/digests/send", follow_redirects=True).get_data(as_text=True)
    second = admin_client.post("/admin/digests/send", follow_redirects=True).get_data(as_text=True)
    assert "Sending started" in first
    assert "A send is already running" in second
    assert re.search(r'<button type="submit" id="send-now" disabled', second)
    progress = admin_client.get("/admin/digests/progress.json").json
    assert progress["send"]["running"] is True and progress["send"]["lines"] == ["sending..."]
    release.set()
    assert get_sender(app).wait(10)
    assert len(calls) == 1
    assert admin_client.get("/admin/digests/progress.json").json["send"]["running"] is False
    # Once finished, a new click starts a new send.
    assert "Sending started" in admin_client.post("/admin/digests/send", follow_redirects=True).get_data(as_text=True)
    assert get_sender(app).wait(10) and len(calls) == 2


def test_a_failed_send_is_reported(app, admin_client, monkeypatch):
    def broken(flask_app, echo):
        raise RuntimeError("SMTP server refused the login")

    monkeypatch.setattr("mailer.admin.digests.send_now_job", broken)
    admin_client.post("/admin/digests/send")
    assert get_sender(app).wait(10)
    html = admin_client.get("/admin/digests/").get_data(as_text=True)
    assert "SMTP server refused the login" in html


def test_send_now_polls_composes_and_sends(app, admin_client, session, smtp_server, feed_server):
    url = feed_server.add("/feed.xml", _rss("Primo titolo", "Secondo titolo"),
                          headers={"Content-Type": "application/rss+xml"})
    seed.feed(session, url)
    for n in range(3):
        seed.reader(session, f"lettore{n}@example.it")
    seed.reader(session, "attesa@example.it", SubscriberStatus.PENDING)
    session.commit()
    admin_client.post("/admin/digests/send")
    assert get_sender(app).wait(60)
    run = get_sender(app).last
    assert run is not None
    assert run.error is None, run.error
    assert sorted(m.rcpt_tos[0] for m in smtp_server.messages) == [f"lettore{n}@example.it" for n in range(3)]
    digest = session.scalar(select(Digest))
    assert digest.status is DigestStatus.FINISHED
    html = admin_client.get("/admin/").get_data(as_text=True)
    row = _found(r'<tr data-digest-id="1">(.*?)</tr>', html)
    assert re.findall(r'<td class="num">(\d+)</td>', row)[0] == "3"


def test_pause_and_resume(app, admin_client, session, smtp_server):
    made = _sending_digest(session, 3)
    response = admin_client.post(f"/admin/digests/{made.id}/pause", data={"reason": "wrong <subject>"},
                                 follow_redirects=True)
    html = response.get_data(as_text=True)
    assert "Sending paused." in html
    assert "wrong &lt;subject&gt;" in html
    session.expire_all()
    paused = session.get(Digest, made.id)
    assert paused.status is DigestStatus.PAUSED and paused.paused_reason == "wrong <subject>"
    assert f'action="/admin/digests/{made.id}/resume"' in html
    # Pausing twice says so and changes nothing.
    again = admin_client.post(f"/admin/digests/{made.id}/pause", follow_redirects=True).get_data(as_text=True)
    assert "This digest is not sending." in again

    response = admin_client.post(f"/admin/digests/{made.id}/resume", data={"back": "list"})
    assert response.headers["Location"] == "/admin/digests/"
    # Resuming carries the send on from the web app: every pending reader gets it.
    assert get_sender(app).wait(60)
    last = get_sender(app).last
    assert last is not None
    assert last.error is None, last.error
    assert len(smtp_server.messages) == 3
    session.expire_all()
    assert session.get(Digest, made.id).status is DigestStatus.FINISHED
    statuses = set(session.scalars(select(Delivery.status).where(Delivery.digest_id == made.id)))
    assert statuses == {DeliveryStatus.SENT}
    assert "This digest is not paused." in admin_client.post(
        f"/admin/digests/{made.id}/resume", follow_redirects=True).get_data(as_text=True)


def test_pause_without_a_reason_gets_a_default_one(admin_client, session):
    made = _sending_digest(session, 1)
    admin_client.post(f"/admin/digests/{made.id}/pause", data={"reason": "   "})
    session.expire_all()
    assert session.get(Digest, made.id).paused_reason == "paused from the dashboard"
    assert admin_client.post("/admin/digests/999/pause").status_code == 404


def test_digest_detail_and_progress(admin_client, session):
    made = _sending_digest(session, 0)
    readers = [seed.reader(session, f"x{n}@example.it") for n in range(4)]
    seed.delivery(session, made, readers[0])
    seed.delivery(session, made, readers[1], DeliveryStatus.DEFERRED, reply="451 4.3.0 <try later>")
    seed.delivery(session, made, readers[2], DeliveryStatus.FAILED, reply="550 5.7.1 refused")
    seed.delivery(session, made, readers[3], DeliveryStatus.PENDING)
    session.commit()
    html = admin_client.get(f"/admin/digests/{made.id}").get_data(as_text=True)
    assert "451 4.3.0 &lt;try later&gt;" in html and "550 5.7.1 refused" in html
    assert '<progress class="progress" max="100" value="50"' in html  # sent + failed of 4
    assert f'href="/admin/readers/{readers[1].id}">x1@example.it</a>' in html
    data = admin_client.get("/admin/digests/progress.json").json
    assert data["digests"] == [{
        "id": made.id, "status": "sending", "total": 4, "settled": 2, "percent": 50, "pending": 1, "sent": 1,
        "deferred": 1, "failed": 1, "bounced": 0,
    }]
    assert admin_client.get("/admin/digests/999").status_code == 404


def test_another_sender_at_work_is_not_an_error(app, admin_client, session, monkeypatch):
    from mailer.delivery import SenderBusyError

    def busy(flask_app, **kwargs):
        raise SenderBusyError("another sender holds the queue")

    monkeypatch.setattr("mailer.delivery.deliver", busy)
    made = _sending_digest(session, 1, DigestStatus.PAUSED)
    admin_client.post(f"/admin/digests/{made.id}/resume")
    assert get_sender(app).wait(10)
    run = get_sender(app).last
    assert run is not None
    assert run.error is None and "carries on" in (run.result or "")
    assert "carries on" in admin_client.get("/admin/digests/").get_data(as_text=True)
