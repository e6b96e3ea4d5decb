"""Fetching over real HTTP: limits, redirects, conditional GET, compression."""

from __future__ import annotations

import contextlib
import gzip
import logging
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler

import pytest

from mailer.feeds.fetch import retry_after, unreachable
from tests.feeds.conftest import corpus

FEED = corpus("rss2_content.xml")


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """Set at the end of a test: lets hanging handlers go."""
    event = threading.Event()
    yield event
    event.set()


def _quietly(write: Callable[[BaseHTTPRequestHandler], object]) -> Callable[[BaseHTTPRequestHandler], None]:
    """A handler that ignores the client hanging up on it."""

    def handler(request: BaseHTTPRequestHandler) -> None:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            write(request)
        request.close_connection = True

    return handler


def test_user_agent_accept_and_gzip(feed_server, add_feed_row, poll, articles):
    url = feed_server.add("/gz.xml", gzip.compress(FEED),
                          headers={"Content-Encoding": "gzip", "Content-Type": "application/rss+xml"})
    add_feed_row(url)
    [result] = poll()
    assert result.ok, result.line()
    assert result.new == 3
    headers = {k.lower(): v for k, v in feed_server.requests[0][1].items()}
    assert headers["user-agent"].startswith("NewsletterMailer/")
    assert "newsletter.test" in headers["user-agent"]  # names the installation to feed owners
    assert "gzip" in headers["accept-encoding"]
    assert "application/rss+xml" in headers["accept"]
    assert len(articles()) == 3


def test_conditional_get_with_etag_and_last_modified(feed_server, add_feed_row, poll, articles, feed_row):
    validators = {"ETag": '"v1"', "Last-Modified": "Mon, 02 Mar 2026 10:00:00 GMT"}

    def answer(request: BaseHTTPRequestHandler) -> None:
        if request.headers.get("If-None-Match") == '"v1"':
            request.send_response(304)
            request.send_header("Content-Length", "0")
            request.end_headers()
            return
        request.send_response(200)
        for name, value in validators.items():
            request.send_header(name, value)
        request.send_header("Content-Length", str(len(FEED)))
        request.end_headers()
        request.wfile.write(FEED)

    feed_id = add_feed_row(feed_server.add("/cond.xml", handler=answer))
    [first] = poll()
    assert first.new == 3
    stored = feed_row(feed_id)
    assert (stored.etag, stored.last_modified) == ('"v1"', "Mon, 02 Mar 2026 10:00:00 GMT")
    [second] = poll()
    sent = {k.lower(): v for k, v in feed_server.requests[-1][1].items()}
    assert sent["if-none-match"] == '"v1"'
    assert sent["if-modified-since"] == "Mon, 02 Mar 2026 10:00:00 GMT"
    assert second.ok and second.not_modified
    assert second.line().endswith("not modified")
    assert len(articles()) == 3


def test_same_bytes_without_validators_are_not_parsed_again(feed_server, add_feed_row, poll):
    add_feed_row(feed_server.add("/same.xml", FEED))
    assert poll()[0].new == 3
    [again] = poll()
    assert again.ok and again.not_modified and again.new == 0


def test_five_redirects_are_followed_six_are_not(feed_server, add_feed_row, poll):
    feed_server.add("/final.xml", FEED)
    for hop in range(6):
        target = "/final.xml" if hop == 0 else f"/hop{hop - 1}"
        feed_server.add(f"/hop{hop}", status=302, headers={"Location": target})
    five = add_feed_row(feed_server.url("/hop4"))
    six = add_feed_row(feed_server.url("/hop5"))
    results = {r.feed_id: r for r in poll()}
    assert results[five].ok and results[five].new == 3
    assert not results[six].ok
    assert results[six].error == "more than 5 redirects"


def test_redirect_to_another_scheme_is_refused(feed_server, add_feed_row, poll):
    add_feed_row(feed_server.add("/to-file", status=301, headers={"Location": "file:///etc/passwd"}))
    [result] = poll()
    assert not result.ok
    assert "non-http(s)" in (result.error or "")


def test_relative_redirect_is_resolved(feed_server, add_feed_row, poll):
    feed_server.add("/moved/feed.xml", FEED)
    add_feed_row(feed_server.add("/old/feed.xml", status=308, headers={"Location": "../moved/feed.xml"}))
    assert poll()[0].new == 3


def test_http_error_is_a_failure(feed_server, add_feed_row, poll):
    url = feed_server.add("/gone.xml", b"nope", status=410)
    add_feed_row(url)
    [result] = poll()
    assert not result.ok
    assert result.error == "HTTP 410 Gone"
    assert result.line() == f"FAILED {url}: HTTP 410 Gone"


