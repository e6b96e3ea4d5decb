"""``flask --app wsgi devserver`` (``make run``): the whole system in one process.

It starts, in this order: the capture SMTP server, the web server (listening
before anything polls the demo feed, which the web app itself serves), then
the scheduler with the same jobs as ``scheduler run`` in a background thread.
Ctrl-C (or SIGTERM) stops the web server, lets a send in progress finish the
messages in flight (it still needs the capture server), abandons a feed poll
in progress (a hanging feed would hold the stop for ``FEED_TIMEOUT``), then
stops the capture server.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from datetime import UTC, datetime, timedelta

import click
from apscheduler.schedulers.background import BackgroundScheduler
from flask import Flask
from werkzeug.serving import BaseWSGIServer, make_server

from mailer.config import ConfigError, check_listening
from mailer.devmail.capture import CaptureServer
from mailer.devmail.loopback import WARNING
from mailer.devmail.views import hide_credentials
from mailer.runner import build_scheduler


def run_devserver(app: Flask, host: str, port: int) -> None:
    """Run capture SMTP server, web app and scheduler until Ctrl-C."""
    from mailer import scheduler

    if app.config["ENV"] == "production":
        _fail("MAILER_ENV: production applies (MAILER_ENV=production, or MAILER_BASE_URL is not loopback):"
              " devserver is for development; in production run gunicorn and 'scheduler run' (docs/deploy.md)")
    try:
        check_listening(str(app.config["ENV"]), [host])
    except ConfigError as exc:
        _fail(str(exc))
    _follow_port(app, host, port)
    capture = CaptureServer.from_config(app.config)
    try:
        capture.start()
    except (OSError, RuntimeError) as exc:
        _fail(f"cannot start the capture SMTP server on {capture.address}: {exc}")
    try:
        web = _web_server(app, host, port)
    except OSError as exc:
        capture.stop()
        _fail(f"cannot listen on {host}:{port} ({exc.strerror}): try --port {port + 1}")
    stop = threading.Event()
    # The socket listens already: the first feed poll can fetch /demo/feed.xml.
    jobs = build_scheduler(
        app, scheduler.new_scheduler(app, BackgroundScheduler), scheduler.JOBS, stop,
        first_run=datetime.now(UTC) + timedelta(seconds=1),
    )
    jobs.start()
    _banner(app, host, port, capture, scheduler.describe(jobs))
    # SIGTERM behaves like Ctrl-C: serve_forever returns on KeyboardInterrupt.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    # Started in the background by a script (`make run &`), SIGINT arrives
    # ignored from the shell, and Python then leaves it so: Ctrl-C (kill -INT)
    # must stop it all the same.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        web.serve_forever()
    finally:
        click.echo("stopping: waiting for the messages in flight (Ctrl-C again to force)...")
        stop.set()
        web.server_close()
        try:
            jobs.shutdown(wait=True)
        except KeyboardInterrupt:
            # Sent rows are recorded as each message is accepted: the next
            # run resends nothing and finishes the rest.
            click.echo("forced stop: the next run finishes the send", err=True)
            sys.exit(130)
        finally:
            capture.stop()
        click.echo("stopped")


def _web_server(app: Flask, host: str, port: int) -> BaseWSGIServer:
    """The threaded Werkzeug server, bound and listening (no reloader: one process)."""
    return make_server(host, port, app, threaded=True)


def _follow_port(app: Flask, host: str, port: int) -> None:
    """On another port than the default, links and the demo feed follow it.

    Only when ``MAILER_BASE_URL`` was not set: an explicit value is kept.
    """
    if os.environ.get("MAILER_BASE_URL"):
        return
    base = f"http://{_browsable(host)}:{port}"
    old = app.config["BASE_URL"]
    if base == old:
        return
    app.config["BASE_URL"] = base
    if app.config["FEEDS"] == [f"{old}/demo/feed.xml"]:
        app.config["FEEDS"] = [f"{base}/demo/feed.xml"]


def _banner(app: Flask, host: str, port: int, capture: CaptureServer, jobs: str) -> None:
    """Tell the newcomer where to look."""
    base = f"http://{_browsable(host)}:{port}"
    lines = [
        "",
        f"  {app.config['SITE_NAME']} is running:",
        f"    signup page     {base}/",
        f"    captured mail   {base}/dev/mail/   (SMTP capture on {capture.address})",
        f"    admin           {base}/admin/   (first: flask --app wsgi admin create you@example.it)",
        f"    health          {base}/healthz",
        f"  mails go to {hide_credentials(str(app.config['SMTP_URL']))};"
        f" feeds: {', '.join(app.config['FEEDS']) or 'none'}",
        f"  scheduler: {jobs}",
        "  Press Ctrl-C to stop.",
        "",
        f"warning: {WARNING}",
        "",
    ]
    click.echo("\n".join(lines))


def _browsable(host: str) -> str:
    """A host a browser can open: listening on every address means loopback too."""
    if host in ("0.0.0.0", ""):  # noqa: S104 - comparing, not binding
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(1)
