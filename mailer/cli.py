"""The command line: ``flask --app wsgi <group> <command>``.

Thin wrappers: each command parses its arguments, calls the stage functions
(or ``pipeline.py`` when it takes several stages in order), prints
what happened and picks the exit status of the public contract.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn, TextIO

import click
from flask import Flask, current_app
from flask.cli import AppGroup, ScriptInfo
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, ProgrammingError

from mailer.config import LOCALES
from mailer.db import session_scope

EX_TEMPFAIL = 75


def fail(message: str, status: int = 1) -> NoReturn:
    """Print one line naming the problem and exit non-zero."""
    click.echo(f"error: {message}", err=True)
    sys.exit(status)


class CommandGroup(AppGroup):
    """A command group whose commands end in one line, not a traceback, when the database is out of reach.

    Done here once for every command: a closed port, a wrong password or a
    schema not yet created is the operator's to fix, and the traceback of the
    driver only hides the line that says so.
    """

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; a database that cannot be reached or has no schema exits 1 with one line."""
        try:
            return super().invoke(ctx)
        except (OperationalError, InterfaceError, ProgrammingError) as exc:
            message = database_problem(exc, ctx.ensure_object(ScriptInfo).load_app().config["DATABASE_URL"])
            if message is None:
                raise
            fail(message)


def database_problem(exc: DBAPIError, url: str) -> str | None:
    """One line for an operator about ``exc`` on the database at ``url`` (its password hidden).

    None when ``exc`` is a bug (a bad query), not a database out of reach.
    """
    shown = make_url(url).render_as_string(hide_password=True)
    lines = str(exc.orig if exc.orig is not None else exc).strip().splitlines()
    first = " ".join(lines[0].split())[:300] if lines else type(exc).__name__
    if first.startswith("no such table") or getattr(exc.orig, "sqlstate", None) == "42P01":
        return f"the database at {shown} has no schema yet ({first}): run 'flask --app wsgi db upgrade'"
    if isinstance(exc, ProgrammingError):
        return None
    # The driver's own words, whole ("connection failed: connection to server at ... failed: Connection
    # refused"); URLs in them carry no password (psycopg and sqlite3 print none).
    reason = first.strip() or type(exc).__name__
    if reason[:1].isupper() and reason[1:2].islower():
        reason = reason[0].lower() + reason[1:]  # "Connection refused" inside our sentence
    return f"cannot reach the database at {shown}: {reason}"


@contextmanager
def output(out: str, newline: str | None = None) -> Iterator[TextIO]:
    """``out`` open for writing (``-``: standard output); one line and exit 1 when it cannot be written."""
    if out == "-":
        yield sys.stdout
        return
    try:
        with open(out, "w", encoding="utf-8", newline=newline) as handle:
            yield handle
    except OSError as exc:
        fail(f"cannot write {out}: {exc.strerror or exc}")


db_cli = CommandGroup("db", help="Create or migrate the database schema.")
feeds_cli = CommandGroup("feeds", help="Poll the RSS/Atom feeds.")
digest_cli = CommandGroup("digest", help="Compose, preview and send the weekly digest.")
subscribers_cli = CommandGroup("subscribers", help="Import and export subscribers.")
scheduler_cli = CommandGroup("scheduler", help="Run the scheduler.")
admin_cli = CommandGroup("admin", help="Manage admin accounts.")
bounces_cli = CommandGroup("bounces", help="Read the bounce reports that come back by mail.")


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
    from mailer import pipeline

    results = pipeline.poll_feeds(current_app._get_current_object())  # type: ignore[attr-defined]
    for result in results:
        click.echo(result.line())
    if not results:
        click.echo("no enabled feeds: set MAILER_FEEDS or add one in the admin")
    if any(not r.ok for r in results):
        sys.exit(1)


