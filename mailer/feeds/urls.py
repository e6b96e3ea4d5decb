"""Links from feeds: absolute http(s) only, and one key per real article.

Feeds link the same article with different tracking parameters
(``?utm_source=rss`` today, ``?utm_source=twitter`` tomorrow) and fragments;
the key that decides "already kept" leaves both out.
"""

from __future__ import annotations

import hashlib
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

HTTP_SCHEMES = ("http", "https")
MAX_URL_LENGTH = 2000
# Click trackers that say nothing about which article it is.
TRACKING_PARAMETERS = frozenset({
    "fbclid", "gclid", "dclid", "gbraid", "wbraid", "msclkid", "yclid", "igshid",
    "mc_cid", "mc_eid", "_hsenc", "_hsmi", "mkt_tok",
})


def http_url(value: str | None, base: str | None = None) -> str | None:
    """``value`` made absolute against ``base``, if it is an http(s) URL with a host.

    Anything else (``javascript:``, ``data:``, ``ftp:``, a bare path with no
    base, a URL longer than the database column) gives None.
    """
    if not value:
        return None
    value = value.strip()
    if base:
        try:
            value = urljoin(base, value)
        except ValueError:
            return None
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return None
    if parts.scheme.lower() not in HTTP_SCHEMES or not parts.hostname:
        return None
    if len(value) > MAX_URL_LENGTH or any(c.isspace() or not c.isprintable() for c in value):
        return None
    return value


def is_tracking(name: str) -> bool:
    """True for query parameters that only track clicks (``utm_*`` and friends)."""
    lowered = name.lower()
    return lowered.startswith("utm_") or lowered in TRACKING_PARAMETERS


def clean_link(url: str) -> str:
    """``url`` without tracking parameters; the fragment stays (it is the reader's anchor)."""
    parts = urlsplit(url)
    if not parts.query:
        return url
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not is_tracking(k)]
    return urlunsplit(parts._replace(query=urlencode(query, doseq=True)))


def link_key(url: str) -> str:
    """The identity of a link: no tracking parameters, no fragment, lower-case scheme and host."""
    parts = urlsplit(clean_link(url))
    netloc = parts.netloc.lower()
    return urlunsplit((parts.scheme.lower(), netloc, parts.path or "/", parts.query, ""))


def link_hash(url: str) -> str:
    """sha256 of ``link_key(url)``: indexed, to spot one article in two feeds."""
    return hashlib.sha256(link_key(url).encode()).hexdigest()


def dedup_key(guid: str | None, link: str | None) -> str | None:
    """The guid, else the link's key; hashed when too long for the column."""
    key = guid.strip() if guid and guid.strip() else (link_key(link) if link else None)
    if key is None:
        return None
    if len(key) > MAX_URL_LENGTH:
        return "sha256:" + hashlib.sha256(key.encode()).hexdigest()
    return key
