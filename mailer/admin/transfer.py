"""CSV import (an upload) and export (a streamed download) of readers.

Both call ``mailer.subscriptions`` (``import_csv``, ``export_csv``), the same
functions as ``subscribers import`` and ``subscribers export``, so the file
format and the rules (duplicates, suppressed addresses, consent log) are one.
"""

from __future__ import annotations

import io
import logging
from typing import Any

from flask import Response, current_app, render_template, request, stream_with_context
from flask.typing import ResponseReturnValue
from flask_babel import get_locale
from flask_babel import gettext as _

from mailer import subscriptions
from mailer.admin.auth import current_admin
from mailer.admin.blueprint import bp
from mailer.admin.forms import ImportForm
from mailer.admin.streaming import stream_writes
from mailer.db import get_session, session_scope
from mailer.models import utcnow
from mailer.subscriptions.csvimport import open_csv

log = logging.getLogger("mailer.admin")
# 100,000 readers with a few columns are about 10 MB; leave room.
MAX_UPLOAD_BYTES = 64 * 1024 * 1024
MAX_PROBLEMS_SHOWN = 200


@bp.url_value_preprocessor
def limit_upload_size(_endpoint: str | None, _values: dict[str, Any] | None) -> None:
    """Refuse admin request bodies over ``MAX_UPLOAD_BYTES`` with 413.

    A URL value preprocessor because it runs before every ``before_request``
    function, CSRFProtect's included, which reads (and so parses) the form.
    """
    request.max_content_length = MAX_UPLOAD_BYTES


@bp.route("/readers/import", methods=["GET", "POST"])
def import_readers() -> ResponseReturnValue:
    """Upload a CSV (header row, an ``email`` column); show what was imported and skipped."""
    form = ImportForm()
    report = error = None
    if form.validate_on_submit():
        upload = form.file.data
        name = upload.filename or "upload.csv"
        session = get_session()
        try:
            # UTF-8 (with a spreadsheet's byte-order mark or not), else what Excel saves.
            handle, encoding = open_csv(upload.stream.read())
            report = subscriptions.import_csv(session, handle, confirmed=bool(form.confirmed.data), source=name,
                                              send_confirmation=bool(form.send_confirmation.data), encoding=encoding,
                                              language=str(get_locale()))
            session.commit()
        except subscriptions.CsvError as exc:
            session.rollback()
            error = _("%(file)s cannot be imported: %(reason)s", file=name, reason=str(exc))
        else:
            admin = current_admin()
            log.info("admin import of %s by %s: %s", name, admin.email if admin else "?", report.summary())
            if report.confirmation_requests:
                # This process's outbox thread sends them (and the scheduler's job).
                subscriptions.notify_outbox(current_app._get_current_object())  # type: ignore[attr-defined]
    status = 400 if error or form.errors else 200
    return render_template(
        "pages/admin/import.html",
        form=form,
        report=report,
        error=error,
        max_problems=MAX_PROBLEMS_SHOWN,
        max_megabytes=MAX_UPLOAD_BYTES // (1024 * 1024),
        purge_days=current_app.config["PURGE_UNCONFIRMED_DAYS"],
    ), status


@bp.get("/readers/export.csv")
def export_readers() -> ResponseReturnValue:
    """Every reader as CSV, streamed as it is written (memory stays flat at any size)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]

    def write(handle: io.TextIOBase) -> None:
        # A session of its own: the request's one closes when the view returns,
        # long before the last row has left.
        with app.app_context(), session_scope(app) as session:
            subscriptions.export_csv(session, handle)

    filename = f"subscribers-{utcnow():%Y%m%d-%H%M}.csv"
    return Response(
        stream_with_context(stream_writes(write)),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
