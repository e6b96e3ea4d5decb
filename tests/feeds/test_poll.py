"""When feeds fail: recorded, flagged, reported; the others are stored all the same."""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler

import pytest
from sqlalchemy import select

from mailer.db import get_sessionmaker
from mailer.feeds import FetchResult, fetch_all_feeds, flagged_feeds, is_flagged
from mailer.models import Feed, utcnow
from tests.feeds.conftest import corpus

FEED = corpus("rss2_content.xml")


def test_each_feed_is_stored_on_its_own(feed_server, add_feed_row, poll, articles, feed_row):
    good = add_feed_row(feed_server.add("/good.xml", FEED))
    broken = add_feed_row(feed_server.add("/broken.xml", b"<html>login</html>"))
    down = add_feed_row(feed_server.add("/down.xml", b"", status=503))
    also_good = add_feed_row(feed_server.add("/atom.xml", corpus("atom.xml")))
    results = poll()
    assert [r.feed_id for r in results] == [good, broken, down, also_good]  # one per feed, in order
    assert [r.ok for r in results] == [True, False, False, True]
    assert len(articles()) == 5
    failed = feed_row(down)
    assert failed.last_error == "HTTP 503 Service Unavailable"
    assert failed.last_error_at is not None and failed.consecutive_failures == 1
    assert failed.last_success_at is None
    fine = feed_row(good)
    assert fine.title == "Cronache Digitali"
    assert fine.last_success_at is not None and fine.last_error is None and fine.consecutive_failures == 0


def test_failures_count_up_then_flag_then_reset(feed_server, add_feed_row, poll, feed_row, app, caplog):
    url = feed_server.add("/flaky.xml", b"", status=500)
    feed_id = add_feed_row(url)
    caplog.set_level(logging.INFO, logger="mailer.feeds")
    first = poll(FEED_FAILURE_ALERT=3)[0]
    second = poll(FEED_FAILURE_ALERT=3)[0]
    assert (first.failures, first.flagged, second.failures, second.flagged) == (1, False, 2, False)
    assert second.line() == f"FAILED {url}: HTTP 500 Internal Server Error (2 failures in a row)"
    assert not any(r.levelno == logging.WARNING for r in caplog.records)
    third = poll(FEED_FAILURE_ALERT=3)[0]
    assert third.flagged
    assert third.line().endswith("(3 failures in a row) [flagged: check or disable this feed]")
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and url in warnings[0].getMessage()
    with get_sessionmaker(app)() as session:
        assert [f.id for f in flagged_feeds(session, {"FEED_FAILURE_ALERT": 3})] == [feed_id]
        assert is_flagged(session.get_one(Feed, feed_id), {"FEED_FAILURE_ALERT": 3})
    feed_server.add("/flaky.xml", FEED)  # it recovers
    assert poll(FEED_FAILURE_ALERT=3)[0].ok
    recovered = feed_row(feed_id)
    assert (recovered.consecutive_failures, recovered.last_error, recovered.last_error_at) == (0, None, None)
    with get_sessionmaker(app)() as session:
        assert flagged_feeds(session, {"FEED_FAILURE_ALERT": 3}) == []


def test_disabled_feeds_are_not_polled(feed_server, add_feed_row, poll):
    add_feed_row(feed_server.add("/off.xml", FEED), enabled=False)
    assert poll() == []
    assert feed_server.requests == []


def test_only_some_feeds(feed_server, add_feed_row, app):
    from mailer.feeds import fetch_all_feeds

    add_feed_row(feed_server.add("/a.xml", FEED))
    second = add_feed_row(feed_server.add("/b.xml", corpus("atom.xml")))
    results = fetch_all_feeds(get_sessionmaker(app), {**app.config, "FIRST_FETCH_DAYS": 36500}, feed_ids=[second])
    assert [r.feed_id for r in results] == [second]


