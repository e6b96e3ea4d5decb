"""The command line: ``flask --app wsgi <group> <command>``.

Thin wrappers: each command parses its arguments, calls the stage functions
(or a job of ``scheduler.py`` when it takes several stages in order), prints
what happened and picks the exit status of the public contract.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from mailer.db import session_scope

EX_TEMPFAIL = 75

db_cli = AppGroup("db", help="Create or migrate the database schema.")
feeds_cli = AppGroup("feeds", help="Poll the RSS/Atom feeds.")
digest_cli = AppGroup("digest", help="Compose, preview and send the weekly digest.")
subscribers_cli = AppGroup("subscribers", help="Import and export subscribers.")
scheduler_cli = AppGroup("scheduler", help="Run the scheduler.")
admin_cli = AppGroup("admin", help="Manage admin accounts.")
bounces_cli = AppGroup("bounces", help="Read the bounce reports that come back by mail.")


def fail(message: str, status: int = 1) -> None:
    """Print one line naming the problem and exit non-zero."""
    click.echo(f"error: {message}", err=True)
    sys.exit(status)


@db_cli.command("upgrade")
@click.argument("revision", default="head")
def db_upgrade(revision: str) -> None:
    """Create the schema, or migrate it to REVISION (default: the newest)."""
    from mailer import migrate

    migrate.upgrade(current_app.config["DATABASE_URL"], revision)
    click.echo("database is up to date")


@db_cli.command("migrate")
@click.option("-m", "--message", required=True, help="What the migration changes.")
def db_migrate(message: str) -> None:
    """Write a new migration from the models (for developers)."""
    from mailer import migrate

    migrate.revision(current_app.config["DATABASE_URL"], message)


@feeds_cli.command("fetch")
def feeds_fetch() -> None:
    """Poll every feed now and store new articles; exit 1 if any feed failed."""
    from mailer import scheduler

    results = scheduler.poll_feeds(current_app._get_current_object())  # type: ignore[attr-defined]
    for result in results:
        click.echo(result.line())
    if not results:
        click.echo("no enabled feeds: set MAILER_FEEDS or add one in the admin")
    if any(not r.ok for r in results):
        sys.exit(1)


@digest_cli.command("send")
def digest_send() -> None:
    """Finish any unfinished digest, then compose and send a new one if any.

    Exit 0 when every delivery is settled, 75 when some wait for a retry,
    1 on error, a paused digest included.
    """
    from mailer import scheduler
    from mailer.delivery import DeliveryError

    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    try:
        report = scheduler.send_digest(app, poll=False, echo=click.echo)
    except DeliveryError as exc:
        # SenderBusyError (another sender holds a SQLite queue) exits 75.
        fail(str(exc), exc.exit_status)
    for digest_id, _reason in getattr(report, "paused", []):
        click.echo(f"digest {digest_id} was paused: fix the cause, then 'digest resume {digest_id}'", err=True)
    # A paused digest's deliveries are not settled: the operator has to act (the line above, or the
    # run's own "is paused" line says how), whether this run paused it or found it so.
    if getattr(report, "paused", None) or getattr(report, "still_paused", None):
        sys.exit(1)
    if report.deferred:
        click.echo(f"{report.deferred} deliveries deferred by temporary failures: run again later")
        sys.exit(EX_TEMPFAIL)


@digest_cli.command("preview")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, writable=True, path_type=Path))
@click.option("--language", default=None, help="it or en (default: MAILER_LOCALE).")
def digest_preview(out: Path, language: str | None) -> None:
    """Write the next digest's HTML to OUT without sending anything."""
    from mailer.digest import render_preview

    with session_scope() as session:
        html = render_preview(session, current_app.config, language or current_app.config["LOCALE"])
    if html is None:
        click.echo("no new articles: the next digest would not be sent")
        html = ""
    out.write_text(html, encoding="utf-8")
    click.echo(f"wrote {out}")


@digest_cli.command("pause")
@click.argument("digest_id", type=int, required=False)
def digest_pause(digest_id: int | None) -> None:
    """Pause the sending digest (or DIGEST_ID); running senders stop soon after."""
    from mailer.delivery import pause_digest

    with session_scope() as session:
        digest = pause_digest(session, digest_id, reason="paused from the command line")
    if digest is None:
        fail("no digest is sending")
    else:
        click.echo(f"digest {digest.id} paused")


@digest_cli.command("resume")
@click.argument("digest_id", type=int, required=False)
def digest_resume(digest_id: int | None) -> None:
    """Resume a paused digest; the next ``digest send`` finishes it."""
    from mailer.delivery import resume_digest

    with session_scope() as session:
        digest = resume_digest(session, digest_id)
    if digest is None:
        fail("no digest is paused")
    else:
        click.echo(f"digest {digest.id} resumed: run 'digest send' or let the scheduler")


@subscribers_cli.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--confirmed", is_flag=True, help="The readers already consented elsewhere.")
@click.option("--send-confirmation", is_flag=True,
              help="Mail each new pending reader a request to confirm; those who do not are purged.")
