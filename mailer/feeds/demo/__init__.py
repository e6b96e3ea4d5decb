"""The bundled demo feed, served by the app itself outside production.

A fresh install (``make run``) polls ``BASE_URL/demo/feed.xml`` by default,
so the first digest has articles, images and every topic without any
network access. Article links and images point back here too.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from flask import Blueprint, Response, abort, current_app, render_template, request
from werkzeug.wrappers import Response as BaseResponse

from mailer.feeds.demo import feed, images
from mailer.feeds.demo.items import ITEMS

bp = Blueprint("feeds", __name__, template_folder="templates")


@bp.before_request
def _only_outside_production() -> None:
    """The demo does not exist in production."""
    if current_app.config["ENV"] == "production":
        abort(404)


@bp.get("/demo/feed.xml")
def demo_feed() -> BaseResponse:
    """The demo RSS feed, with ETag and Last-Modified for conditional GETs."""
    now = datetime.now(UTC)
    body = feed.render(current_app.config["BASE_URL"], current_app.config["SITE_NAME"], now)
    response = Response(body, mimetype="application/rss+xml")
    response.set_etag(hashlib.sha256(body).hexdigest())
    response.last_modified = feed.anchor(now)
    response.cache_control.max_age = 300
    return response.make_conditional(request)


@bp.get("/demo/images/<name>.png")
def demo_image(name: str) -> Response:
    """A demo article's banner."""
    if name not in images.PALETTE:
        abort(404)
    response = Response(images.banner(name), mimetype="image/png")
    response.cache_control.public = True
    response.cache_control.max_age = 86400
    return response


@bp.get("/demo/articoli/<slug>")
def demo_article(slug: str) -> str:
    """The page a demo article's link opens."""
    for index, item in enumerate(ITEMS):
        if item.slug == slug:
            base_url = current_app.config["BASE_URL"]
            return render_template(
                "feeds/demo_article.html", item=item,
                published=feed.published(index, datetime.now(UTC)),
                image_url=f"{base_url}/demo/images/{item.image}.png",
            )
    abort(404)
