"""Claims the next batch in a thread of its own.

A claim of 500 rows takes milliseconds; done by the main thread it would
hold up the commits that the workers wait for before ending each message.
The feeder has its own database connection and at most one claim going.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_for
from datetime import datetime

from sqlalchemy import Connection, Engine

from mailer.delivery import deliveries as rows


class Feeder:
    """Runs ``claim`` (or ``take``, for a sender alone) off the main thread."""

    def __init__(self, engine: Engine, me: str, lease: float, exclusive: bool) -> None:
        """Nothing runs until the first ``request``."""
        self.engine = engine
        self.me = me
        self.lease = lease
        self.exclusive = exclusive
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="claims")
        self._local = threading.local()
        self._future: Future[list[rows.Item]] | None = None

    @property
    def busy(self) -> bool:
        """True while a claim is going or its result has not been taken."""
        return self._future is not None

    def request(self, digest_id: int, after: int, now: datetime, limit: int) -> None:
        """Start claiming up to ``limit`` of the digest's rows (those after id ``after`` when alone)."""
        assert self._future is None, "one claim at a time"
        self._future = self._executor.submit(self._fetch, digest_id, after, now, limit)

    def ready(self, timeout: float = 0.0) -> list[rows.Item] | None:
        """The claimed batch once there (waiting up to ``timeout``), else None."""
        future = self._future
        if future is None:
            return None
        if timeout:
            wait_for([future], timeout)
        if not future.done():
            return None
        self._future = None
        return future.result()  # a database error surfaces here, in the main thread

    def _connection(self) -> Connection:
        conn: Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self.engine.connect()
        return conn

    def _fetch(self, digest_id: int, after: int, now: datetime, limit: int) -> list[rows.Item]:
        conn = self._connection()
        try:
            if self.exclusive:
                items = rows.take(conn, digest_id, after, now, limit)
            else:
                items = rows.claim(conn, digest_id, self.me, now, self.lease, limit)
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
        return items

    def _close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()

    def close(self) -> list[rows.Item]:
        """Stop the thread; return a batch claimed meanwhile (to be released)."""
        left = self.ready(timeout=60.0) if self._future is not None else None
        self._executor.submit(self._close).result()
        self._executor.shutdown(wait=True)
        return left or []