@digest_cli.command("send")
def digest_send() -> None:
    """Finish any unfinished digest, then compose and send a new one if any.

    Exit 0 when every delivery is settled, 75 when some wait for a retry
    or a signal stopped the send, 1 on error, a paused digest included.
    """
    from mailer import pipeline
    from mailer.delivery import DeliveryError
    from mailer.delivery.report import n_deliveries
    from mailer.shutdown import stop_on_signals

    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    # SIGTERM (systemd, Docker) or Ctrl-C: the messages in flight are finished and recorded, then 75.
    with stop_on_signals() as stop:
        try:
            report = pipeline.send_digest(app, poll=False, echo=click.echo, stop=stop)
        except DeliveryError as exc:
            # SenderBusyError (another sender holds a SQLite queue) exits 75.
            fail(str(exc), exc.exit_status)
    if stop.is_set():
        click.echo("stopped: the messages in flight were sent and recorded; "
                   "run 'digest send' again to send the rest", err=True)
        sys.exit(EX_TEMPFAIL)
    for digest_id, _reason in getattr(report, "paused", []):
        click.echo(f"digest {digest_id} was paused: fix the cause, then 'digest resume {digest_id}'", err=True)
    # A paused digest's deliveries are not settled: the operator has to act (the line above, or the
    # run's own "is paused" line says how), whether this run paused it or found it so.
    if getattr(report, "paused", None) or getattr(report, "still_paused", None):
        sys.exit(1)
    if report.deferred:
        click.echo(f"{n_deliveries(report.deferred)} deferred by temporary failures: run again later")
        sys.exit(EX_TEMPFAIL)


@digest_cli.command("preview")
@click.option("--out", "out", required=True, metavar="FILE", type=click.Path(allow_dash=True),
              help="Where to write the HTML; - for standard output.")
@click.option("--language", default=None, type=click.Choice(LOCALES), help="Default: MAILER_LOCALE.")
def digest_preview(out: str, language: str | None) -> None:
    """Write the next digest's HTML to FILE without sending anything.

    With no new articles no digest is due: nothing is written (an existing
    FILE is left as it is) and the line says so; the exit status is still 0.
    """
    from mailer.digest import render_preview

    with session_scope() as session:
        html = render_preview(session, current_app.config, language or current_app.config["LOCALE"])
    # The messages go to standard error when standard output carries the HTML.
    if html is None:
        click.echo("no digest is due: no new articles", err=out == "-")
        return
    with output(out) as handle:
        handle.write(html)
    if out != "-":
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
@click.option("--out", "out", default="-", metavar="FILE", type=click.Path(allow_dash=True),
              help="Where to write the CSV; - (the default) for standard output.")
def subscribers_export(out: str) -> None:
    """Write every subscriber, with status and consent record, as CSV."""
    from mailer.subscriptions import export_csv

    with session_scope() as session:
        session.connection()  # a database out of reach says so before any line of CSV
        with output(out, newline="") as handle:
            count = export_csv(session, handle)
    if out != "-":
        click.echo(f"wrote {count} subscribers to {out}", err=True)


@scheduler_cli.command("run")
def scheduler_run() -> None:
    """Run the scheduler in the foreground until Ctrl-C or SIGTERM.

    It starts only if the database answers and has its schema (one line and
    exit 1 otherwise, as every command); once running, it rides out the
    database going away, logging each failed job and trying at the next turn.
    """
    from sqlalchemy import select

    from mailer import scheduler
    from mailer.db import get_engine
    from mailer.models import JobRun

    with get_engine().connect() as conn:
        conn.execute(select(JobRun.name).limit(1))
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
    """Record the bounce (DSN) and complaint (ARF) reports in PATHS and suppress their readers.

    A report counts only when it quotes the verified stamp of a digest copy
    sent to that reader: a hard bounce makes them "bounced", a complaint
    "complained".

    PATHS are mail files, Maildirs (their new/ mails, moved to cur/ once
    read) or - for one mail on standard input (a Postfix pipe transport).
    Exit 0 when every mail was read, whatever it said; 1 when a path cannot
    be read; 75 when the database cannot be written (Postfix retries).
    """
    from sqlalchemy.exc import SQLAlchemyError

    from mailer import pipeline
    from mailer.delivery.bounces import read_paths

    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    stdin = sys.stdin.buffer.read() if "-" in paths else None
    try:
        pipeline.process_bounce_mail(app, read_paths(paths, stdin), echo=click.echo)
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
