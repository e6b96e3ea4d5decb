"""Tokens out of logs: the secret part of a link's path becomes ``[token]``.

A reader's link is the only key to their subscription, so an access log that
keeps it hands that key to whoever reads the log. Used by gunicorn's access
log (gunicorn.conf.py loads this file on its own, without the app), by the
development server's request log and by the app's own lines. No imports
beyond the standard library, for that reason.
"""

from __future__ import annotations

import logging
import re

# The routes whose next path segment is a token (``/r/`` is the click
# redirect, where present). Matched anywhere, so a Referer is covered too.
TOKEN_ROUTES = ("confirm", "unsubscribe", "preferences", "my-data", "r")
_TOKEN = re.compile("(/(?:" + "|".join(TOKEN_ROUTES) + r")/)[^/?#\s\"']+")
REDACTED = "[token]"


def redact(text: str) -> str:
    """``text`` with every token of a link route replaced by ``[token]``."""
    if "/" not in text:
        return text
    return _TOKEN.sub(rf"\g<1>{REDACTED}", text)


class RedactTokens(logging.Filter):
    """A logging filter that redacts tokens in a record's message and arguments.

    The message is formatted once here (``getMessage``), so whatever the
    arguments were, no token survives into any handler.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


def redact_logger(name: str) -> None:
    """Add the filter to the logger ``name`` (once)."""
    logger = logging.getLogger(name)
    if not any(isinstance(existing, RedactTokens) for existing in logger.filters):
        logger.addFilter(RedactTokens())
