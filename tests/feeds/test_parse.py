"""Feed shapes of the corpus, served over real HTTP, parsed and stored."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from mailer.feeds import FetchResult
from mailer.feeds.parse import FeedParseError, check_xml, parse_feed
from tests.feeds.conftest import corpus


def _fetch_one(feed_server: Any, add_feed_row: Any, poll: Any, name: str, **route: Any) -> FetchResult:
    add_feed_row(feed_server.add(f"/{name}", corpus(name), **route))
    [result] = poll()
    assert isinstance(result, FetchResult)
    return result


def test_rss2_with_content_encoded(feed_server, add_feed_row, poll, articles):
    result = _fetch_one(feed_server, add_feed_row, poll, "rss2_content.xml")
    assert (result.ok, result.new) == (True, 3)
    chip, router, photos = articles()
    assert chip.title == "Nuovo chip neurale: più veloce e più parco"
    assert chip.summary_html == "Un acceleratore per l'IA che consuma la metà."  # description, not the full text
    assert chip.image_url == "https://cronache.example/img/chip.jpg"  # the first <img> of content:encoded
    assert chip.author == "Paola Rossi"
    assert chip.categories == ["Intelligenza Artificiale", "Hardware"]
    assert chip.topic == "ai"
    assert chip.published_at == datetime(2026, 3, 2, 8, 30)  # +0100 -> naive UTC
    assert chip.url == "https://cronache.example/2026/chip-neurale?id=7"  # utm_* gone
    # No description: the summary comes from content:encoded.
    assert router.summary_html == "<p>Una vulnerabilità permette di prendere il controllo del router.</p>"
    assert router.image_url == "https://cronache.example/img/router.png"  # media:content
    assert router.author == "Ugo Bassi"  # RSS's "mail (Name)": the name, never the address
    assert router.topic == "security"
    assert photos.image_url == "https://cronache.example/img/foto.jpg"  # an image enclosure
    assert photos.topic == "other"  # "Cucina" is no topic: the fallback


def test_atom(feed_server, add_feed_row, poll, articles):
    assert _fetch_one(feed_server, add_feed_row, poll, "atom.xml").new == 2
    components, notifications = articles()
    assert components.url == "https://atom.example/blog/posts/web-components"  # xml:base
    assert components.title == "Web components & accessibilità"  # type="html": tags dropped
    assert components.summary_text == "Come rendere accessibili i componenti: a < b & <script> resta testo."
    assert "<script>" not in components.summary_html  # type="text" is escaped, never markup
    assert components.author == "Irene Gallo"
    assert components.published_at == datetime(2026, 3, 1, 9, 0)  # published, not updated
    assert components.topic == "web"
    assert notifications.topic == "mobile"  # "Mobile/Android": a compound category
    assert notifications.summary_html == "<p>Due sistemi, due filosofie.</p>"  # type="xhtml"


def test_rss1(feed_server, add_feed_row, poll, articles):
    assert _fetch_one(feed_server, add_feed_row, poll, "rss1.rdf").new == 2
    first, undated = articles()
    assert (first.author, first.categories, first.topic) == ("Nino Fabbri", ["Processori"], "hardware")
    assert first.published_at == datetime(2026, 3, 1, 7, 0)
    assert undated.published_at == undated.found_at  # no date: the time it was found


def test_rss091_with_the_netscape_doctype(feed_server, add_feed_row, poll, articles):
    assert _fetch_one(feed_server, add_feed_row, poll, "rss091.xml").new == 1
    assert articles()[0].title == "Caffè e computer"  # an HTML entity the DTD defines


def test_latin1_declared_in_the_document(feed_server, add_feed_row, poll, articles):
    assert _fetch_one(feed_server, add_feed_row, poll, "latin1.xml").new == 1
    article = articles()[0]
    assert article.title == "Città più verdi: la novità è qui"
    assert article.summary_text == "Perché la città sarà più verde? Ecco qualità e virtù."
    assert article.categories == ["Società"]


def test_latin1_declared_only_in_the_http_header(feed_server, add_feed_row, poll, articles):
    body = corpus("latin1.xml").split(b"\n", 1)[1]  # without the XML declaration
    add_feed_row(feed_server.add("/header-only.xml", body,
                                 headers={"Content-Type": "application/xml; charset=ISO-8859-1"}))
    assert poll()[0].new == 1
    assert articles()[0].title == "Città più verdi: la novità è qui"


def test_cdata(feed_server, add_feed_row, poll, articles):
    assert _fetch_one(feed_server, add_feed_row, poll, "cdata.xml").new == 1
    article = articles()[0]
    assert article.title == 'Titolo con grassetto & "virgolette"'
    assert article.url == "https://cdata.example/articolo?a=1&b=2"
    assert article.summary_html.startswith("<p>Paragrafo con <em>enfasi</em> e un <a href=\"https://cdata.example/x\"")
    assert "{{7*7}}" in article.summary_html and "{% if true %}" in article.summary_text  # literal


def test_relative_links_resolve_against_the_feed_url(feed_server, add_feed_row, poll, articles):
    url = feed_server.add("/feeds/relative_links.xml", corpus("relative_links.xml"))
    add_feed_row(url)
    assert poll()[0].new == 1
    article = articles()[0]
    origin = url.rsplit("/feeds/", 1)[0]
    assert article.url == f"{origin}/articoli/relativo"
    assert f'<a href="{origin}/altro"' in article.summary_html
    assert '<a href="http://cdn.rel.example/doc"' in article.summary_html  # protocol-relative: the feed's scheme
    assert article.image_url == f"{origin}/feeds/img/foto.jpg"
    assert "<p></p>" not in article.summary_html  # the image-only paragraph leaves nothing behind


def test_duplicates_in_one_document_are_kept_once(feed_server, add_feed_row, poll, articles):
    result = _fetch_one(feed_server, add_feed_row, poll, "duplicates.xml")
    assert result.new == 2
    news, other = articles()
    assert news.title == "La notizia (versione aggiornata)"  # the first, newest copy
    assert other.url == "https://dup.example/altra"


def test_missing_guids_use_the_link_without_tracking(feed_server, add_feed_row, poll, articles):
    result = _fetch_one(feed_server, add_feed_row, poll, "missing_guids.xml")
    assert (result.new, result.skipped) == (2, 1)  # the item with nothing to click is left out
    a, b = articles()
    assert a.dedup_key == "https://noguid.example/a"
    assert a.url == "https://noguid.example/a#commenti"  # trackers gone, the reader's anchor kept
    assert b.url == "https://noguid.example/b?page=2"


def test_malformed_xml_that_can_be_recovered_is_stored_with_a_warning(feed_server, add_feed_row, poll, articles):
    result = _fetch_one(feed_server, add_feed_row, poll, "malformed.xml")
    assert result.ok and result.new == 1
    assert "malformed XML" in result.line()
    assert articles()[0].summary_html == "Testo <b>non chiuso</b>"  # closed by the sanitiser


@pytest.mark.parametrize("body", [corpus("not_a_feed.html"), b"", b"\x00\x01garbage", b"/etc/passwd"])
def test_what_is_not_a_feed_fails(feed_server, add_feed_row, poll, articles, body):
    # b"/etc/passwd": feedparser opens a bytes argument as a file name; we never give it one.
    add_feed_row(feed_server.add("/junk", body))
    [result] = poll()
    assert not result.ok
    assert (result.error or "").startswith("not an RSS or Atom feed")
    assert articles() == []


def test_xxe_is_refused_before_feedparser(feed_server, add_feed_row, poll, articles, feed_row):
    secret = feed_server.add("/secret", b"top secret")
    body = corpus("xxe.xml").replace(b"SECRET_URL", secret.encode())
    feed_id = add_feed_row(feed_server.add("/xxe.xml", body))
    [result] = poll()
    assert not result.ok
    assert "declares entities" in (result.error or "")
    assert [path for path, _ in feed_server.requests] == ["/xxe.xml"]  # the external entity was never fetched
    assert articles() == []
    assert feed_row(feed_id).consecutive_failures == 1


def test_billion_laughs_is_refused(feed_server, add_feed_row, poll, articles):
    result = _fetch_one(feed_server, add_feed_row, poll, "billion_laughs.xml")
    assert not result.ok
    assert "entity-expansion" in (result.error or "")
    assert articles() == []


def test_entities_hidden_behind_a_broken_prolog_are_refused():
    # The prolog does not parse as UTF-8 (the header says Latin-1): the
    # fallback still sees the declaration.
    body = ('<?xml version="1.0"?>\n<!-- é -->\n<!DOCTYPE r [<!ENTITY a "aa"><!ENTITY b "&a;&a;">]>'
            "<rss>&b;</rss>").encode("latin-1")
    with pytest.raises(FeedParseError):
        check_xml(body, "application/xml; charset=iso-8859-1")
    with pytest.raises(FeedParseError):
        parse_feed(b"\xff\xfe" + "<!DOCTYPE r [<!ENTITY a 'x'>]><rss/>".encode("utf-16-le"), url="http://x.example/")


def test_a_doctype_without_entities_is_fine():
    check_xml(b'<?xml version="1.0"?><!DOCTYPE rss SYSTEM "http://example.org/rss.dtd"><rss version="2.0"/>')
