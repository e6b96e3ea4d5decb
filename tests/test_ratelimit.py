"""``mailer.ratelimit``: fixed-window limits on the lean in-process storage."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask

from mailer.ratelimit import RateLimits


def test_hits_count_tests_do_not_and_the_wait_is_the_window_left(make_app: Callable[..., Flask]) -> None:
    limits = RateLimits(make_app(RATELIMIT_ENABLED=True))
    for _ in range(5):
        assert limits.test("2/minute;10/hour", "login", "192.0.2.1") is None
    assert limits.hit("2/minute;10/hour", "login", "192.0.2.1") is None
    assert limits.hit("2/minute;10/hour", "login", "192.0.2.1") is None
    wait = limits.hit("2/minute;10/hour", "login", "192.0.2.1")
    assert wait is not None and 1 <= wait <= 60
    assert limits.test("2/minute;10/hour", "login", "192.0.2.1") is not None
    # Another key, or another scope, has its own budget.
    assert limits.hit("2/minute;10/hour", "login", "192.0.2.2") is None
    assert limits.hit("2/minute;10/hour", "signup", "192.0.2.1") is None


def test_ratelimit_enabled_false_turns_every_limit_off(make_app: Callable[..., Flask]) -> None:
    limits = RateLimits(make_app(RATELIMIT_ENABLED=False))
    assert all(limits.hit("1/minute", "login", "192.0.2.1") is None for _ in range(5))
