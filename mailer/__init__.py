"""A self-hosted newsletter for news sites: signup, feeds, weekly digest, delivery.

``create_app()`` builds everything: configuration, database, blueprints and the
command line. Nothing reads the configuration at import time.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask
from werkzeug.routing import IntegerConverter

from mailer.config import load_config

ROOT = Path(__file__).resolve().parent.parent


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app: config -> db -> extensions -> blueprints -> cli.

    ``test_config`` overrides everything else (the tests use it for a fresh
    database and their own SMTP server). Raises ``ConfigError`` on a bad value.
    """
    app = Flask(
        __name__,
        instance_path=os.environ.get("MAILER_INSTANCE_PATH", str(ROOT / "instance")),
        template_folder=str(ROOT / "templates"),
        static_folder=str(ROOT / "mailer" / "static"),
    )
    config = load_config(os.environ, test_config, app.instance_path)
    _fill_embedded_defaults(app, config)
    app.config.update(config)

    from mailer import bodies, db, headers, i18n, logs, security

    logs.init_app(app)
    db.init_app(app)
    i18n.init_app(app)
    security.init_app(app)
    bodies.init_app(app)
    headers.init_app(app)

    from mailer import admin, cli, delivery, devmail, digest, errors, feeds, health, subscriptions

    # Ids in URLs fit a 64-bit column: a bigger number is a 404, not an overflow deep in the driver.
    app.url_map.converters["int"] = BoundedIntConverter

    app.register_blueprint(subscriptions.bp)
    app.register_blueprint(digest.bp)
    app.register_blueprint(feeds.bp)
    app.register_blueprint(admin.bp)
    app.register_blueprint(health.bp)
    if app.config["SHOW_CAPTURED_MAIL"]:
        app.register_blueprint(devmail.bp)
    if app.config["ENV"] == "development":
        from mailer.devmail import loopback

        loopback.init_app(app)  # this machine only, and a warning when serving
    errors.init_app(app)
    subscriptions.init_app(app)
    delivery.init_app(app)
    cli.init_app(app)
    hops = int(app.config["PROXY_FIX_HOPS"])
    if hops:
        from werkzeug.middleware.proxy_fix import ProxyFix

        # Trust X-Forwarded-For/-Proto/-Host from that many proxies only
        # (nginx sets all three, see docs/deploy.md): the client address
        # drives rate limits and the consent log.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)  # type: ignore[method-assign]
    return app


class BoundedIntConverter(IntegerConverter):
    """``<int:...>`` limited to what a BIGINT holds."""

    def __init__(self, map: Any, *args: Any, **kwargs: Any) -> None:  # noqa: A002 - Werkzeug's name
        kwargs.setdefault("max", 2**63 - 1)
        super().__init__(map, *args, **kwargs)


def _fill_embedded_defaults(app: Flask, config: dict[str, Any]) -> None:
    """Fill what was left unset with the embedded defaults (SQLite, capture, demo)."""
    instance = Path(app.instance_path)
    if not config["DATABASE_URL"]:
        instance.mkdir(parents=True, exist_ok=True)
        config["DATABASE_URL"] = f"sqlite:///{instance / 'mailer.sqlite3'}"
    if not config["CAPTURE_MAILDIR"]:
        config["CAPTURE_MAILDIR"] = str(instance / "captured-mail")
    if not config["SMTP_URL"]:
        config["SMTP_URL"] = f"smtp://{config['CAPTURE_SMTP_HOST']}:{config['CAPTURE_SMTP_PORT']}"
    if config["FEEDS"] is None:
        config["FEEDS"] = [] if config["ENV"] == "production" else [f"{config['BASE_URL']}/demo/feed.xml"]
