"""The demo feed's XML: RSS 2.0 with content:encoded, Dublin Core and Media RSS.

Dates are relative to now (item ``i`` was published ``i * 10`` hours before
the current hour) so a fresh install's first fetch finds every item inside
the FIRST_FETCH_DAYS window; guids never change, so later polls find nothing
new and re-dated items are not sent again.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from xml.etree.ElementTree import Element, SubElement, register_namespace, tostring

from markupsafe import escape

from mailer.feeds.demo.images import HEIGHT, WIDTH
from mailer.feeds.demo.items import ITEMS, DemoItem

NAMESPACES = {
    "content": "http://purl.org/rss/1.0/modules/content/",
    "dc": "http://purl.org/dc/elements/1.1/",
    "media": "http://search.yahoo.com/mrss/",
    "atom": "http://www.w3.org/2005/Atom",
}
HOURS_BETWEEN_ITEMS = 10


def anchor(now: datetime) -> datetime:
    """The current hour (aware UTC): the feed's bytes, and so its ETag, change once an hour."""
    return now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def published(index: int, now: datetime) -> datetime:
    """When item ``index`` was "published"."""
    return anchor(now) - timedelta(hours=HOURS_BETWEEN_ITEMS * index)


def guid(item: DemoItem) -> str:
    """A stable, non-URL guid (``isPermaLink="false"``)."""
    return f"tag:newsletter-demo,2026:{item.slug}"


def article_html(item: DemoItem, image_url: str) -> str:
    """The full article as content:encoded carries it (our own markup, not a feed's)."""
    first, *rest = item.paragraphs
    figure = f'<figure><img src="{escape(image_url)}" alt="" width="{WIDTH}" height="{HEIGHT}"></figure>'
    return "".join([f"<p>{first}</p>", figure, *(f"<p>{p}</p>" for p in rest)])


def render(base_url: str, site_name: str, now: datetime) -> bytes:
    """The feed document, UTF-8."""
    for prefix, uri in NAMESPACES.items():
        register_namespace(prefix, uri)
    ns = {prefix: f"{{{uri}}}" for prefix, uri in NAMESPACES.items()}
    rss = Element("rss", version="2.0")
    channel = SubElement(rss, "channel")
    SubElement(channel, "title").text = f"{site_name} (demo)"
    SubElement(channel, "link").text = f"{base_url}/demo/"
    SubElement(channel, "description").text = "Notizie di tecnologia inventate per provare la newsletter."
    SubElement(channel, "language").text = "it"
    SubElement(channel, "lastBuildDate").text = format_datetime(anchor(now), usegmt=True)
    SubElement(channel, ns["atom"] + "link", href=f"{base_url}/demo/feed.xml", rel="self",
               type="application/rss+xml")
    for index, item in enumerate(ITEMS):
        image_url = f"{base_url}/demo/images/{item.image}.png"
        entry = SubElement(channel, "item")
        SubElement(entry, "title").text = item.title
        SubElement(entry, "link").text = f"{base_url}/demo/articoli/{item.slug}"
        SubElement(entry, "guid", isPermaLink="false").text = guid(item)
        SubElement(entry, "description").text = item.summary
        SubElement(entry, ns["content"] + "encoded").text = article_html(item, image_url)
        SubElement(entry, ns["dc"] + "creator").text = item.author
        for category in item.categories:
            SubElement(entry, "category").text = category
        SubElement(entry, "pubDate").text = format_datetime(published(index, now), usegmt=True)
        SubElement(entry, ns["media"] + "content", url=image_url, medium="image", type="image/png",
                   width=str(WIDTH), height=str(HEIGHT))
    document: bytes = tostring(rss, encoding="utf-8", xml_declaration=True)
    return document
