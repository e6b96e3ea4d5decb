"""Gunicorn settings for the web app (read by default from the repository root).

    gunicorn wsgi:app                      # these settings
    MAILER_BIND=0.0.0.0:8000 MAILER_WORKERS=4 gunicorn wsgi:app

Without ``MAILER_ENV`` the app served here runs as production (development is
``make run``'s alone: docs/deploy.md); an explicit development or testing is
refused on any address but loopback.

Command-line options win over this file (``gunicorn -w 2 wsgi:app``). The
scheduler is a process of its own (``flask --app wsgi scheduler run``), never
a gunicorn worker: see docs/deploy.md.

Variables (all optional):
- ``MAILER_BIND``: address(es) to listen on, comma-separated; default
  ``127.0.0.1:8000`` (nginx in front), or ``unix:/run/mailer/web.sock``.
- ``MAILER_WORKERS``: processes; default 2 x CPUs + 1, at most 8.
- ``MAILER_THREADS``: threads per process; default 4.
- ``MAILER_FORWARDED_ALLOW_IPS``: proxies whose X-Forwarded-Proto gunicorn
  trusts; default ``127.0.0.1,::1``. The app trusts X-Forwarded-For/-Host
  through ``MAILER_PROXY_FIX_HOPS`` (set it to 1 behind nginx).
- ``MAILER_LOG_JSON``: access and error log as JSON lines, like the app's.
"""

from __future__ import annotations

import importlib.util
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from gunicorn.glogging import Logger


def _count(name: str, default: int) -> int:
    """A whole number of at least 1 from ``name``; a bad value stops gunicorn with one line.

    This file runs before ``on_starting``: a ValueError here would be a
    traceback, and gunicorn's own "Failed to read config file".
    """
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    if not (raw.isascii() and raw.isdigit()) or int(raw) < 1:
        print(f"error: {name}: expected a whole number, 1 or more (got {raw!r})", file=sys.stderr, flush=True)
        raise SystemExit(2)
    return int(raw)


bind = [address.strip() for address in os.environ.get("MAILER_BIND", "127.0.0.1:8000").split(",") if address.strip()]
workers = _count("MAILER_WORKERS", min(2 * multiprocessing.cpu_count() + 1, 8))
# More than one thread makes gunicorn use its gthread worker: a slow client
# (or a CSV export) does not hold a whole process.
threads = _count("MAILER_THREADS", 4)
# No preloading: each worker builds its own app, so the outbox thread and the
# database connections are never shared across a fork.
preload_app = False
timeout = 60
graceful_timeout = 30
keepalive = 5
forwarded_allow_ips = os.environ.get("MAILER_FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
# The heartbeat files in memory, not on a disk that may stall.
worker_tmp_dir = "/dev/shm" if Path("/dev/shm").is_dir() else None  # noqa: S108 - gunicorn's documented advice

accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("MAILER_LOG_LEVEL", "info")
# Combined log format plus the time taken, in milliseconds.
access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" %(M)sms'


def _load_redact() -> Any:
    """``redact`` of mailer/redaction.py, loaded by path: importing the ``mailer``
    package would bring the app's modules into the master (see ``_CHECK``)."""
    path = Path(__file__).parent / "mailer" / "redaction.py"
    spec = importlib.util.spec_from_file_location("_mailer_redaction", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.redact


_redact = _load_redact()
# The atoms that may hold a request's path: the request line, the path, the
# Referer, and the same through %({...}e)s / %({...}i)s.
_PATH_ATOMS = ("r", "U", "f", "{raw_uri}e", "{path_info}e", "{request_uri}e", "{http_referer}e", "{referer}i")


class RedactingLogger(Logger):  # type: ignore[misc]
    """Gunicorn's logger with the tokens of reader links redacted from the access log.

    ``/unsubscribe/<token>`` and the other link routes are logged as
    ``/unsubscribe/[token]``: a token is a reader's key to their
    subscription, and logs are read and kept by more people than the database.
    """

    def atoms(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> dict[str, Any]:
        """Gunicorn's atoms, with the token part of link paths replaced."""
        atoms: dict[str, Any] = super().atoms(resp, req, environ, request_time)
        for key in _PATH_ATOMS:
            value = atoms.get(key)
            if isinstance(value, str):
                atoms[key] = _redact(value)
        return atoms


logger_class = RedactingLogger


class JsonLogger(RedactingLogger):
    """Access and error log as one JSON object per line (``MAILER_LOG_JSON``)."""

    def setup(self, cfg: Any) -> None:
        """Gunicorn's handlers, with the app's JSON formatter."""
        super().setup(cfg)
        loaded = set(sys.modules)
        from mailer.logs import JsonFormatter

        for handler in (*self.error_log.handlers, *self.access_log.handlers):
            handler.setFormatter(JsonFormatter())
        # The master keeps the formatter, not the app's modules: workers forked
        # after an upgrade and a reload (HUP) import the new code.
        for name in set(sys.modules) - loaded:
            if name == "mailer" or name.startswith("mailer."):
                del sys.modules[name]

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> None:
        """One event per request: who, what, status, size, time."""
        atoms = self.atoms(resp, req, environ, request_time)
        event = {
            "remote": atoms["h"], "method": atoms["m"], "path": atoms["U"], "query": atoms["q"],
            "status": int(atoms["s"]) if str(atoms["s"]).isdigit() else atoms["s"], "bytes": atoms["B"],
            "duration_ms": atoms["M"], "referer": atoms["f"], "user_agent": atoms["a"],
        }
        # The fields go as extras: the JSON formatter puts them beside the message.
        self.access_log.info("%s %s %s", atoms["m"], atoms["U"], atoms["s"], extra=event)


# The same words as mailer/config.py accepts; on_starting refuses any other value.
if os.environ.get("MAILER_LOG_JSON", "").strip().lower() in ("1", "true", "yes", "on"):
    logger_class = JsonLogger


# Run in a process of its own: imported here, the app's modules would stay in
# the master, and the workers it forks after an upgrade and a reload (HUP)
# would run the old code.
# The same resolution as the workers' (a WSGI server: without MAILER_ENV,
# production), and development or testing only on loopback addresses.
_CHECK = """
import os, sys
from pathlib import Path
from mailer.config import ConfigError, Launch, check_listening, load_config
try:
    config = load_config(os.environ, None, os.environ.get("MAILER_INSTANCE_PATH") or str(Path.cwd() / "instance"),
                         Launch.SERVER)
    check_listening(config["ENV"], sys.argv[1:])
except ConfigError as exc:
    print(f"error: {exc}", file=sys.stderr)
    sys.exit(2)
"""


def on_starting(server: Any) -> None:
    """Check the configuration once, before any worker starts.

    A bad MAILER_* value would otherwise stop each worker as it boots, and
    gunicorn would start a new one forever; here it stops gunicorn itself
    with the same one line naming the variable.
    """
    binds = [str(address) for address in (getattr(getattr(server, "cfg", None), "bind", None) or bind)]
    done = subprocess.run([sys.executable, "-c", _CHECK, *binds], cwd=Path(__file__).parent,  # noqa: S603 - our own code
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        print(lines[-1] if lines else f"error: the configuration check failed ({done.returncode})",
              file=sys.stderr, flush=True)
        raise SystemExit(2)
