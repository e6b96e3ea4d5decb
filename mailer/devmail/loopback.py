"""Development answers this machine only, and says so when it starts serving.

``make run`` binds 127.0.0.1; the devserver refuses any other address, and a
WSGI server started without ``MAILER_ENV`` runs as production. Should a
development app answer another machine all the same (``flask run --host``, an
explicit ``MAILER_ENV=development`` behind a proxy), every route refuses it: the
mail viewer, the demo feed, the loopback feeds development allows and, with
``FLASK_DEBUG=1``, Werkzeug's debugger are all set for one person's machine,
and half an app working would hide the mistake that a plain 403 shows.
"""

from __future__ import annotations

import logging

import click
from flask import Flask, request
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _

from mailer.config import Launch, detect_launch
from mailer.config_values import loopback_host

log = logging.getLogger("mailer.devmail")
WARNING = ("MAILER_ENV=development: this app is for this machine only. The mail viewer /dev/mail/ shows every"
           " mail it sends (confirmation links included) without a login, mail goes to the capture server"
           " unless MAILER_SMTP_URL is set, and any other machine gets 403. To serve readers, set"
           " MAILER_ENV=production (docs/deploy.md).")


def init_app(app: Flask) -> None:
    """Refuse other machines on every route; warn when this process serves (not for a one-off command)."""
    # First of all (before CSRF and the rate limits): nothing else runs for another machine.
    app.before_request_funcs.setdefault(None, []).insert(0, _this_machine_only)
    context = click.get_current_context(silent=True)
    if detect_launch() is Launch.SERVER or (context is not None and context.info_name == "run"):
        log.warning(WARNING)


def _this_machine_only() -> ResponseReturnValue | None:
    """403 for a client that is not on loopback."""
    if loopback_host(request.remote_addr or ""):
        return None
    from mailer.errors import error_page

    log.warning("development app refused %s: not loopback", request.remote_addr)
    return error_page(403, _("This machine only"),
                      _("This copy of the newsletter runs in development mode: it answers only the machine it"
                        " runs on. Its operator can set MAILER_ENV=production to serve others."))
