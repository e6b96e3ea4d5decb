"""The web archive: the list of digests, one digest, and their RSS feed.

A digest's page shows ``Digest.archive_html``, the full edition rendered
without any reader's tokens; the "view in browser" link of every edition
points here.
"""

from __future__ import annotations

import html
import math
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

from flask import Response, abort, current_app, render_template, url_for
from lxml import html as lxml_html
from lxml.etree import ParserError
from sqlalchemy import func, select

from mailer.db import get_session
from mailer.digest import bp
from mailer.digest.period import digest_subject
from mailer.digest.pick import web_url
from mailer.headers import content_security_policy
from mailer.i18n import select_locale, set_language
from mailer.models import Article, Digest, DigestStatus
from mailer.paging import page_number

PER_PAGE = 20
FEED_ITEMS = 20
# A paused digest may have been stopped for a mistake: it leaves the list and
# the feed (its page still answers, since some readers have its link).
LISTED = (DigestStatus.SENDING, DigestStatus.FINISHED)


def _rfc822(moment: datetime) -> str:
    """An RSS date from a naive UTC time."""
    return format_datetime(moment.replace(tzinfo=UTC))


def split_document(document: str) -> tuple[list[str], str, str]:
    """The ``<style>`` texts, body HTML and body ``style`` of a stored edition."""
    if not document.strip():
        return [], "", ""
    try:
        root = lxml_html.document_fromstring(document)
    except (ParserError, ValueError):
        return [], "", ""
    # Shown raw inside <style> on the page: never let one close the element.
    styles = [(style.text or "").replace("</", "<\\/") for style in root.iter("style")]
    body = root.find("body")
    if body is None:
        return styles, "", ""
    inner = html.escape(body.text or "", quote=False)
    inner += "".join(lxml_html.tostring(child, encoding="unicode") for child in body)
    return styles, inner, body.get("style", "")


@bp.get("/archive/")
def archive_index() -> str:
    """Sent digests, newest first, a page at a time."""
    session = get_session()
    listed = Digest.status.in_(LISTED)
    total = session.scalar(select(func.count()).select_from(Digest).where(listed)) or 0
    page = page_number(math.ceil(total / PER_PAGE))
    digests = session.scalars(
        select(Digest).where(listed).order_by(Digest.created_at.desc(), Digest.id.desc())
        .limit(PER_PAGE).offset((page - 1) * PER_PAGE)
    ).all()
    return render_template("pages/archive/index.html", digests=digests, page=page,
                           has_next=page * PER_PAGE < total)


@bp.get("/archive/<int:digest_id>")
def archive_show(digest_id: int) -> Response:
    """One digest as readers got it, without any reader's tokens, in their language.

    The language is the ``?lang=`` of the mail's "view in browser" link,
    else the browser's; a digest composed before the copies in every
    language existed has only its MAILER_LOCALE one.
    """
    digest = get_session().get(Digest, digest_id)
    if digest is None or not digest.archive_html:
        abort(404)
    language = select_locale()  # ?lang= (mailer.i18n reads it for every page), else the browser's
    page = (digest.archive_translations or {}).get(language)
    if page is None:
        language, page = str(current_app.config["LOCALE"]), digest.archive_html
        set_language(language)  # the page around the copy in the copy's language
    styles, body, body_style = split_document(page)
    response = Response(render_template(
        "pages/archive/show.html", digest=digest, styles=styles, body=body, body_style=body_style,
        subject=digest_subject(current_app.config, language, digest.created_at)), mimetype="text/html")
    # The mail's CSS is inline and its pictures are on the feeds' sites; scripts stay refused.
    response.headers["Content-Security-Policy"] = content_security_policy(inline_styles=True, remote_images=True)
    return response


def _feed_items(digests: list[Digest]) -> dict[int, list[tuple[str, str | None]]]:
    """The (title, link) of each digest's articles, newest first, as many as an edition shows."""
    if not digests:
        return {}
    rows = get_session().scalars(
        select(Article).where(Article.digest_id.in_([d.id for d in digests]))
        .order_by(Article.published_at.desc(), Article.id.desc())
    )
    cap = int(current_app.config["DIGEST_MAX_ARTICLES"])
    grouped: dict[int, list[tuple[str, str | None]]] = {d.id: [] for d in digests}
    for article in rows:
        bucket = grouped[article.digest_id or 0]
        if len(bucket) < cap:
            bucket.append((" ".join(article.title.split()), web_url(article.url)))
    return grouped


@bp.get("/archive/feed.xml")
def archive_feed() -> Response:
    """RSS 2.0 of the newest digests, each with its headlines."""
    digests = list(get_session().scalars(
        select(Digest).where(Digest.status.in_(LISTED))
        .order_by(Digest.created_at.desc(), Digest.id.desc()).limit(FEED_ITEMS)
    ))
    context: dict[str, Any] = {
        "digests": digests,
        "articles": _feed_items(digests),
        "rfc822": _rfc822,
        "base_url": current_app.config["BASE_URL"],
        "self_url": current_app.config["BASE_URL"] + url_for("digest.archive_feed"),
        "updated": _rfc822(digests[0].created_at) if digests else None,
    }
    body = render_template("pages/archive/feed.xml", **context)
    return Response(body, mimetype="application/rss+xml")
