"""The rendered editions: mail-client-safe HTML, a real text part, both localised."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta

from flask import Flask
from lxml import html as lxml_html
from sqlalchemy import select
from sqlalchemy.orm import Session

from mailer.digest import compose_digest
from mailer.digest.lines import MAX_LINE_OCTETS, longest_line
from mailer.digest.render import inline_css
from mailer.models import Article, DigestEdition, Subscriber
from tests.digest.conftest import NOW
from tests.http_server import FeedServer


def _compose(app: Flask, session: Session) -> DigestEdition:
    digest = compose_digest(session, app.config, NOW)
    session.commit()
    assert digest is not None
    edition = session.scalar(select(DigestEdition).order_by(DigestEdition.id))
    assert edition is not None
    return edition


def test_the_html_is_inlined_for_mail_clients(
    app_context: Flask, session: Session, add_article: Callable[..., Article], add_reader: Callable[..., Subscriber]
) -> None:
    add_article(image_url="https://img.example.it/a.jpg")
    add_reader()
    html = _compose(app_context, session).html
    doc = lxml_html.document_fromstring(html)
    assert html.startswith("<!DOCTYPE html>")
    assert not doc.xpath("//script | //link | //iframe | //form")
    # premailer inlined the sheet: classes carry their styles inline...
    title = doc.find_class("d-h1")[0]
    assert "font-size:26px" in title.get("style")
    container = doc.find_class("d-container")[0]
    assert "max-width:600px" in container.get("style")
    # ... and kept what cannot be inlined, with !important so it wins.
    style = "".join(s.text or "" for s in doc.iter("style"))
    assert "@media only screen and (max-width: 620px)" in style
    assert re.search(r"\.d-thumb \{\s*width: 80px !important", style)
    assert "prefers-color-scheme: dark" in style
    assert ".d-container {" not in style.split("@media")[0]  # plain rules were inlined, not left
    assert doc.xpath("//meta[@name='color-scheme']")
    # An Outlook wrapper holds the layout at 600 px.
    assert '<!--[if mso]><table role="presentation" width="600"' in html


def test_images_have_the_right_alt_text_and_the_preheader_is_hidden(
    app_context: Flask, session: Session, add_article: Callable[..., Article], add_reader: Callable[..., Subscriber]
) -> None:
    app_context.config["LOGO_URL"] = "https://www.example.it/logo.png"
    first = add_article("Il primo titolo", image_url="https://img.example.it/a.jpg")
    add_article("Il secondo titolo", published_at=NOW - timedelta(days=1))
    add_reader()
    doc = lxml_html.document_fromstring(_compose(app_context, session).html)
    images = doc.xpath("//img")
    assert [img.get("src") for img in images] == ["https://www.example.it/logo.png", "https://img.example.it/a.jpg"]
    # The thumbnail is decorative: its title is beside it (read once, no clipped alt text when images are off).
    assert [img.get("alt") for img in images] == ["Notizie Tech", ""]
    assert first.title in doc.text_content()
    assert all(img.get("height") != "auto" for img in images)  # not an HTML value
    preheader = doc.find_class("d-preheader")[0]
    assert "display:none" in preheader.get("style")
    assert preheader.text_content().startswith("Il primo titolo · Il secondo titolo")


def test_the_footer_says_why_and_links_out(
    app_context: Flask, session: Session, add_article: Callable[..., Article], add_reader: Callable[..., Subscriber]
) -> None:
    add_article(topic="ai")
    add_reader(topics="ai,web")
    edition = _compose(app_context, session)
    doc = lxml_html.document_fromstring(edition.html)
    footer = doc.find_class("d-footer")[0]
    text = " ".join(footer.text_content().split())
    assert "you subscribed to the Notizie Tech newsletter" in text
    assert "You chose these topics: Artificial intelligence, Web." in text
    assert app_context.config["POSTAL_ADDRESS"] in text
    links = [a.get("href") for a in footer.iter("a")]
    base = app_context.config["BASE_URL"]
    assert links[0].startswith(f"{base}/archive/")
    assert links[1].startswith(f"{base}/preferences/") and links[2].startswith(f"{base}/unsubscribe/")
    assert app_context.config["POSTAL_ADDRESS"] in edition.text
    assert "You chose these topics: Artificial intelligence, Web." in " ".join(edition.text.split())


def test_titles_are_escaped_and_summaries_are_used_as_sanitised(
    app_context: Flask, session: Session, add_article: Callable[..., Article], add_reader: Callable[..., Subscriber]
) -> None:
    add_article("<img src=x onerror=alert(1)> & «citazione»",
                summary_html="<p>Un <strong>sommario</strong> &amp; un <a href='/rel'>link</a></p>",
                summary_text="Un sommario & un link")
    add_reader()
    edition = _compose(app_context, session)
    doc = lxml_html.document_fromstring(edition.html)
    assert not doc.xpath("//img[@onerror]")
    heading = doc.find_class("d-article-title")[0]
    assert heading.text_content() == "<img src=x onerror=alert(1)> & «citazione»"
    summary = doc.find_class("d-summary")[0]
    assert summary.find("strong") is not None
    assert summary.find("a").get("href") == "https://news.example.it/rel"
    # The text part is text: no tags, no entities.
    assert "* <img src=x onerror=alert(1)> & «citazione»" in edition.text
    assert "Un sommario & un link" in edition.text and "&amp;" not in edition.text


def test_the_text_part_is_a_real_text_edition(
    app_context: Flask, session: Session, add_article: Callable[..., Article], add_reader: Callable[..., Subscriber]
) -> None:
    long_summary = "Una frase che si ripete per fare un sommario lungo. " * 20
    article = add_article("Un titolo", topic="security", summary_text=long_summary,
                          summary_html=f"<p>{long_summary}</p>")
    add_reader(language="it")
    text = _compose(app_context, session).text
    lines = text.split("\n")
    assert lines[0] == "NOTIZIE TECH"
    assert lines[1] == "Le notizie della settimana – 25 novembre 2026"
    assert "CYBERSECURITY" in lines
    item = lines.index("* Un titolo")
    assert lines[item + 1] == "  Tech News Example · 25 novembre"
    assert lines[item + 2].startswith("  Una frase che si ripete")
    assert f"  {article.url}" in lines
    # A short summary, not the whole text; wrapped for people.
    assert text.count("Una frase") < 10
    assert max(len(line) for line in lines) <= 78
    assert "<" not in text.replace("<img", "")  # no markup leaked


def test_every_line_is_within_the_smtp_limit_even_with_hostile_input(
    app_context: Flask, session: Session, add_article: Callable[..., Article], add_reader: Callable[..., Subscriber]
) -> None:
    add_article("T" * 990, summary_html="<p>" + "è" * 3000 + "</p>", summary_text="s" * 3000,
                url="https://news.example.it/" + "p" * 900)
    for n in range(25):
        add_article(f"Notizia {n} " + "parola " * 40)
    add_reader()
    edition = _compose(app_context, session)
    assert longest_line(edition.html) <= MAX_LINE_OCTETS
    assert longest_line(edition.text) <= MAX_LINE_OCTETS


def test_inlining_fetches_nothing_an_import_names(feed_server: FeedServer) -> None:
    """cssutils follows ``@import`` inside ``<style>`` even with premailer's network off: nothing may reach out."""
    sheet = feed_server.add("/internal.css", "p { color: red }", headers={"Content-Type": "text/css"})
    html = (f'<html><head><style>@import url("{sheet}"); @import \'{sheet}\'; p {{ margin: 0 }}</style></head>'
            "<body><p>Come funziona @import in CSS</p></body></html>")
    out = inline_css(html, "http://newsletter.test")
    assert feed_server.requests == []
    assert "Come funziona @import in CSS" in out  # text that mentions it is left alone
    assert "margin:0" in out.replace(" ", "")
