"""Benchmark: the dashboard's pages on 100,000 readers and their deliveries.

Run by hand: ``.venv/bin/python bench/admin.py [--readers N] [--digests N] [--db URL]``.

Each figure is printed as a ratio to its raw limit, measured in the same run:

- growth chart (26 weekly buckets, one query): against one plain scan of the
  four columns it reads;
- digest counts (last 8 digests, two grouped queries): against a bare
  ``COUNT(*)`` of those digests' deliveries;
- reader search (a substring of the address, one page plus the total): against
  a bare ``COUNT(*)`` with the same ``LIKE``;
- CSV export through the streamed download: against ``export_csv`` writing to
  an in-memory file directly (the thread and queue are the overhead);
- the whole overview page, for scale, against the growth query it contains.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import func, insert, select, text
from werkzeug.security import generate_password_hash

from mailer import create_app
from mailer.admin.growth import growth_series
from mailer.admin.stats import latest_digests
from mailer.db import get_engine, make_engine, session_scope
from mailer.models import (
    AdminUser,
    Base,
    Delivery,
    Digest,
    DigestEdition,
    Subscriber,
    utcnow,
)
from mailer.subscriptions import export_csv


def best(fn: Callable[[], object], rounds: int = 3) -> float:
    """The best wall time of ``rounds`` calls (the least disturbed by other work)."""
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def populate(url: str, readers: int, digests: int) -> None:
    """Readers over a year, ``digests`` weekly digests each delivered to every reader."""
    engine = make_engine(url)
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    now = utcnow()
    statuses = ["confirmed"] * 8 + ["pending", "unsubscribed"]
    rows: list[dict[str, object]] = []
    for n in range(readers):
        joined = now - timedelta(minutes=n * 5)
        status = statuses[n % len(statuses)]
        address = f"reader{n}@example{n % 97}.it"
        rows.append({
            "email": address, "email_hash": hashlib.sha256(address.encode()).hexdigest(), "status": status,
            "language": "it", "topics": "" if n % 3 else "ai,web", "confirm_nonce": uuid.uuid4().hex,
            "created_at": joined, "updated_at": joined, "confirmations_sent": [],
            "confirmed_at": joined if status != "pending" else None,
            "unsubscribed_at": joined + timedelta(days=3) if status == "unsubscribed" else None,
        })
    with engine.begin() as conn:
        for start in range(0, len(rows), 10_000):
            conn.execute(insert(Subscriber), rows[start:start + 10_000])
        conn.execute(insert(AdminUser), [{"email": "bench@example.it", "password_hash": generate_password_hash(
            "bench password", method="pbkdf2:sha256:1000")}])
        for d in range(digests):
            made = now - timedelta(weeks=digests - d)
            digest_id = conn.execute(insert(Digest).returning(Digest.id), [{
                "period": f"bench-{d}", "subject": f"Digest {d}", "status": "finished", "created_at": made,
                "archive_html": "", "article_count": 10}]).scalar_one()
            edition_id = conn.execute(insert(DigestEdition).returning(DigestEdition.id), [{
                "digest_id": digest_id, "topics": "", "language": "it", "subject": "s", "html": "", "text": ""}]
            ).scalar_one()
            deliveries = [{"digest_id": digest_id, "subscriber_id": i + 1, "edition_id": edition_id,
                           "status": "sent" if i % 50 else "failed", "bounce": i % 100 == 0, "attempts": 1,
                           "sent_at": made} for i in range(readers)]
            for start in range(0, len(deliveries), 20_000):
                conn.execute(insert(Delivery), deliveries[start:start + 20_000])
    if engine.dialect.name == "postgresql":
        # What autovacuum does soon after a bulk load; without statistics the
        # planner guesses a handful of rows and picks nested loops.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ANALYZE"))
    engine.dispose()


def main() -> int:
    """Build the data, time each piece against its limit, print the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readers", type=int, default=100_000)
    parser.add_argument("--digests", type=int, default=4)
    parser.add_argument("--db", default=None, help="database URL (default: a temporary SQLite file)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.db or f"sqlite:///{tmp}/bench.sqlite3"
        started = time.perf_counter()
        populate(url, args.readers, args.digests)
        print(f"{args.readers:,} readers, {args.digests * args.readers:,} deliveries on "
              f"{url.split(':')[0]} in {time.perf_counter() - started:.1f} s")
        app = create_app({"ENV": "testing", "DATABASE_URL": url, "SECRET_KEY": "bench", "FEEDS": [],
                          "SMTP_URL": "smtp://127.0.0.1:9", "CAPTURE_MAILDIR": tmp, "WTF_CSRF_ENABLED": False})
        client = app.test_client()
        client.post("/admin/login", data={"email": "bench@example.it", "password": "bench password"})
        report = []
        with app.app_context(), session_scope(app) as session:
            scan = best(lambda: session.execute(text(
                "SELECT status, confirmed_at, unsubscribed_at, updated_at FROM subscribers "
                "WHERE confirmed_at IS NOT NULL")).all())
            growth = best(lambda: growth_series(session, utcnow(), "Europe/Rome", "26w"))
            report.append(("growth chart, 26 weeks", growth, "one scan of its columns", scan))
            ids = select(Digest.id).order_by(Digest.id.desc()).limit(8).scalar_subquery()
            count = best(lambda: session.scalar(select(func.count()).select_from(Delivery).where(
                Delivery.digest_id.in_(ids))))
            counts = best(lambda: latest_digests(session))
            report.append(("digest counts, last 8", counts, "COUNT(*) of their deliveries", count))
            like = best(lambda: session.scalar(select(func.count()).select_from(Subscriber).where(
                Subscriber.email.icontains("reader4242"))))
            raw_export = best(lambda: export_csv(session, io.StringIO()), rounds=1)
        search = best(lambda: client.get("/admin/readers/?q=reader4242").get_data())
        report.append(("reader search page", search, "COUNT(*) with the same LIKE", like))
        streamed = best(lambda: client.get("/admin/readers/export.csv").get_data(), rounds=1)
        report.append(("CSV export, streamed download", streamed, "export_csv into memory", raw_export))
        page = best(lambda: client.get("/admin/").get_data())
        report.append(("overview page, whole", page, "its growth query", growth))
        get_engine(app).dispose()
    width = max(len(r[0]) for r in report)
    for name, seconds, limit_name, limit in report:
        print(f"{name:<{width}}  {seconds * 1000:8.1f} ms  = {seconds / limit:5.2f} x {limit_name} "
              f"({limit * 1000:.1f} ms)")
    print(f"median ratio {statistics.median(r[1] / r[3] for r in report):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
