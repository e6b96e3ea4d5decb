"""Fixed-window counters shared by every process: the ``rate_counters`` table.

The default storage of ``mailer.ratelimit``. A signup request checks its
IP's limit (``10/minute;100/hour``: two windows) with one statement, an
upsert of every window's counter that returns their hits, in one short
transaction on a raw connection of the app's pool: SQLAlchemy's Core with a
transaction per window cost a third of the whole request (bench/FIGURES.md).

A counter past its window is read as zero and starts again at the next hit;
expired counters are deleted at most once a minute per process.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any

from limits.storage import Storage
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

SWEEP_INTERVAL = 60.0  # seconds between two sweeps of the expired counters


class LazyStorage(Storage):
    """Fixed-window counters read as zero once their window is over, swept at most once a minute."""

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False, **options: Any) -> None:
        """No sweep before a minute has passed."""
        self.next_sweep = time.time() + SWEEP_INTERVAL
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        """Nothing here raises a storage error of its own (database errors pass through)."""
        return ValueError

    def sweep_due(self, now: float) -> bool:
        """True once a minute: time to drop the counters whose window is over."""
        if now < self.next_sweep:
            return False
        self.next_sweep = now + SWEEP_INTERVAL
        return True


def _upsert(placeholder: str, count: int) -> str:
    """Count hits on ``count`` keys at once, a new window where the last is over; returns each key's state.

    Plain SQL that SQLite (3.35+) and PostgreSQL both run; ``placeholder``
    is the driver's (``?`` for sqlite3, ``%s`` for psycopg).
    """
    p = placeholder
    rows = ", ".join([f"({p}, {p}, {p})"] * count)
    return (
        f"INSERT INTO rate_counters (key, hits, expires_at) VALUES {rows} "
        f"ON CONFLICT (key) DO UPDATE SET "
        f"hits = CASE WHEN rate_counters.expires_at <= {p} THEN excluded.hits "
        f"ELSE rate_counters.hits + excluded.hits END, "
        f"expires_at = CASE WHEN rate_counters.expires_at <= {p} THEN excluded.expires_at "
        f"ELSE rate_counters.expires_at END "
        f"RETURNING key, hits, expires_at"
    )


class DatabaseStorage(LazyStorage):
    """The counters in the app's database (``rate_counters``): one budget for every process and host."""

    STORAGE_SCHEME = ["mailer-database"]

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False, *,
                 engine: Callable[[], Engine] | None = None, **options: Any) -> None:
        """Counters on ``engine()`` (called at first use: the app's engine may come later)."""
        if engine is None:
            raise ValueError("DatabaseStorage needs the app's engine")
        self.engine = engine
        self._sql: dict[tuple[str, int], str] = {}
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)

    def _placeholder(self) -> str:
        return "?" if self.engine().dialect.paramstyle == "qmark" else "%s"

    def hit_all(self, keys: Sequence[tuple[str, int]], now: float, amount: int = 1) -> list[tuple[int, float]]:
        """Count ``amount`` hits on each ``(key, window seconds)``; each one's (hits, window end), in order."""
        placeholder = self._placeholder()
        sql = self._sql.get((placeholder, len(keys)))
        if sql is None:
            sql = self._sql[(placeholder, len(keys))] = _upsert(placeholder, len(keys))
        values: list[Any] = [v for key, expiry in keys for v in (key, amount, now + expiry)] + [now, now]
        with self._raw() as connection:
            cursor = connection.cursor()
            if self.sweep_due(now):
                cursor.execute(f"DELETE FROM rate_counters WHERE expires_at < {placeholder}", (now,))
            cursor.execute(sql, values)
            found = {row[0]: (int(row[1]), float(row[2])) for row in cursor.fetchall()}
            cursor.close()
            connection.commit()
        return [found[key] for key, _expiry in keys]

    def release_all(self, keys: Sequence[str], now: float) -> None:
        """Take one hit back from each key whose window is still open (``RateLimits.give_back``)."""
        p = self._placeholder()
        with self._raw() as connection:
            cursor = connection.cursor()
            cursor.execute(f"UPDATE rate_counters SET hits = hits - 1 WHERE key IN ({', '.join([p] * len(keys))}) "
                           f"AND hits > 0 AND expires_at > {p}", [*keys, now])
            cursor.close()
            connection.commit()

    def peek_all(self, keys: Sequence[str], now: float) -> list[tuple[int, float]]:
        """Each key's (hits in its current window, window end); (0, now) where none is open."""
        placeholder = self._placeholder()
        with self._raw() as connection:
            cursor = connection.cursor()
            cursor.execute(f"SELECT key, hits, expires_at FROM rate_counters WHERE key IN "
                           f"({', '.join([placeholder] * len(keys))})", list(keys))
            found = {row[0]: (int(row[1]), float(row[2])) for row in cursor.fetchall()}
            cursor.close()
            connection.rollback()  # a read: end PostgreSQL's implicit transaction
        return [found[key] if key in found and found[key][1] > now else (0, now) for key in keys]

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        """Count ``amount`` hits on ``key``; a new window lasts ``expiry`` seconds."""
        return self.hit_all([(key, expiry)], time.time(), amount)[0][0]

    def get(self, key: str) -> int:
        """The hits of ``key`` in its current window (0 once it has expired)."""
        return self.peek_all([key], time.time())[0][0]

    def get_expiry(self, key: str) -> float:
        """When the window of ``key`` ends (now if it has none)."""
        return self.peek_all([key], time.time())[0][1]

    def check(self) -> bool:
        """The database answers."""
        self.peek_all(["-"], time.time())
        return True

    def reset(self) -> int | None:
        """Forget every counter; the number forgotten."""
        return self._delete("DELETE FROM rate_counters", ())

    def clear(self, key: str) -> None:
        """Forget the counter of ``key``."""
        self._delete(f"DELETE FROM rate_counters WHERE key = {self._placeholder()}", (key,))

    def _delete(self, sql: str, values: Sequence[Any]) -> int:
        with self._raw() as connection:
            cursor = connection.cursor()
            cursor.execute(sql, values)
            deleted = int(cursor.rowcount)
            cursor.close()
            connection.commit()
        return deleted

    @contextmanager
    def _raw(self) -> Iterator[Any]:
        """A raw connection of the app's pool, given back after; the driver's errors as SQLAlchemy's.

        So that a database out of reach is the same ``OperationalError``
        everywhere (a 503 page, one line in a command), not the driver's own.
        """
        engine = self.engine()
        driver_error = engine.dialect.loaded_dbapi.Error
        try:
            connection = engine.raw_connection()
        except driver_error as exc:
            raise DBAPIError.instance(None, None, exc, driver_error, connection_invalidated=True) from exc
        try:
            yield connection
        except driver_error as exc:
            with suppress(driver_error):
                connection.rollback()
            raise DBAPIError.instance(None, None, exc, driver_error) from exc
        except BaseException:
            with suppress(driver_error):
                connection.rollback()
            raise
        finally:
            connection.close()  # back to the pool
