"""Page numbers from the query string (``?page=``): a page that does not exist is a 404.

Read before any query uses them, so that ``?page=abc`` or a number too big
for the database's OFFSET is a clear 404, never a 500 from the driver.
"""

from __future__ import annotations

from flask import abort, request

# More pages than any list here will have; longer numbers are not pages.
MAX_DIGITS = 9


def page_number(pages: int) -> int:
    """The requested page, 1 without ``?page=``; 404 unless it is a whole number from 1 to ``pages``."""
    raw = request.args.get("page")
    if raw is None:
        return 1
    if not (raw.isascii() and raw.isdigit()) or len(raw) > MAX_DIGITS:
        abort(404)
    page = int(raw)
    if not 1 <= page <= max(pages, 1):
        abort(404)
    return page
