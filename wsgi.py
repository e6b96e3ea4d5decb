"""The WSGI entry point: ``gunicorn wsgi:app`` and ``flask --app wsgi ...``.

Loaded by a WSGI server without ``MAILER_ENV``, the app runs as production (it
is development only under the flask CLI of ``make run``: ``mailer.config``).
"""

from __future__ import annotations

import sys

from mailer import create_app
from mailer.config import ConfigError

try:
    app = create_app()
except ConfigError as exc:
    # One clear line naming the variable, not a traceback.
    print(f"error: {exc}", file=sys.stderr)
    raise SystemExit(2) from None
