"""Request bodies: 413 before an anonymous body is read; only the admin's CSV import may be large, streamed."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

KB = 1024


class CountingStream(io.RawIOBase):
    """``size`` bytes of ``fill`` made as they are read (nothing big sits in the test's memory); counts reads."""

    def __init__(self, size: int, fill: bytes = b"a") -> None:
        self.left, self.fill, self.read_bytes = size, fill, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        size = min(len(buffer), self.left)
        buffer[:size] = (self.fill * (size // len(self.fill) + 1))[:size]
        self.left -= size
        self.read_bytes += size
        return size


def send(client: FlaskClient, path: str, stream: io.RawIOBase, content_type: str, content_length: int | None = None):
    """POST ``stream`` as it is: the test client would read a stream whole to measure it, so the environ is
    built here; without ``content_length`` it goes as a chunked body does (``wsgi.input_terminated``)."""
    environ = EnvironBuilder(path=path, method="POST").get_environ()
    environ["wsgi.input"] = stream
    environ["CONTENT_TYPE"] = content_type
    if content_length is None:
        environ.pop("CONTENT_LENGTH", None)
        environ["wsgi.input_terminated"] = True
    else:
        environ["CONTENT_LENGTH"] = str(content_length)
    return client.open(Request(environ))


@pytest.mark.parametrize("path", ["/subscribe", "/admin/login", "/confirm/some-token", "/unsubscribe/some-token",
                                  "/preferences/some-token", "/", "/no-such-page"])
def test_a_large_anonymous_body_is_refused_before_it_is_read(client: FlaskClient, path: str) -> None:
    body = CountingStream(300 * KB * KB)  # the 300 MB of the report, declared in Content-Length
    answer = send(client, path, body, "application/x-www-form-urlencoded", 300 * KB * KB)
    assert answer.status_code == 413
    assert body.read_bytes == 0
    page = answer.get_data(as_text=True)
    assert "Too large" in page and 'class="site-footer"' in page  # the app's own page


def test_a_large_body_to_the_api_is_a_json_413(client: FlaskClient) -> None:
    body = CountingStream(5 * KB * KB)
    answer = send(client, "/api/subscribe", body, "application/json", 5 * KB * KB)
    assert answer.status_code == 413 and answer.is_json
    assert body.read_bytes == 0


def test_a_chunked_anonymous_body_is_cut_as_it_streams(app: Flask, client: FlaskClient) -> None:
    """No Content-Length (chunked): reading stops just past the cap."""
    body = CountingStream(50 * KB * KB, fill=b"email=a%40example.it&")
    answer = send(client, "/subscribe", body, "application/x-www-form-urlencoded")
    assert answer.status_code == 413
    assert body.read_bytes <= app.config["MAX_CONTENT_LENGTH"] + 64 * KB


def test_ordinary_forms_still_pass(client: FlaskClient) -> None:
    answer = client.post("/subscribe", data={"email": "mario@example.it", "consent": "y", "note": "x" * 10 * KB})
    assert answer.status_code != 413
    assert client.post("/api/subscribe", json={"email": "mario@example.it", "consent": True}).status_code == 202


def test_the_import_route_is_no_way_around_the_cap_without_a_login(client: FlaskClient) -> None:
    """Anonymous: sent to the login page, the body never read."""
    body = CountingStream(10 * KB * KB)
    answer = send(client, "/admin/readers/import", body, "multipart/form-data; boundary=x", 10 * KB * KB)
    assert answer.status_code == 302 and answer.headers["Location"].startswith("/admin/login")
    assert body.read_bytes == 0


Part = tuple[str, str | None, Iterator[bytes] | bytes]


def multipart(parts: list[Part], boundary: str = "b0undary") -> Iterator[bytes]:
    """A multipart/form-data body made as it is sent: (name, filename or None, value) parts."""
    for name, filename, value in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename is not None else "")
        yield f"--{boundary}\r\nContent-Disposition: {disposition}\r\n".encode()
        yield (b"Content-Type: text/csv\r\n" if filename is not None else b"") + b"\r\n"
        if isinstance(value, bytes):
            yield value
        else:
            yield from value
        yield b"\r\n"
    yield f"--{boundary}--\r\n".encode()


class GeneratedStream(io.RawIOBase):
    """A body read from a generator; ``read_bytes`` says how far the server has read."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks, self.pending, self.read_bytes = chunks, b"", 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self.pending:
            chunk = next(self.chunks, None)
            if chunk is None:
                return 0
            self.pending = chunk
        size = min(len(buffer), len(self.pending))
        buffer[:size] = self.pending[:size]
        self.pending = self.pending[size:]
        self.read_bytes += size
        return size
