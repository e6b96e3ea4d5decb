"""Security headers on every answer: CSP, nosniff, Referrer-Policy, frame options, HSTS.

The pages run no inline script and no inline style: scripts and style
sheets come from ``/static/``. Nothing of the app is meant to be framed
(the site's signup box is a form and ``embed.js``, not a frame: in a frame
on another site the form's session cookie, SameSite=Lax, would not even be
sent). A view that needs more sets its own ``Content-Security-Policy``
first (the archive's copy of a digest has the mail's inline styles and
remote images; the admin's preview and the captured-mail viewer are framed
by the app itself); this only fills in what a view left unset.
"""

from __future__ import annotations

from flask import Flask, request
from werkzeug.wrappers import Response

# Pages whose address carries a reader's token: the token must not leave in a Referer.
TOKEN_PATHS = ("/confirm/", "/unsubscribe/", "/preferences/")
HSTS = "max-age=31536000"  # a year; no includeSubDomains: other hosts are not ours to decide


def content_security_policy(*, inline_styles: bool = False, remote_images: bool = False) -> str:
    """The policy of a page: only this origin's scripts, styles and images, never framed.

    ``inline_styles`` and ``remote_images`` open what a mail's HTML needs
    (its CSS is inlined, its pictures are on the feeds' sites); scripts
    stay this origin's only.
    """
    return "; ".join([
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'" + (" 'unsafe-inline'" if inline_styles else ""),
        "img-src " + ("* data:" if remote_images else "'self' data:"),
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ])


POLICY = content_security_policy()


def init_app(app: Flask) -> None:
    """Add the headers to every response of ``app``."""
    https = app.config["ENV"] == "production" and str(app.config["BASE_URL"]).startswith("https://")

    @app.after_request
    def security_headers(response: Response) -> Response:
        headers = response.headers
        if "Content-Security-Policy" not in headers:
            headers["Content-Security-Policy"] = POLICY
            headers.setdefault("X-Frame-Options", "DENY")  # for browsers without frame-ancestors
        headers.setdefault("X-Content-Type-Options", "nosniff")
        if request.path.startswith(TOKEN_PATHS):
            headers["Referrer-Policy"] = "no-referrer"
        else:
            headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
        if https:
            headers.setdefault("Strict-Transport-Security", HSTS)
        return response
