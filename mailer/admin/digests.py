"""Digests: preview the next one, send now, pause and resume, history, progress."""

from __future__ import annotations

import math
from typing import Any

from flask import Response, abort, current_app, flash, jsonify, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from sqlalchemy import func, select

from mailer import delivery, digest
from mailer.admin.blueprint import bp
from mailer.admin.forms import ActionForm, PauseForm
from mailer.admin.sending import get_sender, resume_job, send_now_job
from mailer.admin.stats import DigestCounts, digest_counts, running_digests
from mailer.config import LOCALES
from mailer.db import get_session
from mailer.models import Delivery, DeliveryStatus, Digest, DigestEdition, Subscriber
from mailer.paging import page_number

PAGE_SIZE = 20
# The preview is the digest's own HTML, whose article summaries come from
# feeds: shown in a sandboxed frame, and sandboxed again by this header if
# opened on its own, so it can never run script with the admin's session.
PREVIEW_CSP = (
    "sandbox allow-popups allow-popups-to-escape-sandbox; "
    "default-src 'none'; img-src * data:; style-src 'unsafe-inline'"
)


def _app() -> Any:
    return current_app._get_current_object()  # type: ignore[attr-defined]


def _language(raw: str | None) -> str:
    return raw if raw in LOCALES else str(current_app.config["LOCALE"])


@bp.get("/digests/")
def digest_list() -> ResponseReturnValue:
    """The next digest's preview, the running sends and the history, paged."""
    session = get_session()
    total = session.scalar(select(func.count()).select_from(Digest)) or 0
    pages = max(1, math.ceil(total / PAGE_SIZE))
    page = page_number(pages)
    newest_first = select(Digest).order_by(Digest.id.desc())
    history = session.scalars(newest_first.offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE)).all()
    return render_template(
        "pages/admin/digests.html",
        history=digest_counts(session, history),
        running=running_digests(session),
        page=page,
        pages=pages,
        language=_language(request.args.get("language")),
        languages=LOCALES,
        sender=get_sender(_app()),
        action_form=ActionForm(),
        pause_form=PauseForm(formdata=None),
    )


@bp.get("/digests/preview")
def preview() -> ResponseReturnValue:
    """The next digest's HTML, for the sandboxed frame of the digests page."""
    html = digest.render_preview(get_session(), current_app.config, _language(request.args.get("language")))
    if html is None:
        html = render_template("pages/admin/no_preview.html")
    response = Response(html, mimetype="text/html")
    response.headers["Content-Security-Policy"] = PREVIEW_CSP
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    return response


@bp.post("/digests/send")
def send_now() -> ResponseReturnValue:
    """Start the digest job (poll feeds, finish, compose, send) in the background."""
    if ActionForm().validate_on_submit():
        if get_sender(_app()).start("send", send_now_job):
            flash(_("Sending started: the progress shows below."), "success")
        else:
            flash(_("A send is already running: wait for it to finish."), "error")
    return redirect(url_for("admin.digest_list"), code=303)


def _digest_or_404(digest_id: int) -> Digest:
    found = get_session().get(Digest, digest_id)
    if found is None:
        abort(404)
    return found


@bp.get("/digests/<int:digest_id>")
def digest_detail(digest_id: int) -> ResponseReturnValue:
    """One digest: counts, editions, and the deliveries that failed or wait for a retry."""
    session = get_session()
    found = _digest_or_404(digest_id)
    editions = session.execute(
        select(DigestEdition, func.count(Delivery.id))
        .outerjoin(Delivery, Delivery.edition_id == DigestEdition.id)
        .where(DigestEdition.digest_id == digest_id)
        .group_by(DigestEdition.id)
        .order_by(DigestEdition.language, DigestEdition.topics)
    ).all()
    problems = session.execute(
        select(Delivery, Subscriber.email)
        .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .where(Delivery.digest_id == digest_id, Delivery.status.in_([DeliveryStatus.FAILED, DeliveryStatus.DEFERRED]))
        .order_by(Delivery.id)
        .limit(100)
    ).all()
    return render_template(
        "pages/admin/digest.html",
        counts=digest_counts(session, [found])[0],
        editions=editions,
        problems=problems,
        action_form=ActionForm(),
        pause_form=PauseForm(formdata=None),
        sender=get_sender(_app()),
    )


def _back(digest_id: int) -> ResponseReturnValue:
    target = request.form.get("back")
    if target == "list":
        return redirect(url_for("admin.digest_list"), code=303)
    return redirect(url_for("admin.digest_detail", digest_id=digest_id), code=303)


@bp.post("/digests/<int:digest_id>/pause")
def pause(digest_id: int) -> ResponseReturnValue:
    """Pause a send: running senders stop after the messages in flight."""
    _digest_or_404(digest_id)
    form = PauseForm()
    if form.validate_on_submit():
        session = get_session()
        reason = (form.reason.data or "").strip() or _("paused from the dashboard")
        if delivery.pause_digest(session, digest_id, reason) is None:
            flash(_("This digest is not sending."), "error")
        else:
            session.commit()
            flash(_("Sending paused."), "success")
    return _back(digest_id)


@bp.post("/digests/<int:digest_id>/resume")
def resume(digest_id: int) -> ResponseReturnValue:
    """Resume a paused send and carry it on from this web app."""
    _digest_or_404(digest_id)
    if ActionForm().validate_on_submit():
        session = get_session()
        if delivery.resume_digest(session, digest_id) is None:
            flash(_("This digest is not paused."), "error")
        else:
            session.commit()
            if get_sender(_app()).start("resume", resume_job):
                flash(_("Sending resumed."), "success")
            else:
                flash(_("Sending resumed: the send already running takes it on."), "success")
    return _back(digest_id)


def _progress(counts: DigestCounts) -> dict[str, Any]:
    return {
        "id": counts.digest.id,
        "status": counts.digest.status.value,
        "total": counts.total,
        "settled": counts.settled,
        "percent": counts.percent,
        "pending": counts.pending,
        "sent": counts.sent,
        "deferred": counts.deferred,
        "failed": counts.failed,
        "bounced": counts.bounced,
    }


@bp.get("/digests/progress.json")
def progress() -> ResponseReturnValue:
    """Where the unfinished digests and the dashboard's own send stand (polled by admin.js)."""
    sender = get_sender(_app())
    run = sender.last
    return jsonify(
        digests=[_progress(c) for c in running_digests(get_session())],
        send={
            "running": sender.running,
            "kind": run.kind if run else None,
            "result": run.result if run else None,
            "error": run.error if run else None,
            "lines": list(run.lines)[-10:] if run else [],
        },
    )