def test_result_lines():
    assert FetchResult("https://a.example/f", ok=True, new=2, updated=1).line() == \
        "ok     https://a.example/f: 2 new, 1 updated"
    assert FetchResult("https://a.example/f", ok=True, not_modified=True).line() == \
        "ok     https://a.example/f: not modified"
    assert FetchResult("https://a.example/f", ok=False, error="timed out after 30 s", failures=1).line() == \
        "FAILED https://a.example/f: timed out after 30 s"


def test_feeds_fetch_command_exits_1_naming_the_failed_feed(app, runner, feed_server, articles):
    good = feed_server.add("/good.xml", FEED)
    bad = feed_server.add("/bad.xml", b"", status=404)
    app.config.update(FEEDS=[good, bad], FIRST_FETCH_DAYS=36500)
    outcome = runner.invoke(args=["feeds", "fetch"])
    assert outcome.exit_code == 1, outcome.output
    lines = outcome.output.strip().splitlines()
    assert lines == [f"ok     {good}: 3 new, 0 updated", f"FAILED {bad}: HTTP 404 Not Found"]
    assert len(articles()) == 3  # the good feed is stored all the same
    with get_sessionmaker(app)() as session:
        assert {(f.url, f.source) for f in session.scalars(select(Feed))} == {(good, "config"), (bad, "config")}


def test_feeds_fetch_command_exits_0_when_all_are_fine(app, runner, feed_server):
    good = feed_server.add("/good.xml", FEED)
    app.config.update(FEEDS=[good], FIRST_FETCH_DAYS=36500)
    first = runner.invoke(args=["feeds", "fetch"])
    assert first.exit_code == 0, first.output
    second = runner.invoke(args=["feeds", "fetch"])  # configured feeds are not added twice
    assert second.exit_code == 0
    assert second.output.strip() == f"ok     {good}: not modified"


def test_feeds_fetch_command_with_no_feeds(runner):
    outcome = runner.invoke(args=["feeds", "fetch"])
    assert outcome.exit_code == 0
    assert "no enabled feeds" in outcome.output


def test_a_url_removed_from_mailer_feeds_is_no_longer_polled(app, runner, feed_server):
    kept = feed_server.add("/kept.xml", FEED)
    dropped = feed_server.add("/dropped.xml", corpus("atom.xml"))
    app.config.update(FEEDS=[kept, dropped], FIRST_FETCH_DAYS=36500)
    assert runner.invoke(args=["feeds", "fetch"]).exit_code == 0
    app.config.update(FEEDS=[kept])
    feed_server.requests.clear()
    outcome = runner.invoke(args=["feeds", "fetch"])
    assert outcome.exit_code == 0, outcome.output
    assert outcome.output.strip() == f"ok     {kept}: not modified"
    assert [path for path, _headers in feed_server.requests] == ["/kept.xml"]
    app.config.update(FEEDS=[kept, dropped])  # back in the list: polled again
    assert runner.invoke(args=["feeds", "fetch"]).output.strip().splitlines() == [
        f"ok     {kept}: not modified", f"ok     {dropped}: not modified"]


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_in_seconds_is_honoured(app, feed_server, add_feed_row, poll, feed_row, status):
    url = feed_server.add("/busy.xml", b"", status=status, headers={"Retry-After": "120"})
    feed_id = add_feed_row(url)
    before = utcnow()
    [failed] = poll()
    assert not failed.ok and failed.retry_after_at is not None
    assert before + timedelta(seconds=119) < feed_row(feed_id).retry_after_at < utcnow() + timedelta(seconds=121)
    assert "(Retry-After: not polled before " in failed.line()
    feed_server.add("/busy.xml", FEED)  # would answer now, but was asked to wait
    feed_server.requests.clear()
    [waiting] = poll()
    assert feed_server.requests == []
    assert (waiting.ok, waiting.waiting, waiting.feed_id) == (True, True, feed_id)
    assert waiting.line().startswith(f"wait   {url}: the server asked not to be polled before ")
    assert feed_row(feed_id).consecutive_failures == 1  # waiting is not failing again
    with get_sessionmaker(app)() as session, session.begin():
        session.get_one(Feed, feed_id).retry_after_at = utcnow() - timedelta(seconds=1)  # the time has come
    [fetched] = poll()
    assert fetched.ok and fetched.new == 3
    assert feed_row(feed_id).retry_after_at is None


