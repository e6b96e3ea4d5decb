"""Take the dashboard's screenshots for the docs: ``python -m tests.admin.screenshots``.

Builds a throw-away SQLite database with a few months of plausible data,
serves the app on a free port and photographs each page with headless
chromium into ``docs/screenshots/admin-*.png``. Nothing is mailed: the
SMTP URL points at a closed port, and the running send is only shown.
"""

from __future__ import annotations

import base64
import random
import sys
import tempfile
from datetime import timedelta
from pathlib import Path

from mailer import create_app
from mailer.admin import create_admin
from mailer.db import get_engine, make_engine, session_scope
from mailer.models import Article, Base, ConsentEvent, DeliveryStatus, DigestStatus, SubscriberStatus, utcnow
from tests.admin import seed
from tests.admin.live import chromium, live_server

OUT = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
EMAIL, PASSWORD = "redazione@example.it", "una password lunga"
NAMES = ["mario.rossi", "giulia.bianchi", "luca.ferrari", "sara.romano", "marco.colombo", "anna.ricci",
         "paolo.marino", "elena.greco", "andrea.bruno", "chiara.gallo", "davide.conti", "francesca.deluca"]
DOMAINS = ["example.it", "posta.example.it", "example.com", "mail.example.org"]
TOPICS = ["", "", "ai", "ai,web", "security", "web", "mobile,hardware", "security,web"]


def populate(session) -> None:
    """About 600 readers over 26 weeks, 12 weekly digests, feeds, and a send under way."""
    rng = random.Random(7)
    now = utcnow()
    readers = []
    for n in range(600):
        joined = now - timedelta(days=182 * (1 - (n / 600) ** 0.8), hours=rng.randint(0, 23))
        roll = rng.random()
        status = (SubscriberStatus.UNSUBSCRIBED if roll < .09 else SubscriberStatus.BOUNCED if roll < .12
                  else SubscriberStatus.PENDING if roll > .96 else SubscriberStatus.CONFIRMED)
        left = joined + timedelta(days=rng.randint(5, 60)) if status in (
            SubscriberStatus.UNSUBSCRIBED, SubscriberStatus.BOUNCED) else None
        if left and left > now:  # would leave in the future: still here
            status, left = SubscriberStatus.CONFIRMED, None
        email = f"{rng.choice(NAMES)}{n}@{rng.choice(DOMAINS)}"
        readers.append(seed.reader(session, email, status, topics=rng.choice(TOPICS),
                                   language="en" if rng.random() < .15 else "it", created_at=joined,
                                   unsubscribed_at=left if status is SubscriberStatus.UNSUBSCRIBED else None,
                                   updated_at=left))
    first = readers[3]
    session.add(ConsentEvent(subscriber_id=first.id, email_hash=first.email_hash, action="confirm", channel="link",
                             occurred_at=first.created_at + timedelta(minutes=4), ip="203.0.113.7",
                             user_agent="Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X)"))
    for week in range(12, 0, -1):
        created = now - timedelta(weeks=week, hours=2)
        iso = created.isocalendar()
        subject = f"Le notizie tech della settimana {iso.week}"
        made = seed.digest(session, f"{iso.year}-W{iso.week:02d}", subject=subject, created_at=created)
        for reader in readers:
            if reader.confirmed_at and reader.confirmed_at < created and (
                    reader.unsubscribed_at is None or reader.unsubscribed_at > created):
                roll = rng.random()
                outcome = DeliveryStatus.FAILED if roll < .01 else DeliveryStatus.SENT
                seed.delivery(session, made, reader, outcome, bounce=outcome is DeliveryStatus.FAILED,
                              sent_at=created + timedelta(minutes=3), reply="550 5.1.1 user unknown"
                              if outcome is DeliveryStatus.FAILED else "250 2.0.0 Ok")
    running = seed.digest(session, "current", DigestStatus.SENDING, subject="Le notizie tech di questa settimana")
    for n, reader in enumerate(r for r in readers if r.status is SubscriberStatus.CONFIRMED):
        seed.delivery(session, running, reader, DeliveryStatus.SENT if n < 310 else DeliveryStatus.PENDING)
    feeds = [
        seed.feed(session, "https://www.example.it/feed/", title="Notizie Tech",
                  last_success_at=now - timedelta(minutes=20), last_fetched_at=now - timedelta(minutes=20)),
        seed.feed(session, "https://www.example.it/sicurezza/feed/", title="Sicurezza",
                  last_success_at=now - timedelta(minutes=20)),
        seed.feed(session, "https://blog.example.org/atom.xml", title="Example blog", consecutive_failures=6,
                  last_success_at=now - timedelta(hours=7), last_error="HTTP 503 Service Unavailable",
                  last_error_at=now - timedelta(minutes=20), source="admin"),
        seed.feed(session, "https://old.example.com/rss", title="Old news", enabled=False, source="admin"),
    ]
    for n, (title, topic) in enumerate([
        ("Il nuovo modello linguistico open source batte i benchmark", "ai"),
        ("Una falla nei router domestici: aggiornate il firmware", "security"),
        ("CSS anchor positioning arriva in tutti i browser", "web"),
        ("Lo smartphone pieghevole costa meno, ma regge?", "mobile"),
    ]):
        session.add(Article(feed_id=feeds[n % 2].id, dedup_key=f"a{n}", url=f"https://www.example.it/articolo-{n}",
                            title=title, summary_html=f"<p>{title}. Il punto della redazione.</p>",
                            summary_text=f"{title}. Il punto della redazione.", topic=topic,
                            published_at=now - timedelta(hours=5 + n * 7)))


def shoot(driver, name: str) -> None:
    """Save the whole page (not only the window) as docs/screenshots/admin-NAME.png."""
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": 1280, "height": 700, "deviceScaleFactor": 1, "mobile": False})
    height = driver.execute_script("return document.documentElement.scrollHeight")
    size = {"width": 1280, "height": min(max(height, 700), 2400), "deviceScaleFactor": 1, "mobile": False}
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", size)
    data = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png"})["data"]
    (OUT / f"admin-{name}.png").write_bytes(base64.b64decode(data))
    print(f"wrote {OUT / f'admin-{name}.png'}")


def main() -> int:
    """Build the data, serve it, photograph every page."""
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/screens.sqlite3"
        engine = make_engine(url)
        Base.metadata.create_all(engine)
        engine.dispose()
        app = create_app({"ENV": "testing", "DATABASE_URL": url, "SECRET_KEY": "screens", "FEEDS": [],
                          "SMTP_URL": "smtp://127.0.0.1:9", "CAPTURE_MAILDIR": tmp, "LOCALE": "en"})
        with session_scope(app) as session:
            create_admin(session, EMAIL, PASSWORD)
            populate(session)
        with live_server(app) as base, chromium() as driver:
            driver.get(f"{base}/admin/login")
            shoot(driver, "login")
            driver.find_element("id", "email").send_keys(EMAIL)
            driver.find_element("id", "password").send_keys(PASSWORD)
            driver.find_element("css selector", "form button[type=submit]").click()
            pages = [("overview", "/admin/"), ("readers", "/admin/readers/?topic=ai"), ("reader", "/admin/readers/4"),
                     ("import", "/admin/readers/import"), ("feeds", "/admin/feeds/"), ("digests", "/admin/digests/"),
                     ("digest", "/admin/digests/3")]
            for name, path in pages:
                driver.get(base + path)
                driver.execute_script("window.stop && document.querySelectorAll('script').forEach(s => s.remove())")
                shoot(driver, name)
        get_engine(app).dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
