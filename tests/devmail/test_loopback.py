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
