"""Development only: the capture SMTP server and the captured-mail viewer.

``capture.py`` is the SMTP server that keeps every mail in a Maildir,
``views.py`` the viewer at ``/dev/mail/`` (registered when
``SHOW_CAPTURED_MAIL``), ``server.py`` the ``devserver`` command that runs
web app, capture server and scheduler together (``make run``).
"""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("devmail", __name__, url_prefix="/dev/mail")

from mailer.devmail import views  # noqa: E402,F401 - registers the routes on bp
