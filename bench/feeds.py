"""Benchmark: poll a 1,000-item feed, then poll it again unchanged.

The raw limit is plain ``feedparser.parse`` on the same bytes, measured in
the same run; every figure is printed as a ratio to it (lower is better).

- first poll: HTTP on loopback, XML check, parse, sanitise, store, commit;
- re-poll, same bytes: what a server without ETag support costs us;
- re-poll, rebuilt: the same items in new bytes (a new lastBuildDate), as
  most generators produce on every request;
- parse + store only: the first poll without HTTP.

Run by hand: ``.venv/bin/python bench/feeds.py [--items 1000] [--repeat 3]
[--database-url URL]`` (a temporary SQLite file by default).
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import feedparser
from sqlalchemy import delete

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mailer import create_app
from mailer.db import get_engine, get_sessionmaker
from mailer.feeds import fetch_all_feeds
from mailer.feeds.parse import parse_feed
from mailer.feeds.store import store_entries
from mailer.models import Article, Base, Feed, utcnow

TOPICS = ["Intelligenza artificiale", "Sicurezza", "Sviluppo web", "Smartphone", "Processori", "Startup"]
PARAGRAPH = ("Il nuovo processore promette prestazioni più elevate e consumi ridotti: abbiamo misurato "
             "temperatura, autonomia e velocità con i test di sempre, e confrontato i risultati con la "
             "generazione precedente. Ecco che cosa cambia davvero per chi lo usa tutti i giorni. ")


def make_feed(items: int, build: str) -> bytes:
    """An RSS 2.0 feed of ``items`` items with content:encoded, images and categories."""
    now = datetime.now(UTC)
    out = ['<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0" '
           'xmlns:content="http://purl.org/rss/1.0/modules/content/" '
           'xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:media="http://search.yahoo.com/mrss/">'
           f"<channel><title>Bench</title><link>https://bench.example/</link><description>x</description>"
           f"<lastBuildDate>{build}</lastBuildDate>"]
    for i in range(items):
        out.append(
            f"<item><title>Articolo numero {i}: prestazioni &amp; consumi</title>"
            f"<link>https://bench.example/articoli/{i}?utm_source=rss</link>"
            f'<guid isPermaLink="false">bench-{i}</guid>'
            f"<description>{PARAGRAPH[:180]}</description>"
            f"<content:encoded><![CDATA[<p>{PARAGRAPH}</p><p><img src=\"/img/{i}.jpg\"></p>"
            f"<p><a href=\"https://bench.example/\">{PARAGRAPH}</a></p><p>{PARAGRAPH}</p>]]></content:encoded>"
            f"<dc:creator>Redazione {i % 7}</dc:creator><category>{TOPICS[i % len(TOPICS)]}</category>"
            f"<pubDate>{format_datetime(now - timedelta(minutes=5 * i), usegmt=True)}</pubDate>"
            f'<media:content url="https://bench.example/img/{i}.jpg" medium="image"/></item>'
        )
    out.append("</channel></rss>")
    return "".join(out).encode()


class Server:
    """A loopback HTTP server answering every GET with ``body``."""

    def __init__(self) -> None:
        self.body = b""
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/rss+xml")
                self.send_header("Content-Length", str(len(outer.body)))
                self.end_headers()
                self.wfile.write(outer.body)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/feed.xml"


def best(repeat: int, run: Callable[[], object], before: Callable[[], object] = lambda: None) -> float:
    """The best wall-clock time of ``repeat`` runs (``before`` is not timed)."""
    times = []
    for _ in range(repeat):
        before()
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    """Measure and print the ratios."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--database-url")
    args = parser.parse_args()

    workdir = tempfile.mkdtemp(prefix="bench-feeds-")
    database_url = args.database_url or f"sqlite:///{workdir}/bench.sqlite3"
    app = create_app({"ENV": "testing", "DATABASE_URL": database_url, "FEEDS": [],
                      "SMTP_URL": "smtp://127.0.0.1:1", "CAPTURE_MAILDIR": workdir})
    Base.metadata.create_all(get_engine(app))
    factory = get_sessionmaker(app)
    config = dict(app.config)
    server = Server()
    data = make_feed(args.items, "first")
    rebuilt = make_feed(args.items, "rebuilt")
    server.body = data

    def reset() -> None:
        with factory() as session, session.begin():
            session.execute(delete(Article))
            session.execute(delete(Feed))
            session.add(Feed(url=server.url, source="config"))

    def poll() -> None:
        [result] = fetch_all_feeds(factory, config)
        assert result.ok, result.line()

    def check_first() -> None:
        [result] = fetch_all_feeds(factory, config)
        assert result.new == args.items, result.line()

    def parse_and_store() -> None:
        parsed = parse_feed(data, url=server.url, content_type="application/rss+xml")
        with factory() as session, session.begin():
            feed = Feed(url=server.url, source="config")
            session.add(feed)
            session.flush()
            report = store_entries(session, feed, parsed.entries, config, utcnow())
            assert report.new == args.items

    def wipe() -> None:
        with factory() as session, session.begin():
            session.execute(delete(Article))
            session.execute(delete(Feed))

    def serve_same() -> None:
        server.body = data

    bodies = [data, rebuilt]

    def serve_other() -> None:
        # Alternate: every timed poll sees new bytes carrying the same items.
        bodies.reverse()
        server.body = bodies[0]

    raw = best(args.repeat, lambda: feedparser.parse(io.BytesIO(data)))
    first = best(args.repeat, check_first, reset)
    same = best(args.repeat, poll, serve_same)
    rebuilt_time = best(args.repeat, poll, serve_other)
    store_only = best(args.repeat, parse_and_store, wipe)

    db = "PostgreSQL" if database_url.startswith("postgresql") else "SQLite"
    print(f"feed: {args.items} items, {len(data) / 1e6:.1f} MB; database: {db}; best of {args.repeat}")
    print(f"plain feedparser.parse (the raw limit): {raw * 1000:.0f} ms = 1.00")
    for label, value in [("first poll (fetch, check, parse, sanitise, store)", first),
                         ("parse + store, no HTTP", store_only),
                         ("re-poll, same bytes", same),
                         ("re-poll, rebuilt bytes, same items", rebuilt_time)]:
        print(f"{label}: {value * 1000:.0f} ms = {value / raw:.2f}x feedparser")
    server.httpd.shutdown()


if __name__ == "__main__":
    main()
