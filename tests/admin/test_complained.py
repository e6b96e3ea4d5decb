"""The admin shows readers who complained: the overview's count, the reader list's filter, the badge."""

from __future__ import annotations

import re

from mailer.models import SubscriberStatus
from tests.admin import seed

S = SubscriberStatus


def test_complained_readers_are_counted_listed_and_filtered(admin_client, session):
    seed.reader(session, "angry@example.it", S.COMPLAINED)
    seed.reader(session, "happy@example.it")
    session.commit()
    overview = admin_client.get("/admin/").get_data(as_text=True)
    assert re.search(r'data-status="complained">1</span>\s*<span class="stat-label">complained</span>', overview)
    assert 'href="/admin/readers/?status=complained"' in overview
    listed = admin_client.get("/admin/readers/", query_string={"status": "complained"}).get_data(as_text=True)
    assert re.findall(r'<a href="/admin/readers/\d+">([^<]+)</a>', listed) == ["angry@example.it"]
    assert '<option value="complained" selected' in listed
    assert 'class="badge badge-complained">complained</span>' in listed
