"""Feeds: their state (last success, last error, failures in a row), add, disable, enable."""

from __future__ import annotations

from flask import abort, current_app, flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from sqlalchemy import func, select

from mailer import feeds
from mailer.admin.blueprint import bp
from mailer.admin.forms import ActionForm, AddFeedForm
from mailer.db import get_session
from mailer.models import Article, Feed, FeedSource


def _feed_page(form: AddFeedForm, status: int = 200) -> ResponseReturnValue:
    session = get_session()
    rows = session.execute(
        select(Feed, func.count(Article.id))
        .outerjoin(Article, Article.feed_id == Feed.id)
        .group_by(Feed.id)
        .order_by(Feed.enabled.desc(), Feed.id)
    ).all()
    return render_template(
        "pages/admin/feeds.html",
        feeds=rows,
        form=form,
        action_form=ActionForm(),
        FeedSource=FeedSource,
        alert_after=int(current_app.config["FEED_FAILURE_ALERT"]),
    ), status


@bp.get("/feeds/")
def feed_list() -> ResponseReturnValue:
    """Every feed with its state; failing ones are flagged."""
    return _feed_page(AddFeedForm(formdata=None))


@bp.post("/feeds/")
def add_feed() -> ResponseReturnValue:
    """Add a feed by URL; it is polled with the others from then on."""
    form = AddFeedForm()
    if not form.validate_on_submit():
        return _feed_page(form, 400)
    session = get_session()
    url = form.url.data or ""
    if session.scalar(select(Feed.id).where(Feed.url == url)) is not None:
        form.url.errors = [_("This feed is already in the list.")]
        return _feed_page(form, 400)
    try:
        feeds.add_feed(session, url, current_app.config["FEED_ALLOW_NETWORKS"])
        session.commit()
    except feeds.RefusedFeedAddress as exc:
        session.rollback()
        form.url.errors = [_("%(address)s is not a public address: feeds can reach the internal network only "
                             "where MAILER_FEED_ALLOW_NETWORKS allows it.", address=str(exc.address))]
        return _feed_page(form, 400)
    except ValueError as exc:
        session.rollback()
        form.url.errors = [str(exc)]
        return _feed_page(form, 400)
    flash(_("Feed added: it is polled from the next run on."), "success")
    return redirect(url_for("admin.feed_list"), code=303)


def _set_enabled(feed_id: int, enabled: bool) -> ResponseReturnValue:
    session = get_session()
    if session.get(Feed, feed_id) is None:
        abort(404)
    if ActionForm().validate_on_submit():
        feeds.set_feed_enabled(session, feed_id, enabled)
        session.commit()
        flash(_("Feed enabled.") if enabled else _("Feed disabled: it is no longer polled."), "success")
    return redirect(url_for("admin.feed_list"), code=303)


@bp.post("/feeds/<int:feed_id>/disable")
def disable_feed(feed_id: int) -> ResponseReturnValue:
    """Stop polling a feed (its articles stay)."""
    return _set_enabled(feed_id, False)


@bp.post("/feeds/<int:feed_id>/enable")
def enable_feed(feed_id: int) -> ResponseReturnValue:
    """Poll a disabled feed again."""
    return _set_enabled(feed_id, True)
