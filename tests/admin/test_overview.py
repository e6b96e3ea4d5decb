"""The overview: readers by status, growth chart, last digests with counts, running send."""

from __future__ import annotations

import itertools
import re
from datetime import datetime, timedelta

from mailer.admin.growth import growth_series
from mailer.admin.stats import digest_counts, reader_counts
from mailer.models import DeliveryStatus, DigestStatus, SubscriberStatus, utcnow
from tests.admin import seed

S = SubscriberStatus


def test_reader_counts_lists_every_status(session):
    for n in range(3):
        seed.reader(session, f"c{n}@example.it")
    seed.reader(session, "p@example.it", S.PENDING)
    seed.reader(session, "u@example.it", S.UNSUBSCRIBED)
    session.commit()
    assert reader_counts(session) == {S.PENDING: 1, S.CONFIRMED: 3, S.UNSUBSCRIBED: 1, S.BOUNCED: 0, S.COMPLAINED: 0,
                                      S.ERASED: 0}


def test_digest_counts(session):
    now = utcnow()
    first = seed.digest(session, "2026-W10", created_at=now - timedelta(days=14))
    second = seed.digest(session, "2026-W11", created_at=now - timedelta(days=7))
    readers = [seed.reader(session, f"r{n}@example.it", created_at=now - timedelta(days=30)) for n in range(8)]
    sent_at = now - timedelta(days=14)
    seed.delivery(session, first, readers[0], sent_at=sent_at)
    seed.delivery(session, first, readers[1], sent_at=sent_at)
    seed.delivery(session, first, readers[2], DeliveryStatus.DEFERRED)
    seed.delivery(session, first, readers[3], DeliveryStatus.FAILED)
    seed.delivery(session, first, readers[4], DeliveryStatus.FAILED, bounce=True)
    seed.delivery(session, first, readers[5], DeliveryStatus.PENDING)
    # Reader 7 unsubscribed during the send: not sent, and not a failure either.
    seed.delivery(session, first, readers[7], DeliveryStatus.SKIPPED)
    # Reader 1 left after the first digest, before the second: counted for the first only.
    readers[1].status, readers[1].unsubscribed_at = S.UNSUBSCRIBED, now - timedelta(days=10)
    # Reader 0 got both and left after the second: counted for the second.
    seed.delivery(session, second, readers[0], sent_at=now - timedelta(days=7))
    readers[0].status, readers[0].unsubscribed_at = S.UNSUBSCRIBED, now - timedelta(days=1)
    # Reader 6 left before ever receiving one: counted nowhere.
    seed.delivery(session, second, readers[6], sent_at=now - timedelta(days=7))
    readers[6].unsubscribed_at = now - timedelta(days=20)
    session.commit()
    one, two = digest_counts(session, [first, second])
    assert (one.sent, one.deferred, one.failed, one.bounced, one.pending, one.unsubscribed) == (2, 1, 1, 1, 1, 1)
    assert one.skipped == 1
    assert one.total == 7 and one.settled == 5 and one.percent == 71
    assert (two.sent, two.unsubscribed, two.total, two.percent) == (2, 1, 2, 100)


