"""Languages: Flask-Babel, Italian by default, English complete.

A page or mail is in the reader's chosen language when a route knows the
reader (it sets ``g.reader_language``), else the browser's Accept-Language,
else ``MAILER_LOCALE``.
"""

from __future__ import annotations

from flask import Flask, current_app, g, has_request_context, request
from flask_babel import Babel, get_locale, refresh

from mailer.config import LOCALES

babel = Babel()


def select_locale() -> str:
    """The language of the current page or mail."""
    chosen = g.get("reader_language")
    if chosen in LOCALES:
        return str(chosen)
    if has_request_context():
        best = request.accept_languages.best_match(LOCALES)
        if best:
            return best
    return str(current_app.config["LOCALE"])


def set_language(language: str, *, unless_chosen: bool = False) -> None:
    """Show this request's page (and mail) in ``language``; one we do not write in is ignored.

    ``unless_chosen``: keep a language the visitor picked with ``?lang=``.
    """
    if language not in LOCALES or (unless_chosen and "reader_language" in g) or g.get("reader_language") == language:
        return
    g.reader_language = language
    # Flask-Babel caches the locale per request: drop it (cheap) rather than
    # compute it to compare (a babel Locale parse, on every signup).
    refresh()


def language_from_query() -> None:
    """``?lang=en`` switches any page (the language links, "view in browser")."""
    chosen = request.args.get("lang")
    if chosen:
        set_language(chosen)


def with_language(url: str) -> str:
    """One of our own pages' URL (``/privacy``) with ``?lang=`` of the current page; others as they are."""
    if not url.startswith("/") or url.startswith("//"):
        return url
    return f"{url}{'&' if '?' in url else '?'}lang={get_locale()}"


def select_timezone() -> str:
    """Dates in pages and mails are shown in ``MAILER_TIMEZONE``."""
    return str(current_app.config["TIMEZONE"])


def init_app(app: Flask) -> None:
    """Attach Flask-Babel with the translations shipped in ``mailer/translations``."""
    app.config.setdefault("BABEL_TRANSLATION_DIRECTORIES", "translations")
    app.config["BABEL_DEFAULT_LOCALE"] = app.config["LOCALE"]
    app.config["BABEL_DEFAULT_TIMEZONE"] = app.config["TIMEZONE"]
    babel.init_app(app, locale_selector=select_locale, timezone_selector=select_timezone)
    # Every page's <html lang> needs it; one global instead of a context
    # processor per blueprint.
    app.jinja_env.globals["get_locale"] = get_locale
    app.jinja_env.globals["with_language"] = with_language
    app.before_request(language_from_query)
