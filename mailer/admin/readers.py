"""Readers: search and filter, a reader's record and consent log, unsubscribe and erase."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from sqlalchemy import Select, func, literal, or_, select
from sqlalchemy.orm import Session

from mailer import subscriptions
from mailer.admin.auth import current_admin
from mailer.admin.blueprint import bp
from mailer.admin.forms import EraseForm, UnsubscribeForm
from mailer.db import get_session
from mailer.models import ConsentChannel, ConsentEvent, Delivery, Digest, Subscriber, SubscriberStatus
from mailer.paging import page_number

PAGE_SIZE = 50
# Statuses a reader can still be unsubscribed from.
ACTIVE = (SubscriberStatus.PENDING, SubscriberStatus.CONFIRMED)


@dataclass(frozen=True)
class ReaderFilter:
    """The search box and the filters of the reader list, from the query string."""

    q: str = ""
    status: str = ""
    topic: str = ""
    language: str = ""

    @classmethod
    def from_args(cls, args: Any, topics: Any, languages: Any) -> ReaderFilter:
        """Read the query string, dropping unknown values instead of failing."""
        status = args.get("status", "")
        topic = args.get("topic", "")
        language = args.get("language", "")
        return cls(
            q=args.get("q", "").strip()[:320],
            status=status if status in {s.value for s in SubscriberStatus} else "",
            topic=topic if topic in topics else "",
            language=language if language in languages else "",
        )

    def apply(self, stmt: Select[Any]) -> Select[Any]:
        """``stmt`` narrowed to the matching readers."""
        if self.q:
            # autoescape: a "%" or "_" typed in the box is a character, not a wildcard.
            match = Subscriber.email.icontains(self.q, autoescape=True)
            digits = self.q.lstrip("#")
            if digits.isdigit() and len(digits) < 10:
                match = or_(match, Subscriber.id == int(digits))  # "#123" finds reader 123
            stmt = stmt.where(match)
        if self.status:
            stmt = stmt.where(Subscriber.status == self.status)
        if self.topic:
            # Topics are stored as "ai,web"; "" means every topic, so those
            # readers get this topic too.
            wrapped = literal(",") + Subscriber.topics + literal(",")
            stmt = stmt.where(or_(Subscriber.topics == "", wrapped.contains(f",{self.topic},", autoescape=True)))
        if self.language:
            stmt = stmt.where(Subscriber.language == self.language)
        return stmt

    def args(self, **changes: Any) -> dict[str, Any]:
        """The query string for a link keeping these filters (pages, exports)."""
        values = {"q": self.q, "status": self.status, "topic": self.topic, "language": self.language, **changes}
        return {k: v for k, v in values.items() if v}


@bp.get("/readers/")
def readers() -> ResponseReturnValue:
    """The reader list: search, filters, newest first, paged."""
    from mailer.config import LOCALES

    topics = current_app.config["TOPICS"]
    filters = ReaderFilter.from_args(request.args, topics, LOCALES)
    session = get_session()
    stmt = filters.apply(select(Subscriber))
    total = session.scalar(filters.apply(select(func.count()).select_from(Subscriber))) or 0
    pages = max(1, math.ceil(total / PAGE_SIZE))
    page = page_number(pages)
    rows = session.scalars(stmt.order_by(Subscriber.id.desc()).offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE)).all()
    return render_template(
        "pages/admin/readers.html",
        readers=rows,
        filters=filters,
        total=total,
        page=page,
        pages=pages,
        statuses=list(SubscriberStatus),
        topics=topics,
        languages=LOCALES,
    )


def _reader_or_404(session: Session, reader_id: int) -> Subscriber:
    reader = session.get(Subscriber, reader_id)
    if reader is None:
        abort(404)
    return reader


@bp.get("/readers/<int:reader_id>")
def reader(reader_id: int) -> ResponseReturnValue:
    """A reader's record: profile, consent log and the last deliveries."""
    session = get_session()
    subscriber = _reader_or_404(session, reader_id)
    events = session.scalars(
        select(ConsentEvent).where(ConsentEvent.subscriber_id == reader_id).order_by(ConsentEvent.id.desc())
    ).all()
    deliveries = session.execute(
        select(Delivery, Digest)
        .join(Digest, Digest.id == Delivery.digest_id)
        .where(Delivery.subscriber_id == reader_id)
        .order_by(Delivery.id.desc())
        .limit(20)
    ).all()
    return render_template(
        "pages/admin/reader.html",
        reader=subscriber,
        events=events,
        deliveries=deliveries,
        can_unsubscribe=subscriber.status in ACTIVE,
        unsubscribe_form=UnsubscribeForm(formdata=None),
        erase_form=EraseForm(),
        topics=current_app.config["TOPICS"],
    )


@bp.post("/readers/<int:reader_id>/unsubscribe")
def unsubscribe(reader_id: int) -> ResponseReturnValue:
    """Unsubscribe a reader on their behalf (recorded in the consent log as "admin")."""
    session = get_session()
    subscriber = _reader_or_404(session, reader_id)
    form = UnsubscribeForm()
    if form.validate_on_submit():
        admin = current_admin()
        # Who did it goes in the log: the reader did not click a link themselves.
        note = " ".join((form.reason.data or "").split())
        reason = f"{note} (by {admin.email})" if admin and note else f"by {admin.email}" if admin else note
        if subscriptions.unsubscribe(session, subscriber, channel=ConsentChannel.ADMIN, reason=reason or None):
            session.commit()
            flash(_("The reader is unsubscribed."), "success")
        else:
            flash(_("The reader was not subscribed."), "error")
    return redirect(url_for("admin.reader", reader_id=reader_id), code=303)


@bp.post("/readers/<int:reader_id>/erase")
def erase(reader_id: int) -> ResponseReturnValue:
    """Erase a reader's personal data (GDPR art. 17); the address stays suppressed."""
    session = get_session()
    subscriber = _reader_or_404(session, reader_id)
    form = EraseForm()
    if not form.validate_on_submit():
        flash(_("Tick the box to confirm the erasure."), "error")
        return redirect(url_for("admin.reader", reader_id=reader_id), code=303)
    kept = subscriptions.erase(session, subscriber, channel=ConsentChannel.ADMIN)
    session.commit()
    flash(_("The reader's personal data is erased."), "success")
    # What stays is a new row (the old id, in every link mailed, is void).
    return redirect(url_for("admin.reader", reader_id=kept.id if kept else reader_id), code=303)
