"""CSV import (an upload, read as it arrives) and export (a streamed download) of readers.

Both call ``mailer.subscriptions`` (``import_csv``, ``export_csv``), the same
functions as ``subscribers import`` and ``subscribers export``, so the file
format and the rules (duplicates, suppressed addresses, consent log) are one.
"""

from __future__ import annotations

import io
import logging
from typing import IO, cast

from flask import Response, current_app, render_template, request, stream_with_context
from flask.typing import ResponseReturnValue
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError, same_origin, validate_csrf
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.http import parse_options_header
from wtforms import ValidationError

from mailer import subscriptions
from mailer.admin.auth import current_admin
from mailer.admin.blueprint import bp
from mailer.admin.forms import ImportForm
from mailer.admin.streaming import stream_writes
from mailer.admin.upload import CHUNK, CsvUpload, MultipartStream
from mailer.bodies import cap_body, large_body
from mailer.db import get_session, session_scope
from mailer.models import utcnow
from mailer.security import csrf
from mailer.subscriptions.csvimport import ImportReport

log = logging.getLogger("mailer.admin")
MAX_PROBLEMS_SHOWN = 200


@bp.route("/readers/import", methods=["GET", "POST"])
@large_body
def import_readers() -> ResponseReturnValue:
    """Upload a CSV (header row, an ``email`` column); show what was imported and skipped.

    Only a logged-in admin gets here (``require_login`` runs first and reads
    no body); only then may the body be as large as ``ADMIN_IMPORT_MAX_BYTES``,
    and it is imported as it arrives (``mailer.admin.upload``).
    """
    if request.method == "GET":
        return _page(ImportForm(formdata=None))
    try:
        return _import()
    except RequestEntityTooLarge:
        get_session().rollback()
        limit = _max_bytes() // (1024 * 1024)
        return _page(ImportForm(formdata=None), error=_("The file is larger than %(mb)s MB.", mb=limit), status=413)


# The token is checked in the view, once it has come in the stream: CSRFProtect would read the whole body first.
csrf.exempt(import_readers)


def _import() -> ResponseReturnValue:
    """Read the upload's fields, check them, then import the file's rows as they arrive."""
    cap_body(_max_bytes())
    mimetype, options = parse_options_header(request.headers.get("Content-Type", ""))
    if mimetype != "multipart/form-data" or not options.get("boundary"):
        raise CSRFError(_("The form was not sent as a file upload."))
    upload = MultipartStream(request.stream, options["boundary"], max_field_bytes=request.max_form_memory_size or CHUNK,
                             max_parts=request.max_form_parts or 1000)
    fields = upload.fields_before_file()
    _check_csrf(fields.get("csrf_token"))
    form = ImportForm(formdata=fields)
    try:
        form.validate_send_confirmation(form.send_confirmation)
    except ValidationError as exc:
        form.send_confirmation.errors = [str(exc)]
        return _page(form, status=400)
    if not upload.filename:
        form.file.errors = [_("Choose a CSV file.")]
        return _page(form, status=400)
    name = upload.filename
    session = get_session()
    handle = CsvUpload(upload.file_chunks())
    try:
        report = subscriptions.import_csv(session, cast(IO[str], handle), confirmed=bool(form.confirmed.data),
                                          source=name, send_confirmation=bool(form.send_confirmation.data),
                                          language=str(get_locale()))
    except subscriptions.CsvError as exc:
        session.rollback()
        return _page(form, error=_("%(file)s cannot be imported: %(reason)s", file=name, reason=str(exc)), status=400)
    report.encoding = handle.encoding
    if upload.parts_after():
        # Options sent after the file (a script's upload) would have come too late for its rows.
        session.rollback()
        return _page(form, error=_("%(file)s cannot be imported: send the form's other fields before the file.",
                                   file=name), status=400)
    session.commit()
    admin = current_admin()
    log.info("admin import of %s by %s: %s", name, admin.email if admin else "?", report.summary())
    if report.confirmation_requests:
        # This process's outbox thread sends them (and the scheduler's job).
        subscriptions.notify_outbox(current_app._get_current_object())  # type: ignore[attr-defined]
    return _page(form, report=report)


def _max_bytes() -> int:
    return int(current_app.config["ADMIN_IMPORT_MAX_BYTES"])


def _check_csrf(token: str | None) -> None:
    """What ``CSRFProtect`` checks before a view, done once the token has arrived."""
    config = current_app.config
    if not config.get("WTF_CSRF_ENABLED", True):
        return
    try:
        validate_csrf(token)
    except ValidationError as exc:
        raise CSRFError(exc.args[0]) from None
    if request.is_secure and config.get("WTF_CSRF_SSL_STRICT", True):
        if not request.referrer:
            raise CSRFError("The referrer header is missing.")
        if not same_origin(request.referrer, f"https://{request.host}/"):
            raise CSRFError("The referrer does not match the host.")


def _page(form: ImportForm, *, report: ImportReport | None = None, error: str | None = None,
          status: int = 200) -> ResponseReturnValue:
    return render_template(
        "pages/admin/import.html",
        form=form,
        report=report,
        error=error,
        max_problems=MAX_PROBLEMS_SHOWN,
        max_megabytes=_max_bytes() // (1024 * 1024),
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
