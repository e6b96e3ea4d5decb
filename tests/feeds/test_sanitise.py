"""Sanitising feed markup: the allow-list, the cut, the plain text."""

from __future__ import annotations

import re
import unicodedata
from html.parser import HTMLParser

import nh3
import pytest

from mailer.feeds.sanitise import ELLIPSIS, cut_text, first_image, html_to_text, plain, summarise
from tests.feeds.conftest import corpus

WORDS = "Il nuovo processore promette prestazioni elevate consumi ridotti e perché no qualità migliore"


class _Balance(HTMLParser):
    """Checks that every opened tag is closed, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.ok = True

    def handle_starttag(self, tag, attrs):
        if tag != "br":
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack.pop() != tag:
            self.ok = False


def _balanced(markup: str) -> bool:
    checker = _Balance()
    checker.feed(markup)
    checker.close()
    return checker.ok and not checker.stack


def test_hostile_markup_is_removed(feed_server, add_feed_row, poll, articles):
    add_feed_row(feed_server.add("/hostile.xml", corpus("hostile.xml")))
    [result] = poll()
    assert (result.ok, result.new, result.skipped) == (True, 1, 2)  # javascript: and ftp: links are not articles
    article = articles()[0]
    html = article.summary_html
    for bad in ("<script", "alert('xss')", "<style", "display:none", "<iframe", "contenuto dell'iframe", "onclick",
                "onmouseover", "javascript:", "data:", "<form", "<input", "<button", "<object", "<svg", "onload",
                "style=", "target=", "<img", "\x00"):
        assert bad not in html, bad
    assert '<a href="https://ok.example/" rel="noopener noreferrer">buono</a>' in html
    assert "{{7*7}}" in html and "{% raw %}" in html  # feed text is never a template
    assert article.title == "Titolo {{ config.SECRET_KEY }}"  # markup in the title dropped, the rest literal
    assert article.categories == ["Web"]
    assert article.image_url == "https://ok.example/real.jpg"  # not the 1x1 pixel, not javascript:


def test_feed_text_stays_literal_in_a_rendered_page(app):
    # What the digest does with a summary: put it in a template as data.
    from flask import render_template_string

    summary, text = summarise("<p>{{7*7}} {{ config.SECRET_KEY }}</p>", None, 500)
    with app.test_request_context():
        page = render_template_string("{{ summary | safe }} {{ text }}", summary=summary, text=text)
    assert "49" not in page and "test-secret" not in page
    assert "{{7*7}}" in page


def test_only_http_links_survive():
    html, _ = summarise('<a href="mailto:a@b.it">m</a> <a href="ftp://x/y">f</a> <a href="https://x.it/">h</a>'
                        ' <a href="vbscript:x">v</a> <a href="  JaVaScRiPt:alert(1)">j</a>', None, 500)
    assert html.count("href=") == 1
    assert 'href="https://x.it/"' in html


def test_relative_links_without_a_base_are_dropped():
    html, _ = summarise('<a href="/x">x</a>', None, 500)
    assert "href" not in html


def test_the_summary_is_cut_at_a_word_boundary():
    text = " ".join([WORDS] * 20)
    html, plain_text = summarise(f"<p>{text}</p>", None, 100)
    assert html.startswith("<p>") and html.endswith(f"{ELLIPSIS}</p>")
    kept = plain_text.removesuffix(ELLIPSIS)
    assert len(kept) <= 100
    assert text.startswith(kept)
    assert text[len(kept)] == " "  # the next character of the original is a space: a whole word


def test_the_cut_never_breaks_markup():
    paragraph = f"<p>Prima parte con <strong>testo in <a href='https://x.it/'>{WORDS} {WORDS}</a> finale</strong></p>"
    html, _ = summarise(paragraph * 5 + "<ul><li>uno</li><li>due</li></ul>", None, 120)
    assert _balanced(html), html
    assert nh3.clean(html, tags={"p", "strong", "a"}, attributes={"a": {"href", "rel"}}, link_rel=None) == html
    assert "<li>" not in html  # everything after the cut is gone
    assert html.endswith(f"{ELLIPSIS}</a></strong></p>")


def test_the_cut_never_breaks_entities_or_accents():
    decomposed = unicodedata.normalize("NFD", "perché città più è")  # letters + combining accents
    source = f"<p>{' '.join([decomposed] * 30)} &amp; &lt;fine&gt;</p>"
    for limit in range(5, 80, 3):
        html, text = summarise(source, None, limit)
        assert not re.search(r"&[a-z]*(?![a-z;])", html.replace("&amp;", "").replace("&lt;", "").replace("&gt;", ""))
        assert unicodedata.normalize("NFC", text) == text  # accents composed, none left dangling
        assert not unicodedata.combining(text.removesuffix(ELLIPSIS)[-1:] or "a")


def test_a_short_summary_is_not_cut():
    html, text = summarise("<p>Breve.</p>", None, 500)
    assert (html, text) == ("<p>Breve.</p>", "Breve.")


def test_one_enormous_word_is_cut_inside():
    assert cut_text("x" * 50, 10) == "x" * 9 + ELLIPSIS
    html, _ = summarise("<p>" + "y" * 50 + "</p>", None, 10)
    assert html == "<p>" + "y" * 9 + ELLIPSIS + "</p>"


def test_headings_become_bold_paragraphs():
    html, text = summarise("<h1>Titolo</h1><p>Testo</p>", None, 500)
    assert html == "<p><strong>Titolo</strong></p><p>Testo</p>"
    assert text == "Titolo\n\nTesto"


def test_plain_text_version():
    text = html_to_text("<p>Uno <b>due</b><br>tre</p><ul><li>a</li><li>b &amp; c</li></ul><p>fine</p>")
    assert text == "Uno due\ntre\n\n- a\n- b & c\n\nfine"


@pytest.mark.parametrize(("value", "expected"), [
    ("  AT&amp;T   <b>news</b>\n", "AT&T news"),
    ("Caffè\x00 \x07ok", "Caffè ok"),
    ("<script>alert(1)</script>Titolo", "Titolo"),
])
def test_plain_one_line_text(value, expected):
    assert plain(value) == expected


def test_tracking_pixels_are_not_the_image():
    markup = '<img src="https://t.example/p.gif" width="1" height="1"><img src="/real.png" width="600">'
    assert first_image(markup, "https://site.example/a/b") == "https://site.example/real.png"
    assert first_image('<img src="data:image/png;base64,AAAA">', None) is None