def test_retry_after_as_an_http_date(feed_server, add_feed_row, poll, feed_row):
    when = (datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=0)
    feed_id = add_feed_row(feed_server.add("/busy.xml", status=503,
                                           headers={"Retry-After": format_datetime(when, usegmt=True)}))
    poll()
    assert feed_row(feed_id).retry_after_at == when.replace(tzinfo=None)


@pytest.mark.parametrize(("status", "value", "wait"), [
    (429, "604800", timedelta(hours=24)),  # a week asked: a day given
    (503, "soon", None),
    (503, "Wed, 21 Oct 2015 07:28:00 GMT", None),  # past
    (500, "120", None),  # only 429 and 503 are read
])
def test_retry_after_is_capped_and_garbage_ignored(feed_server, add_feed_row, poll, feed_row, status, value, wait):
    feed_id = add_feed_row(feed_server.add("/busy.xml", status=status, headers={"Retry-After": value}))
    before = utcnow()
    poll()
    stored = feed_row(feed_id).retry_after_at
    if wait is None:
        assert stored is None
        poll()
        assert len(feed_server.requests) == 2  # polled again at once
    else:
        assert before + wait - timedelta(seconds=1) < stored <= utcnow() + wait


def test_feeds_fetch_reports_a_waiting_feed_as_waiting_not_failed(app, runner, feed_server):
    good = feed_server.add("/good.xml", FEED)
    busy = feed_server.add("/busy.xml", status=429, headers={"Retry-After": "3600"})
    app.config.update(FEEDS=[good, busy], FIRST_FETCH_DAYS=36500)
    first = runner.invoke(args=["feeds", "fetch"])
    assert first.exit_code == 1
    assert f"FAILED {busy}: HTTP 429 Too Many Requests (Retry-After: not polled before " in first.output
    second = runner.invoke(args=["feeds", "fetch"])
    assert second.exit_code == 0, second.output
    lines = second.output.strip().splitlines()
    assert lines[0] == f"ok     {good}: not modified"
    assert lines[1].startswith(f"wait   {busy}: the server asked not to be polled before ")
    assert lines[1].endswith(" UTC (Retry-After)")



def test_a_stop_abandons_a_hanging_download_at_once(feed_server, add_feed_row, app, feed_row, articles):
    """Ctrl-C or SIGTERM must not wait out FEED_TIMEOUT (30 s) on a feed that never answers."""
    fine_stored = threading.Event()
    release = threading.Event()

    def hang(request: BaseHTTPRequestHandler) -> None:
        release.wait(20)
        request.close_connection = True

    fine = add_feed_row(feed_server.add("/fine.xml", FEED))
    hanging = add_feed_row(feed_server.add("/hang.xml", handler=hang))
    stop = threading.Event()

    def stop_once_the_hanging_feed_is_asked() -> None:
        while not any(path == "/hang.xml" for path, _headers in feed_server.requests):
            time.sleep(0.02)
        fine_stored.wait(10)  # the fine feed is stored first: it must keep its result
        stop.set()

    def watch_fine() -> None:
        while not feed_row(fine).last_success_at:
            time.sleep(0.02)
        fine_stored.set()

    threading.Thread(target=watch_fine, daemon=True).start()
    threading.Thread(target=stop_once_the_hanging_feed_is_asked, daemon=True).start()
    started = time.monotonic()
    try:
        results = fetch_all_feeds(get_sessionmaker(app), {**app.config, "FEED_TIMEOUT": 30.0,
                                                          "FIRST_FETCH_DAYS": 36500}, stop=stop)
    finally:
        release.set()
    assert time.monotonic() - started < 5
    assert [(r.feed_id, r.ok) for r in results] == [(fine, True)]  # the abandoned feed has no result
    left = feed_row(hanging)
    assert (left.consecutive_failures, left.last_error, left.last_fetched_at) == (0, None, None)
    assert len(articles()) == 3
