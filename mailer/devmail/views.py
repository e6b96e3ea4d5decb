"""The captured-mail viewer at ``/dev/mail/`` (only when ``SHOW_CAPTURED_MAIL``).

The list shows the newest mail first; one mail shows its HTML in a sandboxed
iframe (no scripts, no same-origin access; links open in a new tab), its
text part, every header (List-Unsubscribe and friends) and the raw source.
"Send the digest now" runs the scheduler's digest job (poll the feeds, then
compose and send), so the whole path works without a terminal.

Reading is open only where development keeps it to this machine (loopback);
every action, and reading anywhere else, needs the admin login. No page shows
the credentials of a URL (``hide_credentials``).
"""

from __future__ import annotations

import math
import re
from typing import Any

from flask import Response, abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import format_datetime, ngettext
from flask_babel import gettext as _
from sqlalchemy import func, select
from werkzeug.wrappers import Response as BaseResponse

from mailer.admin.auth import current_admin
from mailer.db import get_session
from mailer.devmail import bp, store
from mailer.devmail.loopback import this_machine
from mailer.models import AdminUser
from mailer.paging import page_number

PER_PAGE = 50
# The viewer's own page runs no script; the mail's HTML (inline styles, remote
# images) lives in a sandboxed srcdoc iframe, which inherits this policy.
CSP = ("default-src 'self'; img-src * data:; style-src 'self' 'unsafe-inline'; script-src 'none'; "
       "object-src 'none'; base-uri 'none'; frame-ancestors 'self'")
# allow-popups(-to-escape-sandbox): a link clicked in the mail opens a normal
# tab, so the confirm and unsubscribe pages work; nothing else is allowed.
SANDBOX = "allow-popups allow-popups-to-escape-sandbox"
# The user information of a URL (``smtp://user:password@``), up to its last @:
# a password may hold a / or a : that a stricter pattern would stop at.
_CREDENTIALS = re.compile(r"([a-z][a-z0-9+.-]*://)\S*@", re.IGNORECASE)


def hide_credentials(text: str) -> str:
    """``text`` with the user and password of every URL in it replaced by ``***``.

    The user goes too: some providers take an API token as the user name.
    """
    return _CREDENTIALS.sub(r"\1***@", text)


def _maildir() -> str:
    return str(current_app.config["CAPTURE_MAILDIR"])


def reading_is_open() -> bool:
    """Reading needs no login only outside production, from this machine itself."""
    return current_app.config["ENV"] != "production" and this_machine(request.remote_addr, request.host,
                                                                     request.headers)


@bp.before_request
def _login_where_needed() -> BaseResponse | None:
    """Every action (and reading, where it is not open) needs the admin login; then back here."""
    if request.method in ("GET", "HEAD") and reading_is_open():
        return None
    if current_admin() is not None:
        return None
    # A form's POST cannot be replayed after the login: back to the list.
    target = request.full_path.rstrip("?") if request.method in ("GET", "HEAD") else url_for("devmail.index")
    flash(_("Log in as an admin to use the captured-mail viewer."), "info")
    return redirect(url_for("admin.login", next=target))


@bp.after_request
def _headers(response: BaseResponse) -> BaseResponse:
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/")
def index() -> str:
    """Every captured mail, newest first, a page at a time."""
    keys = store.newest_first(_maildir())
    pages = max(1, math.ceil(len(keys) / PER_PAGE))
    page = page_number(pages)
    mails = store.summaries(_maildir(), keys[(page - 1) * PER_PAGE:page * PER_PAGE])
    return render_template(
        "pages/devmail/index.html", mails=mails, total=len(keys), page=page, pages=pages,
        when=lambda moment: format_datetime(moment, "yyyy-MM-dd HH:mm:ss"),
        smtp_url=hide_credentials(str(current_app.config["SMTP_URL"])),
        admin=current_admin(), has_admins=_has_admins(),
    )


def _has_admins() -> bool:
    """Whether an admin account exists (else the page says how to make one)."""
    return bool(get_session().scalar(select(func.count()).select_from(AdminUser)))


@bp.get("/<key>")
def show(key: str) -> str:
    """One mail: HTML, text, headers, source."""
    found = store.load(_maildir(), key)
    if found is None:
        abort(404)
    message, raw = found
    html = store.body(message, "html")
    if html is not None:
        # Links leave the iframe for a new tab (the sandbox lets them).
        html = '<base target="_blank">' + html
    unsubscribe = _one_click_target(message)
    return render_template(
        "pages/devmail/show.html", key=key, message=message, html=html, sandbox=SANDBOX,
        text=store.body(message, "plain"), headers=list(message.items()),
        attachments=store.attachments(message), source=raw.decode("utf-8", "replace"),
        unsubscribe=unsubscribe,
    )


@bp.get("/<key>/raw")
def raw(key: str) -> Response:
    """The message as received, as plain text (``?download=1``: as an .eml file)."""
    found = store.load(_maildir(), key)
    if found is None:
        abort(404)
    if request.args.get("download"):
        return Response(found[1], mimetype="message/rfc822",
                        headers={"Content-Disposition": f'attachment; filename="{key.split(".")[0]}.eml"'})
    return Response(found[1], mimetype="text/plain", content_type="text/plain; charset=utf-8")


@bp.post("/send-digest")
def send_digest_now() -> BaseResponse:
    """Poll the feeds, then compose and send a digest, as the scheduler would."""
    from mailer import pipeline
    from mailer.delivery import DeliveryError, SenderBusyError
    from mailer.locks import job_lock

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    lines: list[str] = []
    try:
        with job_lock(app, "send") as held:
            if not held:
                flash(_("The scheduler is sending right now: try again in a minute."), "error")
                return redirect(url_for("devmail.index"))
            report = pipeline.send_digest(app, poll=True, echo=lines.append)
    except SenderBusyError:
        flash(_("The scheduler is sending right now: try again in a minute."), "error")
        return redirect(url_for("devmail.index"))
    except DeliveryError as exc:
        flash(_("The SMTP server cannot be used: %(error)s", error=hide_credentials(str(exc))), "error")
        return redirect(url_for("devmail.index"))
    for line in lines:
        flash(hide_credentials(line), "info")
    flash(_("Digest job done: %(sent)d sent, %(deferred)d deferred, %(failed)d failed.",
            sent=report.sent, deferred=report.deferred, failed=report.failed), "success")
    return redirect(url_for("devmail.index"))


@bp.post("/clear")
def clear() -> BaseResponse:
    """Delete every captured mail."""
    count = store.remove_all(_maildir())
    flash(ngettext("Deleted %(num)d captured mail.", "Deleted %(num)d captured mails.", count), "success")
    return redirect(url_for("devmail.index"))


def _one_click_target(message: Any) -> str | None:
    """The https/http List-Unsubscribe URL when the mail offers RFC 8058 one-click."""
    if "List-Unsubscribe=One-Click" not in str(message.get("List-Unsubscribe-Post", "")):
        return None
    for item in str(message.get("List-Unsubscribe", "")).split(","):
        url = item.strip().strip("<>")
        if url.startswith(("http://", "https://")):
            return url
    return None
