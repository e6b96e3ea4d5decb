"""Deliveries (the queue) -> personalise -> SMTP transport.

``deliver`` sends every sending digest's due deliveries, as fast as the SMTP
server allows, losing nothing and sending nothing twice (see ``run.py``);
``pause_digest`` and ``resume_digest`` stop and restart a send from any
process; ``init_app`` gives the web app its outbox worker for transactional
mail, and ``send_outbox`` is the scheduler's pass over the same outbox. Only
this package talks SMTP.
"""

from __future__ import annotations

from flask import Flask

from mailer.delivery.control import pause_digest, resume_digest
from mailer.delivery.outbox import EXTENSION, OutboxWorker, send_outbox
from mailer.delivery.report import DeliveryError, DeliveryReport, SenderBusyError
from mailer.delivery.run import deliver


def init_app(app: Flask) -> None:
    """Put the outbox worker in ``app.extensions["mailer.outbox"]`` (no thread yet)."""
    app.extensions[EXTENSION] = OutboxWorker(app)


__all__ = [
    "DeliveryError",
    "DeliveryReport",
    "SenderBusyError",
    "deliver",
    "init_app",
    "pause_digest",
    "resume_digest",
    "send_outbox",
]