def test_a_server_that_never_answers_times_out(feed_server, add_feed_row, poll, articles, release):
    hang = feed_server.add("/hang.xml", handler=_quietly(lambda r: release.wait(20)))
    add_feed_row(hang)
    add_feed_row(feed_server.add("/fine.xml", FEED))
    results = poll(FEED_TIMEOUT=0.5)
    assert [r.ok for r in results] == [False, True]
    # No HTTP answer at all: the same line as a closed port (no port-scan oracle).
    assert results[0].error == unreachable(hang)
    assert len(articles()) == 3  # the other feed is stored all the same


def test_a_server_that_drips_bytes_hits_the_overall_budget(feed_server, add_feed_row, poll, release):
    # Every read gets a byte well within the read timeout: only the overall
    # budget stops this (without it, the fetch would last the 20 s of drip).
    def drip(request: BaseHTTPRequestHandler) -> None:
        request.send_response(200)
        request.send_header("Content-Type", "application/rss+xml")
        request.end_headers()
        request.wfile.write(b"<?xml version='1.0'?><rss version='2.0'><channel>")
        for _ in range(200):
            if release.wait(0.1):
                return
            request.wfile.write(b" ")
            request.wfile.flush()

    add_feed_row(feed_server.add("/drip.xml", handler=_quietly(drip)))
    [result] = poll(FEED_TIMEOUT=0.6)
    assert not result.ok
    assert result.error == "timed out after 0.6 s"


def test_a_50_mb_body_is_cut_at_the_size_cap(feed_server, add_feed_row, poll):
    # No Content-Length: only counting streamed bytes catches it.
    chunk = b"<!-- " + b"x" * (1024 * 1024 - 9) + b" -->"

    def flood(request: BaseHTTPRequestHandler) -> None:
        request.send_response(200)
        request.send_header("Content-Type", "application/rss+xml")
        request.send_header("Connection", "close")
        request.end_headers()
        for _ in range(50):
            request.wfile.write(chunk)

    add_feed_row(feed_server.add("/huge.xml", handler=_quietly(flood)))
    [result] = poll()  # the default cap: FEED_MAX_BYTES = 10 MB
    assert not result.ok
    assert result.error == "larger than the 10,485,760-byte limit (FEED_MAX_BYTES)"


def test_a_declared_length_over_the_cap_is_refused_before_reading(feed_server, add_feed_row, poll, release):
    def announce(request: BaseHTTPRequestHandler) -> None:
        request.send_response(200)
        request.send_header("Content-Length", str(50 * 1024 * 1024))
        request.end_headers()
        release.wait(20)  # never sends the body: waiting for it would time out

    add_feed_row(feed_server.add("/announced.xml", handler=_quietly(announce)))
    [result] = poll(FEED_TIMEOUT=5)
    assert result.error == "larger than the 10,485,760-byte limit (FEED_MAX_BYTES)"


def test_a_gzip_bomb_is_cut_after_decoding(feed_server, add_feed_row, poll):
    bomb = gzip.compress(b"<rss>" + b" " * (8 * 1024 * 1024))  # about 8 KB on the wire
    add_feed_row(feed_server.add("/bomb.xml", bomb, headers={"Content-Encoding": "gzip"}))
    [result] = poll(FEED_MAX_BYTES=1024 * 1024)
    assert not result.ok
    assert "1,048,576-byte limit" in (result.error or "")


def test_a_bad_gzip_body_is_a_failure(feed_server, add_feed_row, poll):
    add_feed_row(feed_server.add("/badgz.xml", b"not gzip at all", headers={"Content-Encoding": "gzip"}))
    [result] = poll()
    assert not result.ok
    assert "cannot be decoded" in (result.error or "")


def test_a_refused_connection_is_a_failure(add_feed_row, poll):
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    add_feed_row(f"http://127.0.0.1:{port}/feed.xml")
    [result] = poll()
    assert not result.ok
    assert result.error == unreachable(f"http://127.0.0.1:{port}/feed.xml")
    assert result.error.startswith(f"could not connect to 127.0.0.1:{port}: ")


@pytest.mark.parametrize("status", [301, 308])
def test_a_permanent_redirect_becomes_the_feeds_url(feed_server, add_feed_row, poll, feed_row, status):
    new = feed_server.add("/new/feed.xml", FEED)
    old = feed_server.add("/old/feed.xml", status=status, headers={"Location": "/new/feed.xml"})
    feed_id = add_feed_row(old, source="admin")
    [result] = poll()
    assert result.ok and result.new == 3
    assert result.line() == f"ok     {old}: 3 new, 0 updated (moved permanently to {new}: its URL is updated)"
    assert feed_row(feed_id).url == new
    feed_server.requests.clear()
    assert poll()[0].not_modified
    assert [path for path, _headers in feed_server.requests] == ["/new/feed.xml"]  # straight to it