def test_growth_series_follows_arrivals_and_departures(session):
    now = datetime(2026, 3, 20, 12, 0)  # a Friday
    days = [now - timedelta(days=d) for d in range(40)]
    seed.reader(session, "old@example.it", created_at=days[39])  # confirmed 39 days ago, still here
    seed.reader(session, "new@example.it", created_at=days[2])  # joined this week
    seed.reader(session, "left@example.it", S.UNSUBSCRIBED, created_at=days[20], unsubscribed_at=days[9])
    seed.reader(session, "bounced@example.it", S.BOUNCED, created_at=days[20], updated_at=days[1])
    seed.reader(session, "pending@example.it", S.PENDING, created_at=days[1])  # never confirmed: not counted
    seed.reader(session, "future@example.it", created_at=now + timedelta(days=1))  # after "now": not yet
    session.commit()
    series = growth_series(session, now, "Europe/Rome", "30d")
    assert len(series) == 30
    assert series[-1].start == now.date()
    by_day = {p.start: p for p in series}
    # 30 days ago: only the oldest reader.
    assert series[0].active == 1
    # After day 20 (two joined) and before day 9 (one left): three readers.
    assert by_day[days[15].date()].active == 3
    assert by_day[days[20].date()].joined == 2
    assert by_day[days[9].date()].left == 1
    assert by_day[days[1].date()].left == 1  # the bounce
    # Today: old + new; the last point matches the confirmed count (minus the future one).
    assert series[-1].active == 2
    # Each bucket's change is its arrivals minus its departures.
    for before, after in itertools.pairwise(series):
        assert after.active - before.active == after.joined - after.left


def test_growth_series_weeks_and_months(session):
    now = datetime(2026, 3, 20, 12, 0)
    seed.reader(session, "a@example.it", created_at=datetime(2025, 6, 1))
    seed.reader(session, "b@example.it", created_at=datetime(2026, 3, 2))
    session.commit()
    weeks = growth_series(session, now, "Europe/Rome", "26w")
    assert len(weeks) == 26 and weeks[-1].start == datetime(2026, 3, 16).date()  # a Monday
    assert weeks[-1].active == 2 and weeks[-3].joined == 1
    months = growth_series(session, now, "Europe/Rome", "12m")
    assert [m.start.month for m in months][:2] == [4, 5] and months[-1].start == datetime(2026, 3, 1).date()
    assert months[2].joined == 1 and months[2].active == 1 and months[-1].active == 2


def test_overview_page(admin_client, session):
    now = utcnow()
    for n in range(4):
        seed.reader(session, f"c{n}@example.it", created_at=now - timedelta(days=n * 10))
    seed.reader(session, "p@example.it", S.PENDING)
    seed.reader(session, "b@example.it", S.BOUNCED)
    done = seed.digest(session, "2026-W01", subject="Le notizie <b>della</b> settimana")
    seed.delivery(session, done, seed.reader(session, "d@example.it"))
    running = seed.digest(session, "2026-W02", DigestStatus.SENDING, subject="In corso")
    for n in range(4):
        status = DeliveryStatus.SENT if n < 3 else DeliveryStatus.PENDING
        seed.delivery(session, running, seed.reader(session, f"r{n}@example.it"), status)
    session.commit()

    html = admin_client.get("/admin/").get_data(as_text=True)
    # Readers by status, each linking to the filtered list.
    assert re.search(r'data-status="confirmed">9<', html)
    assert re.search(r'data-status="pending">1<', html)
    assert re.search(r'data-status="bounced">1<', html)
    assert 'href="/admin/readers/?status=bounced"' in html
    # The charts: an SVG line with a point per week, bars for arrivals and departures.
    assert html.count('<circle class="point"') == 26
    assert html.count('class="bar bar-joined"') == 26
    assert "<script>" not in html.split("<svg", 1)[1].split("</svg>", 1)[0]
    # The last digests, escaped.
    assert "Le notizie &lt;b&gt;della&lt;/b&gt; settimana" in html
    # The running send's progress: 3 of 4 settled.
    assert '<progress class="progress" max="100" value="75"' in html
    assert 'id="running"' in html


def test_overview_period_switch_and_bad_period(admin_client):
    assert admin_client.get("/admin/?period=30d").get_data(as_text=True).count('<circle class="point"') == 30
    assert admin_client.get("/admin/?period=12m").get_data(as_text=True).count('<circle class="point"') == 12
    assert admin_client.get("/admin/?period=<script>").get_data(as_text=True).count('<circle class="point"') == 26


def test_overview_of_an_empty_database(admin_client):
    response = admin_client.get("/admin/")
    assert response.status_code == 200
    assert "No digest has been sent yet." in response.get_data(as_text=True)
