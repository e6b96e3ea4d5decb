"""Logging: one line per event; JSON lines when ``MAILER_LOG_JSON`` is set."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

from flask import Flask

from mailer.redaction import RedactTokens, redact_logger


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and extras."""

    RESERVED = set(vars(logging.makeLogRecord({})))

    def format(self, record: logging.LogRecord) -> str:
        event = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        event.update({k: v for k, v in vars(record).items() if k not in self.RESERVED and not k.startswith("_")})
        if record.exc_info:
            event["exception"] = self.formatException(record.exc_info)
        return json.dumps(event, default=str, ensure_ascii=False)


def init_app(app: Flask) -> None:
    """Configure the ``mailer`` logger once per process; keep link tokens out of every log line.

    The development server logs each request through the ``werkzeug``
    logger: its filter redacts the token of link paths there too.
    """
    redact_logger("werkzeug")
    logger = logging.getLogger("mailer")
    if logger.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactTokens())
    if app.config["LOG_JSON"]:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
