"""Development answers this machine only, and says so when it starts serving.

``make run`` binds 127.0.0.1; the devserver refuses any other address, and a
WSGI server started without ``MAILER_ENV`` runs as production. Should a
development app answer another machine all the same (``flask run --host``, an
explicit ``MAILER_ENV=development`` behind a proxy), every route refuses it: the
mail viewer, the demo feed, the loopback feeds development allows and, with
``FLASK_DEBUG=1``, Werkzeug's debugger are all set for one person's machine,
and half an app working would hide the mistake that a plain 403 shows.

"This machine" is judged on three counts, as Django's DEBUG does with its
ALLOWED_HOSTS: the client address, the ``Host`` the browser asked for (a web
page whose name an attacker re-points at 127.0.0.1, DNS rebinding, would
otherwise read the mail viewer from the developer's own browser), and the
addresses a proxy in front names (``X-Forwarded-For``, ``X-Real-IP``,
``Forwarded``): nginx on the same host makes every client look like loopback.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import urlsplit

import click
from flask import Flask, request
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from werkzeug.datastructures import Headers

from mailer.config import Launch, detect_launch
from mailer.config_values import loopback_host

log = logging.getLogger("mailer.devmail")
WARNING = ("MAILER_ENV=development: this app is for this machine only. The mail viewer /dev/mail/ shows every"
           " mail it sends (confirmation links included) without a login, mail goes to the capture server"
           " unless MAILER_SMTP_URL is set, and any other machine gets 403. To serve readers, set"
           " MAILER_ENV=production (docs/deploy.md).")
# Headers by which a proxy names the client it forwards (and the host it was asked for).
FORWARDED_FOR = ("X-Forwarded-For", "X-Real-IP")
# Forwarded (RFC 7239): for=192.0.2.1, for="[2001:db8::1]:4711", host=example.it:8000.
_FORWARDED_FOR = re.compile(r"(?:^|[;,\s])for\s*=\s*\"?\[?([^\]\";,\s]*)", re.IGNORECASE)
_FORWARDED_HOST = re.compile(r"(?:^|[;,\s])host\s*=\s*\"?([^\";,\s]*)", re.IGNORECASE)


def init_app(app: Flask) -> None:
    """Refuse other machines on every route; warn when this process serves (not for a one-off command)."""
    # First of all (before CSRF and the rate limits): nothing else runs for another machine.
    app.before_request_funcs.setdefault(None, []).insert(0, _this_machine_only)
    context = click.get_current_context(silent=True)
    if detect_launch() is Launch.SERVER or (context is not None and context.info_name == "run"):
        log.warning(WARNING)


def this_machine(remote_addr: str | None, host: str, headers: Headers) -> bool:
    """Whether a request comes from this machine, asking for this machine, with no proxy naming another one."""
    if not (loopback_host(remote_addr or "") and loopback_host(_host_name(host))):
        return False
    named = [part for name in FORWARDED_FOR for value in headers.getlist(name) for part in value.split(",")]
    forwarded = ",".join(headers.getlist("Forwarded"))
    named += _FORWARDED_FOR.findall(forwarded)
    hosts = _FORWARDED_HOST.findall(forwarded) + ",".join(headers.getlist("X-Forwarded-Host")).split(",")
    named += [_host_name(part) or part for part in hosts]
    return all(loopback_host(part) for part in named if part.strip())


def _host_name(host: str) -> str:
    """The name or address of a ``Host`` value (``[::1]:5000`` -> ``::1``); "" when it has none."""
    try:
        return urlsplit("//" + host.strip()).hostname or ""
    except ValueError:
        return ""


def _this_machine_only() -> ResponseReturnValue | None:
    """403 for a client that is not on loopback, asks for another host, or comes through a proxy."""
    if this_machine(request.remote_addr, request.host, request.headers):
        return None
    from mailer.errors import error_page

    log.warning("development app refused %s (Host %s): not this machine only", request.remote_addr,
                request.host[:100])
    return error_page(403, _("This machine only"),
                      _("This copy of the newsletter runs in development mode: it answers only the machine it"
                        " runs on. Its operator can set MAILER_ENV=production to serve others."))