def subscribers_import(file: Path, confirmed: bool, send_confirmation: bool) -> None:
    """Import a CSV with a header row and an ``email`` column.

    New readers come in as pending (no digest) unless ``--confirmed``. With
    ``--send-confirmation`` each new pending reader gets a confirmation
    request, queued in the outbox: the scheduler's outbox job (``scheduler
    run``, or ``make run``) starts sending them within a minute, after any
    signup's mail, paced by MAILER_SEND_RATE; readers who do not confirm are purged
    after PURGE_UNCONFIRMED_DAYS.
    """
    from mailer.subscriptions import CsvError, import_csv

    if confirmed and send_confirmation:
        fail("--confirmed and --send-confirmation exclude each other: confirmed readers need no confirmation")
    from mailer.subscriptions.csvimport import open_csv

    try:
        handle, encoding = open_csv(file.read_bytes())
        with session_scope() as session:
            # The command line speaks English: its problem lines too.
            report = import_csv(session, handle, confirmed=confirmed, source=file.name,
                                send_confirmation=send_confirmation, encoding=encoding, language="en")
    except CsvError as exc:
        fail(f"{file}: {exc}")
    for problem in report.problems:
        click.echo(f"{file}:{problem.line}: {problem.reason}", err=True)
    click.echo(report.summary())
    if send_confirmation:
        # This process ends now: the mails wait in the outbox for a sender.
        click.echo(f"queued {report.confirmation_requests} confirmation requests: the scheduler "
                   "('scheduler run', or 'make run') starts sending them within a minute")


@subscribers_cli.command("export")
@click.option("--out", "out", type=click.Path(dir_okay=False, writable=True, path_type=Path))
def subscribers_export(out: Path | None) -> None:
    """Write every subscriber, with status and consent record, as CSV."""
    from mailer.subscriptions import export_csv

    with session_scope() as session:
        if out is None:
            export_csv(session, sys.stdout)
        else:
            with out.open("w", newline="", encoding="utf-8") as handle:
                count = export_csv(session, handle)
            click.echo(f"wrote {count} subscribers to {out}", err=True)


@scheduler_cli.command("run")
def scheduler_run() -> None:
    """Run the scheduler in the foreground until Ctrl-C or SIGTERM."""
    from mailer import scheduler

    scheduler.run_forever(current_app._get_current_object())  # type: ignore[attr-defined]


def _read_password(from_stdin: bool, prompt: str) -> str:
    """One line of standard input, or a hidden prompt asked twice."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return str(click.prompt(prompt, hide_input=True, confirmation_prompt=True))


@admin_cli.command("create")
@click.argument("email")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def admin_create(email: str, password_stdin: bool) -> None:
    """Create an admin account for EMAIL."""
    from mailer.admin import AdminError, create_admin

    password = _read_password(password_stdin, "Password")
    try:
        with session_scope() as session:
            create_admin(session, email, password)
    except AdminError as exc:
        fail(str(exc))
    click.echo(f"admin {email} created")


@admin_cli.command("password")
@click.argument("email")
@click.option("--password-stdin", is_flag=True, help="Read the new password from standard input.")
def admin_password(email: str, password_stdin: bool) -> None:
    """Set a new password for EMAIL's admin account (its open sessions end)."""
    from mailer.admin import AdminError, set_admin_password

    password = _read_password(password_stdin, "New password")
    try:
        with session_scope() as session:
            set_admin_password(session, email, password)
    except AdminError as exc:
        fail(str(exc))
    click.echo(f"password of admin {email} changed")


@bounces_cli.command("process")
@click.argument("paths", nargs=-1, required=True)
def bounces_process(paths: tuple[str, ...]) -> None:
    """Record the bounce reports (DSN) in PATHS and suppress hard-bounced readers.

    PATHS are mail files, Maildirs (their new/ mails, moved to cur/ once
    read) or - for one mail on standard input (a Postfix pipe transport).
    Exit 0 when every mail was read, whatever it said; 1 when a path cannot
    be read; 75 when the database cannot be written (Postfix retries).
    """
    from sqlalchemy.exc import SQLAlchemyError

    from mailer import scheduler
    from mailer.delivery.bounces import read_paths

    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    stdin = sys.stdin.buffer.read() if "-" in paths else None
    try:
        scheduler.process_bounce_mail(app, read_paths(paths, stdin), echo=click.echo)
    except OSError as exc:
        fail(f"cannot read {exc.filename}: {exc.strerror}")
    except SQLAlchemyError as exc:
        fail(f"the database cannot be written ({type(exc).__name__}): try again later", EX_TEMPFAIL)


@click.command("devserver")
@click.option("--host", default="127.0.0.1")
@click.option("--port", default=5000, type=int)
def devserver(host: str, port: int) -> None:
    """Run everything on embedded defaults: web app, capture SMTP, scheduler."""
    from mailer.devmail.server import run_devserver

    run_devserver(current_app._get_current_object(), host, port)  # type: ignore[attr-defined]


def init_app(app: Flask) -> None:
    """Register the command groups."""
    for group in (db_cli, feeds_cli, digest_cli, subscribers_cli, scheduler_cli, admin_cli, bounces_cli):
        app.cli.add_command(group)
    app.cli.add_command(devserver)
