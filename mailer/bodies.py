"""Request bodies: refused with 413 before they are read, past ``MAX_CONTENT_LENGTH``.

Werkzeug applies ``MAX_CONTENT_LENGTH`` when a body is read (a form, JSON,
``get_data``): a chunked body is cut as it streams past the cap. Here a
declared ``Content-Length`` over the cap is refused before anything reads
it, even on a route that would never have read it. Views marked
``large_body`` (the admin's CSV import) are left to set their own cap, once
they know who is asking.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import IO, Any, TypeVar

from flask import Flask, current_app, request
from werkzeug.exceptions import RequestEntityTooLarge

View = TypeVar("View", bound=Callable[..., Any])
_LARGE = "_mailer_large_body"


def large_body(view: View) -> View:
    """Mark ``view`` as setting its own body cap (``request.max_content_length``) after its checks."""
    setattr(view, _LARGE, True)
    return view


def cap_body(limit: int) -> None:
    """Refuse this request's body past ``limit`` bytes: now for a declared length, as it streams for a chunked one.

    Werkzeug stops reading a chunked body at ``max_content_length`` without
    a word (a form then reads a cut body); ``CappedInput`` makes going past
    the cap a 413 instead.
    """
    if request.content_length is not None:
        if request.content_length > limit:
            raise RequestEntityTooLarge
        request.max_content_length = limit
        return
    environ = request.environ
    if environ.get("wsgi.input_terminated"):
        environ["wsgi.input"] = CappedInput(environ["wsgi.input"], limit)
        request.max_content_length = limit + 1  # so that werkzeug asks for the byte past the cap


def refuse_large_bodies(endpoint: str | None, _values: dict[str, Any] | None) -> None:
    """413 for a body over ``MAX_CONTENT_LENGTH``, before any hook (CSRF's reads the form) runs."""
    if endpoint is not None and getattr(current_app.view_functions.get(endpoint), _LARGE, False):
        return
    limit = current_app.config.get("MAX_CONTENT_LENGTH")
    if limit is not None:
        cap_body(int(limit))


class CappedInput(io.RawIOBase):
    """A chunked request body that raises 413 once more than ``limit`` bytes have come."""

    def __init__(self, stream: IO[bytes], limit: int) -> None:
        """Read ``stream`` (the server's ``wsgi.input``) up to ``limit`` bytes."""
        super().__init__()
        self.stream, self.limit, self.count = stream, limit, 0

    def readable(self) -> bool:
        """A stream to read."""
        return True

    def readinto(self, buffer: Any) -> int:
        """Fill ``buffer``; RequestEntityTooLarge past the cap."""
        data = self.stream.read(len(buffer))
        self.count += len(data)
        if self.count > self.limit:
            raise RequestEntityTooLarge
        buffer[:len(data)] = data
        return len(data)


def init_app(app: Flask) -> None:
    """Check every request's declared size first.

    A URL value preprocessor, because those run before every
    ``before_request`` function, the CSRF check's included.
    """
    app.url_value_preprocessor(refuse_large_bodies)
