"""The knobs of a run, read once from the configuration.

``SMTP_CONNECTIONS`` and ``SEND_RATE`` are the operator's (``MAILER_*``);
the ``DELIVERY_*`` settings have defaults in ``config/defaults.py`` that
suit a newsletter, and tests shorten them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any


@dataclass(frozen=True)
class RunSettings:
    """Connections, rate, batches, leases, retries and timeouts of a run."""

    connections: int = 4
    rate: float = 0.0
    batch: int = 500
    lease: float = 120.0
    retry_window: float = 90.0
    give_up: timedelta = timedelta(hours=72)
    backoff: float = 30.0
    backoff_ceiling: float = 6 * 3600.0
    timeout: float = 60.0

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> RunSettings:
        """From SMTP_CONNECTIONS, SEND_RATE, SMTP_TIMEOUT and the DELIVERY_* settings."""
        return cls(
            connections=max(1, int(config.get("SMTP_CONNECTIONS") or 1)),
            rate=float(config.get("SEND_RATE") or 0),
            batch=max(1, int(config.get("DELIVERY_BATCH_SIZE") or 500)),
            lease=float(config.get("DELIVERY_LEASE_SECONDS") or 120),
            retry_window=float(config.get("DELIVERY_RETRY_WITHIN_RUN_SECONDS") or 0),
            give_up=timedelta(hours=float(config.get("DELIVERY_GIVE_UP_HOURS") or 72)),
            backoff=float(config.get("DELIVERY_BACKOFF_SECONDS") or 30),
            backoff_ceiling=float(config.get("DELIVERY_BACKOFF_MAX_SECONDS") or 6 * 3600),
            timeout=float(config.get("SMTP_TIMEOUT") or 60),
        )
