"""Development answers this machine only: every route refuses another one."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask


@pytest.mark.parametrize("path", ["/", "/dev/mail/", "/healthz", "/admin/login", "/demo/feed.xml"])
def test_development_refuses_other_machines_on_every_route(make_app: Callable[..., Flask], path: str) -> None:
    client = make_app(ENV="development", WTF_CSRF_ENABLED=True).test_client()
    for far in ("192.0.2.7", "10.0.0.5", "::ffff:192.0.2.7", "2001:db8::1"):
        response = client.get(path, environ_base={"REMOTE_ADDR": far})
        assert response.status_code == 403, (far, response.status_code)
        assert "MAILER_ENV=production" in response.get_data(as_text=True)
    # Before anything else: a POST gets the same 403, not a CSRF error or a change.
    refused = client.post("/dev/mail/clear", environ_base={"REMOTE_ADDR": "192.0.2.7"})
    assert refused.status_code == 403
    for near in ("127.0.0.1", "127.8.9.1", "::1", "::ffff:127.0.0.1"):
        assert client.get(path, environ_base={"REMOTE_ADDR": near}).status_code in (200, 503), near


def test_other_environments_serve_everyone(make_app: Callable[..., Flask]) -> None:
    """Testing and production have no such guard (production is meant to be served; tests use proxies)."""
    for env in ("testing", "production"):
        client = make_app(ENV=env, SECRET_KEY="a-long-enough-s3cret").test_client()
        assert client.get("/", environ_base={"REMOTE_ADDR": "192.0.2.7"}).status_code == 200


@pytest.mark.parametrize("headers", [
    {"Host": "evil.example:5000"},  # DNS rebinding: the attacker's name, re-pointed at 127.0.0.1
    {"Host": "127.0.0.1.evil.example"},
    {"Host": "news.example.it", "X-Forwarded-For": "203.0.113.9"},  # nginx on this host, in front
    {"X-Forwarded-For": "203.0.113.9"},
    {"X-Forwarded-For": "127.0.0.1, 203.0.113.9"},
    {"X-Real-IP": "2001:db8::7"},
    {"Forwarded": 'for="[2001:db8::7]:4711";proto=https'},
    {"Forwarded": "for=unknown"},
    {"X-Forwarded-Host": "news.example.it"},
])
def test_development_refuses_another_host_name_and_whatever_a_proxy_forwards(
        make_app: Callable[..., Flask], headers: dict[str, str]) -> None:
    """From loopback all the same: a rebound name or a proxy's client is not this machine; the mails stay unread."""
    client = make_app(ENV="development").test_client()
    for path in ("/dev/mail/", "/"):
        response = client.get(path, headers=headers, environ_base={"REMOTE_ADDR": "127.0.0.1"})
        assert response.status_code == 403, (path, headers, response.status_code)


@pytest.mark.parametrize("headers", [
    {}, {"Host": "localhost:5000"}, {"Host": "127.0.0.1:5000"}, {"Host": "[::1]:5000"}, {"Host": "app.localhost"},
    {"X-Forwarded-For": "127.0.0.1"}, {"Forwarded": "for=127.0.0.1;host=localhost:5000"},
])
def test_development_serves_this_machine_by_any_of_its_names(
        make_app: Callable[..., Flask], headers: dict[str, str]) -> None:
    client = make_app(ENV="development").test_client()
    assert client.get("/dev/mail/", headers=headers, environ_base={"REMOTE_ADDR": "127.0.0.1"}).status_code == 200
