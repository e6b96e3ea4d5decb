"""One edition: Jinja templates in the segment's language, then premailer once.

The templates get random markers where the reader's tokens go; once the HTML
is inlined and folded, any copy of the public placeholders that came in with
an article is removed and the markers become the placeholders. So only our own
footer links carry them, and a hostile feed cannot make ``delivery/`` write a
reader's token into a link of its own.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from flask import render_template
from flask_babel import force_locale
from premailer import Premailer

from mailer.digest import PREFERENCES_TOKEN, UNSUBSCRIBE_TOKEN
from mailer.digest.lines import fold_html
from mailer.digest.pick import EditionContent, Item, edition_content
from mailer.topics import topic_name

log = logging.getLogger("mailer.digest")

PREHEADER_CHARS = 140


@dataclass(frozen=True)
class Rendered:
    """An edition's final HTML and text (with placeholders), and what it shows."""

    html: str
    text: str
    shown: int
    more: int
# The <style> elements of a page, and the @import rules inside one.
_STYLE = re.compile(r"(<style\b[^>]*>)(.*?)(</style\s*>)", re.IGNORECASE | re.DOTALL)
_IMPORT = re.compile(r"@import\b[^;]*(;|$)", re.IGNORECASE)


def new_marker() -> str:
    """A random alphanumeric marker that premailer and lxml leave alone."""
    return f"x0{secrets.token_hex(8)}0x"


def inline_css(html: str, base_url: str) -> str:
    """premailer with the network off: styles from our own ``<style>`` only.

    ``strip_important=False`` keeps the ``!important`` that lets the phone
    and dark-mode media queries (kept in ``<style>``) beat the inlined styles.
    ``allow_network=False`` does not reach cssutils, which fetches what an
    ``@import`` names: those rules are dropped first (a server-side fetch).
    """
    return str(
        Premailer(
            _STYLE.sub(_without_imports, html),
            base_url=base_url + "/",
            allow_network=False,
            allow_loading_external_files=False,
            external_styles=None,
            strip_important=False,
            # Vendor properties (mso-*, -webkit-*) are deliberate: no warnings.
            cssutils_logging_level=logging.CRITICAL,
        ).transform()
    )


def _without_imports(style: re.Match[str]) -> str:
    """A ``<style>`` element without its ``@import`` rules."""
    return style.group(1) + _IMPORT.sub("", style.group(2)) + style.group(3)


def seal_placeholders(text: str, unsubscribe_marker: str, preferences_marker: str) -> str:
    """Drop placeholders that came with an article, then turn our markers into them."""
    for placeholder in (UNSUBSCRIBE_TOKEN, PREFERENCES_TOKEN):
        while placeholder in text:  # a loop: removing one copy may join two halves
            text = text.replace(placeholder, "")
    return text.replace(unsubscribe_marker, UNSUBSCRIBE_TOKEN).replace(preferences_marker, PREFERENCES_TOKEN)


def preheader(content: EditionContent) -> str:
    """The inbox preview line: the first headlines."""
    titles = " · ".join(item.title for item in content.items()[:3])
    return titles if len(titles) <= PREHEADER_CHARS else titles[: PREHEADER_CHARS - 1].rstrip() + "…"


def _render_once(
    config: Mapping[str, Any], content: EditionContent, *, language: str, subject: str,
    topics: str, archive_url: str, personal: bool,
) -> tuple[str, str]:
    """Render both templates and inline the HTML; return (html, text) with placeholders."""
    base = config["BASE_URL"]
    unsubscribe_marker, preferences_marker = new_marker(), new_marker()
    context = {
        "subject": subject,
        "language": language,
        "content": content,
        "preheader": preheader(content),
        "topic_names": [topic_name(config["TOPICS"], slug, language) for slug in topics.split(",") if slug],
        "archive_url": archive_url,
        "personal": personal,
        "unsubscribe_url": f"{base}/unsubscribe/{unsubscribe_marker}" if personal else None,
        "preferences_url": f"{base}/preferences/{preferences_marker}" if personal else None,
        "subscribe_url": f"{base}/",
        "site_url": config["SITE_URL"] or base,
        "config": config,
    }
    with force_locale(language):
        html = render_template("email/digest.html", **context)
        text = render_template("email/digest.txt", **context)
    html = fold_html(inline_css(html, base))
    return (
        seal_placeholders(html, unsubscribe_marker, preferences_marker),
        seal_placeholders(text, unsubscribe_marker, preferences_marker),
    )


def render_edition(
    config: Mapping[str, Any], items: Sequence[Item], *, language: str, subject: str,
    topics: str = "", archive_url: str, personal: bool = True,
) -> Rendered | None:
    """Render the edition of ``topics`` ("" for all) in ``language``; None if it is empty.

    ``personal`` editions carry the unsubscribe and preferences placeholders;
    the web archive's does not. An HTML part over ``DIGEST_MAX_HTML_BYTES``
    (Gmail clips at 102 KB) is rendered again with fewer articles, the rest
    going to the "more on the site" line, and a warning is logged.
    """
    wanted = frozenset(topics.split(",")) if topics else None
    cap = int(config["DIGEST_MAX_ARTICLES"])
    limit = int(config["DIGEST_MAX_HTML_BYTES"])
    while True:
        content = edition_content(items, wanted, cap, config, language)
        if not content.shown:
            return None
        html, text = _render_once(config, content, language=language, subject=subject, topics=topics,
                                  archive_url=archive_url, personal=personal)
        size = len(html.encode("utf-8"))
        if size <= limit or content.shown == 1:
            break
        # Proportional guess with a margin, so it usually takes one more render.
        cap = max(1, min(content.shown - 1, int(content.shown * limit / size * 0.9)))
        log.warning("digest edition %r/%s is %d bytes, over %d: trying %d articles",
                    topics, language, size, limit, cap)
    if size > limit:
        log.warning("digest edition %r/%s is still %d bytes with one article", topics, language, size)
    return Rendered(html, text, content.shown, content.more)
