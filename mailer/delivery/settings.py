"""The knobs of a run, read once from the configuration.

``SMTP_CONNECTIONS`` and ``SEND_RATE`` are the operator's (``MAILER_*``);
the ``DELIVERY_*`` settings have their one default in ``config/defaults.py``
(none here: a missing key is a bug, not a second default), and tests
shorten them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any


@dataclass(frozen=True)
class RunSettings:
    """Connections, rate, batches, leases, retries and timeouts of a run."""

    connections: int
    rate: float
    batch: int
    lease: float
    retry_window: float
    give_up: timedelta
    backoff: float
    backoff_ceiling: float
    timeout: float

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> RunSettings:
        """From SMTP_CONNECTIONS, SEND_RATE, SMTP_TIMEOUT and the DELIVERY_* settings (defaults: config/defaults.py)."""
        return cls(
            connections=max(1, int(config["SMTP_CONNECTIONS"])),
            rate=float(config["SEND_RATE"]),
            batch=max(1, int(config["DELIVERY_BATCH_SIZE"])),
            lease=float(config["DELIVERY_LEASE_SECONDS"]),
            retry_window=float(config["DELIVERY_RETRY_WITHIN_RUN_SECONDS"]),
            give_up=timedelta(hours=float(config["DELIVERY_GIVE_UP_HOURS"])),
            backoff=float(config["DELIVERY_BACKOFF_SECONDS"]),
            backoff_ceiling=float(config["DELIVERY_BACKOFF_MAX_SECONDS"]),
            timeout=float(config["SMTP_TIMEOUT"]),
        )
