"""Fixtures of the delivery tests: retries fast enough for a test."""

from __future__ import annotations

import pytest
from flask import Flask


@pytest.fixture
def app(app: Flask) -> Flask:
    """The shared app, with two connections, small batches and quick retries."""
    app.config.update(
        SMTP_CONNECTIONS=2,
        DELIVERY_BACKOFF_SECONDS=0.05,
        DELIVERY_RETRY_WITHIN_RUN_SECONDS=0,
        DELIVERY_BATCH_SIZE=50,
        SMTP_TIMEOUT=10,
    )
    return app
