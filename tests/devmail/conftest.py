"""The capture server on a free port, writing to the test app's Maildir."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from flask import Flask

from mailer.devmail.capture import CaptureServer


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def capture(app: Flask) -> Iterator[CaptureServer]:
    """A running capture server storing into ``app.config["CAPTURE_MAILDIR"]``."""
    server = CaptureServer(app.config["CAPTURE_MAILDIR"], "127.0.0.1", free_port()).start()
    yield server
    server.stop()
