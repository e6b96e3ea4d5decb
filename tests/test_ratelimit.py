"""``mailer.ratelimit``: fixed-window limits on each storage an operator can choose."""

from __future__ import annotations

import hashlib
import socket
import time
import uuid
from collections.abc import Callable

import pytest
from flask import Flask
from sqlalchemy import func, select

from mailer.db import get_engine
from mailer.models import RateCounter
from mailer.ratecounters import DatabaseStorage
from mailer.ratelimit import LeanMemoryStorage, RateLimits


def redis_missing() -> str | None:
    """Why the Redis storage cannot be tested here, or None."""
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=1).close()
    except OSError:
        return "no Redis server at 127.0.0.1:6379"
    return None


STORAGES = ["database", "memory", pytest.param(
    "redis://127.0.0.1:6379/15", marks=pytest.mark.skipif(bool(redis_missing()), reason=redis_missing() or ""))]


@pytest.mark.parametrize("storage", STORAGES)
def test_hits_count_tests_do_not_and_the_wait_is_the_window_left(
        make_app: Callable[..., Flask], storage: str) -> None:
    limits = RateLimits(make_app(RATELIMIT_ENABLED=True, RATELIMIT_STORAGE=storage))
    ip = f"192.0.2.{uuid.uuid4().int % 250}-{uuid.uuid4().hex[:6]}"  # Redis keeps keys between runs
    for _ in range(5):
        assert limits.test("2/minute;10/hour", "login", ip) is None
    assert limits.hit("2/minute;10/hour", "login", ip) is None
    assert limits.hit("2/minute;10/hour", "login", ip) is None
    wait = limits.hit("2/minute;10/hour", "login", ip)
    assert wait is not None and 1 <= wait <= 60
    assert limits.test("2/minute;10/hour", "login", ip) is not None
    # Another key, or another scope, has its own budget.
    assert limits.hit("2/minute;10/hour", "login", ip + "x") is None
    assert limits.hit("2/minute;10/hour", "signup", ip) is None


def test_the_default_storage_is_the_database_shared_by_every_process(make_app: Callable[..., Flask]) -> None:
    """Two apps on one database (two gunicorn workers) spend one budget."""
    first, second = (RateLimits(make_app(RATELIMIT_ENABLED=True)) for _ in range(2))
    assert isinstance(first.strategy.storage, DatabaseStorage)
    assert first.hit("3/minute", "signup", "192.0.2.7") is None
    assert second.hit("3/minute", "signup", "192.0.2.7") is None
    assert first.hit("3/minute", "signup", "192.0.2.7") is None
    assert second.hit("3/minute", "signup", "192.0.2.7") is not None
    assert first.test("3/minute", "signup", "192.0.2.7") is not None


def test_a_database_counter_starts_again_when_its_window_is_over(make_app: Callable[..., Flask]) -> None:
    app = make_app(RATELIMIT_ENABLED=True)
    storage = DatabaseStorage(engine=lambda: get_engine(app))
    assert storage.incr("k", expiry=1) == 1
    assert storage.incr("k", expiry=1) == 2
    assert storage.get("k") == 2 and storage.get_expiry("k") > time.time()
    time.sleep(1.05)
    assert storage.get("k") == 0
    assert storage.incr("k", expiry=60) == 1  # a new window, counted from this hit
    assert storage.get_expiry("k") > time.time() + 50
    storage.clear("k")
    assert storage.get("k") == 0 and storage.check()


def test_expired_database_counters_are_swept(make_app: Callable[..., Flask]) -> None:
    app = make_app(RATELIMIT_ENABLED=True)
    storage = DatabaseStorage(engine=lambda: get_engine(app))
    for n in range(5):
        storage.incr(f"old-{n}", expiry=0)
    storage.next_sweep = 0.0  # the minute is up
    storage.incr("new", expiry=60)
    with get_engine(app).connect() as conn:
        assert conn.scalar(select(func.count()).select_from(RateCounter)) == 1


def test_memory_is_per_process(make_app: Callable[..., Flask]) -> None:
    first, second = (RateLimits(make_app(RATELIMIT_ENABLED=True, RATELIMIT_STORAGE="memory")) for _ in range(2))
    assert isinstance(first.strategy.storage, LeanMemoryStorage)
    assert first.hit("1/minute", "signup", "192.0.2.8") is None
    assert second.hit("1/minute", "signup", "192.0.2.8") is None


def test_ratelimit_enabled_false_turns_every_limit_off(make_app: Callable[..., Flask]) -> None:
    limits = RateLimits(make_app(RATELIMIT_ENABLED=False))
    assert all(limits.hit("1/minute", "login", "192.0.2.1") is None for _ in range(5))


def test_the_counters_keep_no_ip_or_address_and_any_length_fits(make_app: Callable[..., Flask]) -> None:
    """A 300-character address typed at the admin login: counted, hashed, no 500 on PostgreSQL's VARCHAR(255)."""
    app = make_app(RATELIMIT_ENABLED=True)
    limits = RateLimits(app)
    typed = "a" * 300 + "@example.it"
    assert limits.hit("2/minute", "admin-login-account", typed) is None
    assert limits.hit("2/minute", "admin-login-account", "192.0.2.44") is None
    with get_engine(app).connect() as conn:
        keys = list(conn.scalars(select(RateCounter.key)))
    assert len(keys) == 2 and all(len(key) < 100 for key in keys)
    assert not any("aaaa" in key or "192.0.2.44" in key for key in keys)


def test_a_window_written_twice_is_one_window(make_app: Callable[..., Flask]) -> None:
    limits = RateLimits(make_app(RATELIMIT_ENABLED=True))
    assert [limits.hit("2/minute;2/minute", "signup", "192.0.2.45") for _ in range(3)][-1] is not None


def test_the_counters_hash_is_keyed_so_an_ip_cannot_be_found_by_hashing_them_all(
        make_app: Callable[..., Flask]) -> None:
    """An unkeyed SHA-256 of an IPv4 address is reversed by trying all 2**32; the key comes from SECRET_KEY.

    Two workers (two apps) with one SECRET_KEY still share a counter; another key counts apart.
    """
    first, second = (RateLimits(make_app(RATELIMIT_ENABLED=True)) for _ in range(2))
    assert first.hit("2/minute", "signup", "192.0.2.46") is None
    assert second.hit("2/minute", "signup", "192.0.2.46") is None
    assert first.hit("2/minute", "signup", "192.0.2.46") is not None
    other = RateLimits(make_app(RATELIMIT_ENABLED=True, SECRET_KEY="another-secret"))
    assert other.hit("2/minute", "signup", "192.0.2.46") is None
    with get_engine(make_app()).connect() as conn:
        keys = list(conn.scalars(select(RateCounter.key)))
    plain = hashlib.sha256(b"192.0.2.46").hexdigest()[:32]
    assert len(keys) == 2 and not any(plain in key for key in keys)