@pytest.mark.parametrize("status", [302, 303, 307])
def test_a_temporary_redirect_keeps_the_feeds_url(feed_server, add_feed_row, poll, feed_row, status):
    feed_server.add("/elsewhere.xml", FEED)
    old = feed_server.add("/feed.xml", status=status, headers={"Location": "/elsewhere.xml"})
    feed_id = add_feed_row(old, source="admin")
    [result] = poll()
    assert result.ok and result.moved is None
    assert feed_row(feed_id).url == old


def test_only_the_permanent_hops_from_the_feeds_url_count(feed_server, add_feed_row, poll, feed_row):
    feed_server.add("/final.xml", FEED)
    # /a -308-> /b -301-> /c -302-> /final.xml: the feed now lives at /c.
    feed_server.add("/c", status=302, headers={"Location": "/final.xml"})
    feed_server.add("/b", status=301, headers={"Location": "/c"})
    a = add_feed_row(feed_server.add("/a", status=308, headers={"Location": "/b"}), source="admin")
    # /x -307-> /y -301-> /final.xml: /y moved, not /x.
    feed_server.add("/y", status=301, headers={"Location": "/final.xml"})
    x = add_feed_row(feed_server.add("/x", status=307, headers={"Location": "/y"}), source="admin")
    assert all(r.ok for r in poll())
    assert feed_row(a).url == feed_server.url("/c")
    assert feed_row(x).url == feed_server.url("/x")


def test_a_permanent_redirect_to_another_feeds_url_keeps_the_url(feed_server, add_feed_row, poll, feed_row, caplog):
    caplog.set_level(logging.DEBUG, logger="mailer.feeds")
    new = feed_server.add("/new.xml", FEED)
    old = feed_server.add("/old.xml", status=301, headers={"Location": new})
    other = add_feed_row(new, source="admin")
    moved = add_feed_row(old, source="admin")
    results = poll()
    assert all(r.ok for r in results)
    assert (feed_row(moved).url, feed_row(other).url) == (old, new)
    note = f"moved permanently to {new}, the URL of feed {other}: its URL is kept"
    assert results[1].moved == note
    assert any(old in r.getMessage() and note in r.getMessage() for r in caplog.records)


def test_a_feed_named_in_mailer_feeds_keeps_its_url(feed_server, add_feed_row, poll, feed_row):
    new = feed_server.add("/new.xml", FEED)
    old = feed_server.add("/old.xml", status=301, headers={"Location": new})
    feed_id = add_feed_row(old)
    [result] = poll(FEEDS=[old])
    assert result.ok and feed_row(feed_id).url == old
    assert result.line().endswith(f"(moved permanently to {new}: change it in MAILER_FEEDS)")


def test_a_permanent_redirect_to_a_failing_url_changes_nothing(feed_server, add_feed_row, poll, feed_row):
    feed_server.add("/gone.xml", status=404)
    old = feed_server.add("/old.xml", status=301, headers={"Location": "/gone.xml"})
    feed_id = add_feed_row(old, source="admin")
    assert not poll()[0].ok
    assert feed_row(feed_id).url == old


NOW = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)


@pytest.mark.parametrize(("value", "wait"), [
    ("120", timedelta(seconds=120)),
    (" 3600 ", timedelta(hours=1)),
    ("Wed, 25 Nov 2026 08:30:00 GMT", timedelta(minutes=30)),  # HTTP-date
    ("Wednesday, 25-Nov-26 08:30:00 GMT", timedelta(minutes=30)),  # RFC 850, still allowed
    ("Wed Nov 25 08:30:00 2026", timedelta(minutes=30)),  # asctime: GMT
    ("86401", timedelta(hours=24)),  # capped at a day
    ("9" * 5000, timedelta(hours=24)),
    ("Fri, 25 Dec 2026 08:00:00 GMT", timedelta(hours=24)),
    ("0", None),
    ("Wed, 25 Nov 2026 07:00:00 GMT", None),  # past
    ("", None),
    (None, None),
    ("soon", None),
    ("-5", None),
    ("1.5", None),
    ("١٢٠", None),  # digits, but not ASCII ones
    ("Wed, 32 Nov 2026 08:30:00 GMT", None),
])
def test_retry_after_values(value, wait):
    assert retry_after(value, NOW) == wait
