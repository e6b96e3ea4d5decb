"""Behind nginx: the client address and scheme come from X-Forwarded-* only when told to trust them."""

from __future__ import annotations

import logging

import pytest
from flask import Flask, request

from mailer import create_app
from mailer.config import ConfigError, load_config
from mailer.db import get_engine


def seen_by(app: Flask, headers: dict[str, str]) -> dict[str, str]:
    """What the app sees of the client, for a request with ``headers``."""

    @app.get("/_test/client")
    def client() -> dict[str, str]:
        return {"remote": request.remote_addr or "", "scheme": request.scheme, "host": request.host}

    answer: dict[str, str] = app.test_client().get("/_test/client", headers=headers,  # type: ignore[assignment]
                                                   environ_base={"REMOTE_ADDR": "127.0.0.1"}).json
    return answer


FORWARDED = {"X-Forwarded-For": "198.51.100.7, 203.0.113.9", "X-Forwarded-Proto": "https",
             "X-Forwarded-Host": "news.example.it"}


def test_one_proxy_hop_trusts_the_address_nginx_appended(app: Flask) -> None:
    behind = create_app({**app.config, "PROXY_FIX_HOPS": 1})
    try:
        # nginx appends the address it saw: the earlier one is the client's claim.
        assert seen_by(behind, FORWARDED) == {"remote": "203.0.113.9", "scheme": "https", "host": "news.example.it"}
    finally:
        get_engine(behind).dispose()


def test_without_proxy_hops_forwarded_headers_are_ignored(app: Flask) -> None:
    # The default: a client cannot fake its address (rate limits, consent log).
    assert seen_by(app, FORWARDED) == {"remote": "127.0.0.1", "scheme": "http", "host": "localhost"}


@pytest.mark.parametrize("value", ["-1", "6", "one"])
def test_a_bad_hop_count_is_refused(value: str) -> None:
    with pytest.raises(ConfigError, match="MAILER_PROXY_FIX_HOPS"):
        load_config({"MAILER_PROXY_FIX_HOPS": value}, {"ENV": "testing", "SECRET_KEY": "x"})


@pytest.mark.parametrize("value", ["News <bounces@example.it>", "bounces", "a@example.it\r\nBcc: x@example.org"])
def test_the_bounce_address_must_be_a_bare_address(value: str) -> None:
    with pytest.raises(ConfigError, match="MAILER_BOUNCE_ADDRESS"):
        load_config({"MAILER_BOUNCE_ADDRESS": value}, {"ENV": "testing", "SECRET_KEY": "x"})
    good = load_config({"MAILER_BOUNCE_ADDRESS": "bounces@example.it"}, {"ENV": "testing", "SECRET_KEY": "x"})
    assert good["BOUNCE_ADDRESS"] == "bounces@example.it"


def test_production_names_a_proxy_that_mailer_proxy_fix_hops_does_not_declare(make_app, caplog) -> None:
    """nginx in front with the hops forgotten: every reader is 127.0.0.1 to the limits; one line says so, once."""
    app = make_app(ENV="production", SECRET_KEY="a-long-enough-s3cret")
    client = app.test_client()
    logging.getLogger("mailer.security").addHandler(caplog.handler)  # "mailer" does not propagate to the root
    with caplog.at_level(logging.WARNING, logger="mailer.security"):
        client.get("/", environ_base={"REMOTE_ADDR": "93.184.216.34"}, headers={"X-Forwarded-For": "198.51.100.1"})
        assert not caplog.records  # a client that sends the header itself is no proxy of ours
        for _ in range(3):
            client.get("/", environ_base={"REMOTE_ADDR": "127.0.0.1"}, headers={"X-Forwarded-For": "198.51.100.7"})
    # One record (the handler may see it twice, on the root and on the logger).
    lines = list({id(r): r.getMessage() for r in caplog.records if r.name == "mailer.security"}.values())
    assert len(lines) == 1 and "MAILER_PROXY_FIX_HOPS" in lines[0] and "127.0.0.1" in lines[0]
    declared = make_app(ENV="production", SECRET_KEY="a-long-enough-s3cret", PROXY_FIX_HOPS=1)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="mailer.security"):
        declared.test_client().get("/", environ_base={"REMOTE_ADDR": "127.0.0.1"},
                                   headers={"X-Forwarded-For": "198.51.100.7"})
    logging.getLogger("mailer.security").removeHandler(caplog.handler)
    assert not [r for r in caplog.records if r.name == "mailer.security"]
